"""What a measurement ran on: CPU model, ISA level, core count, compiler, build, commit and date.

Every figure in the docs names these (timings and even the final accuracy of a training run depend on them),
so the scripts that write result files (benchmarks/quick.py, tools/main_job_spread.py) store
``machine_info()`` next to their numbers and the generated tables print ``machine_line()``.
"""

import datetime
import os
import platform
import subprocess

# setup.py's default (PULPTRAIN_NATIVE=1 at build time adds -march=native). The build is not recorded in the
# extension itself, so scripts take it as an argument and store it.
DEFAULT_BUILD = "-O3 portable, run-time ISA dispatch"


def _cpu_model_and_flags():
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def isa_level(flags, machine=None):
    """The widest SIMD level the kernels can use on this CPU, from /proc/cpuinfo flags."""
    machine = machine or platform.machine()
    if "avx512f" in flags:
        return "AVX-512 (avx512f)"
    if "avx2" in flags and "fma" in flags:
        return "AVX2+FMA, no AVX-512"
    if "avx2" in flags:
        return "AVX2, no FMA"
    if "asimd" in flags or machine in ("aarch64", "arm64"):
        return "NEON"
    return f"{machine}, no AVX2"


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def machine_info(build=DEFAULT_BUILD):
    """A JSON-ready dict describing this machine, the build and the source commit, dated now (UTC)."""
    model, flags = _cpu_model_and_flags()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = _first_line(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    return {
        "cpu": model,
        "isa": isa_level(flags),
        "logical_cpus": os.cpu_count(),
        "arch": platform.machine(),
        "compiler": _first_line([os.environ.get("CC", "cc"), "--version"]),
        "build": build,
        "commit": commit,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }


def machine_line(info):
    """One line for a generated table header: CPU, ISA, cores; build and compiler; commit; date."""
    parts = [
        f"{info['cpu']}, {info['isa']}, {info['logical_cpus']} logical CPUs",
        f"build {info['build']}" + (f" ({info['compiler']})" if info.get("compiler") else ""),
    ]
    if info.get("commit"):
        parts.append(f"commit {info['commit']}")
    parts.append(info["date"])
    return "; ".join(parts)
