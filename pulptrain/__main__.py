"""`python -m pulptrain ...` is the `pulptrain` command (for environments whose scripts are not on PATH)."""

import sys

from pulptrain.cli import main

sys.exit(main())
