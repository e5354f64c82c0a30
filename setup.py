"""Build: every C file under csrc/ and the Cython binding compiled into one extension, pulptrain._C.

-O3 for the architecture's baseline (a binary that runs on any CPU of the architecture): the x86 microkernels
of csrc/arch/x86/ carry their own target flags and are chosen at import from cpuid (csrc/core/isa.h).
PULPTRAIN_NATIVE=1 adds -march=native (the portable parts then use the build machine's ISA as well; the
binary runs only on CPUs like it). PULPTRAIN_PORTABLE=1, the former opt-in, is the default and still accepted.
OpenMP is used when the compiler accepts -fopenmp; otherwise the serial team backend is built and a warning
says so.
"""

import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def compiler_accepts(flags):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(
                "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"
                if "-fopenmp" in flags
                else "int main(void) { return 0; }\n"
            )
        cmd = cc.split() + flags + [src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


# -Wno-psabi: static helpers pass 8-float vectors by value, which GCC flags in a build without AVX (the ABI of
# a static function is the compiler's own business; no exported function takes or returns a vector).
compile_args = ["-O3", "-std=c11", "-ffp-contract=fast", "-Wall", "-Wno-psabi"]
link_args = []
native = os.environ.get("PULPTRAIN_NATIVE", "") not in ("", "0")
if native and os.environ.get("PULPTRAIN_PORTABLE", "") not in ("", "0"):
    sys.exit("pulptrain: PULPTRAIN_NATIVE and PULPTRAIN_PORTABLE are both set; choose one")
if native:
    if not compiler_accepts(["-march=native"]):
        sys.exit("pulptrain: PULPTRAIN_NATIVE is set but the C compiler does not accept -march=native")
    print("pulptrain: PULPTRAIN_NATIVE set, building with -march=native (not portable)", file=sys.stderr)
    compile_args.append("-march=native")
# Every matmul tile kernel must round an element the same way (fused multiply-adds, given -ffp-contract=fast),
# or a result would depend on the tile, and so on the team size, that computed it. GCC's Zen tunings
# (-mtune=znver1..3, which -march=native picks there) leave the loop-carried multiply-adds of some loops
# unfused and fuse them in others; this parameter turns that heuristic off.
if compiler_accepts(["--param=avoid-fma-max-bits=0"]):
    compile_args.append("--param=avoid-fma-max-bits=0")
if compiler_accepts(["-fopenmp"]):
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
else:
    warnings.warn(
        "pulptrain: the C compiler does not support OpenMP; building the serial backend "
        "(set_num_threads will run the team one core after another)",
        stacklevel=1,
    )

# csrc/ is laid out by family (core/, gemm/, fp32/, int8/, quant/, arch/<isa>/); every folder is on the include
# path, so a file includes its neighbours by name alone. The host build takes every C file, arch/ included
# (an arch/<isa>/ file compiles to nothing on another architecture).
c_sources = sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "csrc", "**", "*.c"), recursive=True))
c_include_dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join("csrc", "**", "*.h"), recursive=True)})
# csrc/arch/x86/ is compiled in (and dispatched to) only where the build says so: other builds of csrc/ leave it
# out and run the generic level (csrc/core/arch.h).
x86_macros = [("PT_BUILD_ARCH_X86", "1")] if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else []
extension = Extension(
    "pulptrain._C",
    sources=["pulptrain/_C.pyx"] + c_sources,
    include_dirs=c_include_dirs + [numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")] + x86_macros,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(ext_modules=cythonize([extension], compiler_directives={"language_level": 3}))
