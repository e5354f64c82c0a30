"""Runnable examples: ``python -m pulptrain.examples.<name> --help``."""
