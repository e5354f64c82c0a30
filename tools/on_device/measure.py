"""Instruction counts and memory of one learning event of the exported on-device learner on rv32imfc and on a
Cortex-M4F.

For each setting it exports a bundle (pulptrain.export), builds it for rv32imfc bare metal and runs it under
qemu-system-riscv32 -icount shift=0 (rdinstret counts retired instructions exactly), on one core and on a
team of 8 virtual cores (the serial backend runs them one after another; the critical path is the
instructions outside the forks plus the slowest core of each fork, as tools/riscv/count_kernels.c). Where the
program fits the Cortex-M4F board's memory (mps2-an386: 4 MiB for code and constants, 16 MiB of RAM), the
same bundle also runs on one Cortex-M4F core under qemu-system-arm -icount shift=7 (the CMSDK timers count
retired instructions exactly: csrc/core/pt_counter.h). It records, per learning event (one batch of new
images at batch index >= 1, the buffer full):

* frozen: the INT8 frozen stage for one new image (the mean over the images run);
* end: the end of the batch: CWR* consolidation and the replay-buffer update with the batch's latent codes
  (the frozen stage emits the buffer's codes directly, so this is the latent quantize + buffer update);
* step: one adaptive training mini-batch (replay decode, forward, backward, SGD update) at each mini-batch
  size measured, and a least-squares line through them (the cost is affine in the rows);
* classes (where the Cortex-M4F runs): each phase's instructions by class on one core of each target, from
  the QEMU plugin tools/arm/insn_classes.c (one region per counted phase), for pulptrain energy's model;
* memory: the static arena (pt_cl_learner_arena_bytes, for the setting's mini-batch and an 8-core team),
  the painted-stack high-water mark, and .text / .data / .bss of the program (the size tool).

Settings: ``small`` is the Fashion-MNIST model of ``pulptrain cl`` (MobileNetV1 width 0.25, 28x28x1, l = 19,
500 replays at 8 bits, 150 new images per batch: 30 new + 98 replays in mini-batches of 128), learning a real
batch after a batch 0 learnt in Python; ``paper`` is the paper's setting (width 1.0, 128x128x3, l = 19, 1500
replays at 8 bits, 300 new images per batch: 21 new + 107 replays in mini-batches of 128), random weights
and a buffer filled with random codes (instruction counts do not depend on the values, except the INT8
requantization's short path for outputs <= 0). The paper's mini-batch of 128 is too slow to run under QEMU
here: its steps are measured at smaller mini-batches (--paper-minibatches) and the 128-row step is the
affine extrapolation; the arena is the one of the 128-row mini-batch.

    python3 tools/on_device/measure.py                      # both settings (about 6 minutes on one core here)
    python3 tools/on_device/measure.py --settings small     # the small one (about a minute)

Writes tools/on_device/results/measure.json (or --out); docs/on_device.md shows it
(python3 tools/doc_tables.py on-device ...).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from pulptrain import models  # noqa: E402
from pulptrain.cl.buffer import LatentReplayBuffer  # noqa: E402
from pulptrain.cl.learner import LatentReplayLearner  # noqa: E402
from pulptrain.energy import CLASSES  # noqa: E402
from pulptrain.export import export_bundle, learner_arena_bytes, parse_log  # noqa: E402
from pulptrain.frozen_int8 import quantize_frozen  # noqa: E402

CORES = 8
FROZEN_IMAGES_RUN = 1  # paper setting: frozen-stage runs counted per batch (~0.6 G instructions each)
SETTINGS = {
    "small": dict(
        width=0.25,
        input_size=28,
        in_channels=1,
        num_classes=10,
        lr_layer=19,
        replays=500,
        bits=8,
        new=150,
        minibatches=[128],
        data="fashion-mnist",
        m4f=True,  # fits mps2-an386's memory (the paper setting does not: about 90 MiB at mini-batch 2)
    ),
    "paper": dict(
        width=1.0,
        input_size=128,
        in_channels=3,
        num_classes=50,
        lr_layer=19,
        replays=1500,
        bits=8,
        new=300,
        minibatches=[2, 4, 8],
        target_minibatch=128,
        data="random",
        steps_run=2,  # the first step of a batch, and one in the steady state (the one reported)
    ),
}
# QEMU virt RAM (MiB); the paper setting's buffer, arena and FP32 training state need more than tools/riscv's 128.
RV32_MEMORY = {"small": 128, "paper": 1024}


def _rv32_memory_flags(mib):
    """(run command, link-flags make variable) for a QEMU virt machine of `mib` MiB: code, constants and initial
    data in the first 32 MiB (the paper setting's FP32 adaptive weights alone are 8.7 MB), RAM after them."""
    flash = 32 * 2**20
    ldflags = (
        f"-Wl,--defsym=__flash=0x80000000 -Wl,--defsym=__flash_size={flash:#x} "
        f"-Wl,--defsym=__ram={0x80000000 + flash:#x} -Wl,--defsym=__ram_size={mib * 2**20 - flash:#x} "
        "-Wl,--defsym=__stack_size=0x40000"
    )
    qemu = (
        f"qemu-system-riscv32 -machine virt -m {mib}M -cpu rv32,a=false,d=false -nographic -bios none -icount shift=0"
    )
    return qemu, f"RV32_LDFLAGS={ldflags}"


def _learner(s, minibatch, rng):
    model = models.mobilenet_v1(
        s["width"], num_classes=s["num_classes"], input_size=s["input_size"], in_channels=s["in_channels"], rng=rng
    )
    frozen, adaptive = models.split(model, s["lr_layer"])
    frozen.eval()
    calibration = _images(s, 32, rng)[0]
    qf = quantize_frozen(frozen, calibration, lr_bits=s["bits"])
    shape = qf.layer_table(calibration.shape[1:]).output_shape
    buffer = LatentReplayBuffer(s["replays"], shape, bits=s["bits"], seed=1, num_classes=s["num_classes"])
    learner = LatentReplayLearner(
        qf, adaptive, buffer, num_classes=s["num_classes"], epochs=1, first_epochs=1, minibatch=minibatch, cwr=True
    )
    return learner


def _images(s, n, rng, offset=0):
    if s["data"] == "fashion-mnist":
        from pulptrain.cl.scenarios import fashion_mnist_preprocess
        from pulptrain.data import fashion_mnist

        x, y, _, _ = fashion_mnist()
        return fashion_mnist_preprocess(x[offset : offset + n]), y[offset : offset + n].astype(np.int64)
    x = rng.standard_normal((n, s["in_channels"], s["input_size"], s["input_size"])).astype(np.float32)
    return x, rng.integers(0, s["num_classes"], n)


# Per target: binutils prefix, the plugin's ISA name, the bundle Makefile's QEMU variable (its default for the
# Cortex-M4F; rv32's comes from _rv32_memory_flags).
TARGETS = {
    "rv32": dict(binutils="riscv64-unknown-elf-", isa="riscv", qemu_var="QEMU_RV32"),
    "m4f": dict(binutils="arm-none-eabi-", isa="thumb", qemu_var="QEMU_ARM"),
}
QEMU_M4F = "qemu-system-arm -M mps2-an386 -nographic -icount shift=7"
CLASS_PLUGIN = os.path.join(ROOT, "build", "arm", "insn_classes.so")  # make -C tools/arm build/arm/insn_classes.so
CLASSES_LINE = re.compile(r"^INSN_CLASSES region=\d+ total=(\d+) (.*)$")
MAX_MARKER_GAP = 64  # instructions between a phase's counter reads and its class region's markers


def _make(bundle, args):
    done = subprocess.run(["make", "--no-print-directory", "-C", bundle] + args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"make {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _run(bundle, build, cores, qemu, target="rv32", extra=(), classes=False):
    """Build and run the bundle on `target` under `qemu` (the run command without its program); with classes,
    also under the instruction-class plugin, one region per counted phase: (parsed log, regions or None)."""
    t = TARGETS[target]
    args = [f"OUT={build}", f"CORES={cores}", *extra]
    regions_log = os.path.join(build, f"classes_{target}.log")
    if classes:
        _make(bundle, [os.path.join(build, f"app_{target}.elf"), *args])
        symbols = subprocess.run(
            [t["binutils"] + "nm", os.path.join(build, f"app_{target}.elf")], capture_output=True, text=True, check=True
        ).stdout
        marker = {line.split()[2]: "0x" + line.split()[0] for line in symbols.splitlines() if line.count(" ") == 2}
        qemu += (
            f" -plugin {CLASS_PLUGIN},isa={t['isa']},begin={marker['pt_region_begin']},end={marker['pt_region_end']}"
            f" -d plugin -D {regions_log}"
        )
    out = _make(bundle, [f"run-{target}", f"{t['qemu_var']}={qemu}", *args])
    if "DONE status=ok" not in out:
        raise RuntimeError(f"the {target} run did not finish:\n{out[-3000:]}")
    regions = None
    if classes:
        with open(regions_log) as f:
            regions = []
            for line in f:
                m = CLASSES_LINE.match(line.strip())
                if m:
                    counts = dict(kv.split("=") for kv in m.group(2).split())
                    regions.append({c: int(counts[c]) for c in CLASSES})
    return parse_log(out), regions


def _size(build, target="rv32"):
    out = (
        subprocess.run(
            [TARGETS[target]["binutils"] + "size", os.path.join(build, f"app_{target}.elf")],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[1]
        .split()
    )
    return dict(text=int(out[0]), data=int(out[1]), bss=int(out[2]))


def _phase_classes(log, regions):
    """Instruction classes per phase from the plugin's regions, in the order the application counts them:
    the frozen stage per image of the batch, its training steps, the end of the batch (then the test
    images). Each phase's regions must agree with the counter's count of it up to the markers' few
    instructions per region."""
    computed, steps = log["FROZEN"][0]["images"], len(log["STEP"])
    if len(regions) < computed + steps + 1:
        raise RuntimeError(
            f"the class plugin reported {len(regions)} regions, expected at least {computed + steps + 1}"
        )
    frozen, step_regions, end = regions[:computed], regions[computed : computed + steps], regions[computed + steps]
    phases = [(frozen, log["FROZEN"][0]["instructions"])]  # (its regions, the counter's count)
    phases += [([region], st["instructions"]) for region, st in zip(step_regions, log["STEP"])]
    phases.append(([end], log["END"][0]["instructions"]))
    for phase_regions, counted in phases:
        total = sum(sum(r.values()) for r in phase_regions)
        if abs(total - counted) > MAX_MARKER_GAP * len(phase_regions):
            raise RuntimeError(f"class regions count {total} instructions against the counter's {counted}")
    return dict(
        frozen_per_image={c: sum(r[c] for r in frozen) / computed for c in CLASSES},
        step=step_regions[-1],  # the last step run: the steady state, as `step` below
        end=end,
    )


def _phases(log, build, target, regions=None):
    """The counts of one run's phases (its log lines), their instruction classes (with the plugin's regions),
    its stack high-water mark and its program size."""
    steps = log["STEP"]
    return dict(
        frozen_per_image=log["FROZEN"][0]["instructions"] / log["FROZEN"][0]["images"],
        frozen_per_image_critical=log["FROZEN"][0]["critical"] / log["FROZEN"][0]["images"],
        step_rows=[st["rows"] for st in steps],
        step=[st["instructions"] for st in steps],
        step_critical=[st["critical"] for st in steps],
        end=log["END"][0]["instructions"],
        end_critical=log["END"][0]["critical"],
        plan={k: log["BATCH"][0][k] for k in ("new_per_step", "replays_per_step", "steps")},
        stack_high_water=log["STACK"][0]["high_water"],
        size=_size(build, target),
        **({"classes": _phase_classes(log, regions)} if regions is not None else {}),
    )


def _check_same_learning(rv32_log, m4f_log):
    """The two targets must have learnt the same batch: the same plan, rows and buffer decisions (their
    generators' states; the floats may differ in the last bits, as the C libraries' expf / logf do)."""
    keys = ("images", "steps", "rows", "buffer_size", "learner_rng", "buffer_rng")
    a, b = ([{k: line[k] for k in keys} for line in log["BATCH"]] for log in (rv32_log, m4f_log))
    if a != b:
        raise RuntimeError(f"the rv32 and Cortex-M4F runs learnt differently: {a} != {b}")


def measure_setting(name, build_root):
    s = SETTINGS[name]
    rng = np.random.default_rng(0)
    result = dict(setting={k: v for k, v in s.items() if k != "minibatches"}, minibatches={})
    for minibatch in s["minibatches"]:
        learner = _learner(s, minibatch, rng)
        synthetic = s["data"] == "random"
        if not synthetic:  # batch 0 learnt in Python fills the buffer; the bundle learns batch 1
            learner.fit_batch(*_images(s, s["replays"], rng))
        batch = _images(s, s["new"], rng, offset=s["replays"])
        bundle = os.path.join(build_root, f"{name}_mb{minibatch}")
        manifest = export_bundle(
            learner,
            bundle,
            stream=[batch],
            cores=CORES,
            synthetic_buffer=synthetic,
            frozen_images_run=FROZEN_IMAGES_RUN if synthetic else 0,
            steps_run=s.get("steps_run", 0),
        )
        runs = {}
        build = os.path.join(bundle, "build")
        qemu_rv32, rv32_link = _rv32_memory_flags(RV32_MEMORY[name])
        with_classes = bool(s.get("m4f"))  # the class plugin where both targets run (it slows QEMU down)
        for cores in (1, CORES):
            log, regions = _run(bundle, build, cores, qemu_rv32, extra=[rv32_link], classes=with_classes and cores == 1)
            runs[cores] = _phases(log, build, "rv32", regions)
        if s.get("m4f"):
            m4f_log, regions = _run(bundle, build, 1, QEMU_M4F, target="m4f", classes=True)
            runs["m4f"] = _phases(m4f_log, build, "m4f", regions)
            _check_same_learning(log, m4f_log)
        # the rv32 build's arena (its 4x4 matmul tile's workspace), as the application reports it
        arena = log["BUNDLE"][0]["arena_bytes"]
        assert arena == manifest["arena_bytes_scalar"] == log["BUNDLE"][0]["arena_needed_full_team"]
        result["minibatches"][minibatch] = dict(arena_bytes=arena, runs=runs)
    if "target_minibatch" in s:
        result["extrapolated"] = _extrapolate(result, s["target_minibatch"])
        learner = _learner(s, s["target_minibatch"], rng)
        sizes = dict(min_new=s["new"], max_new=s["new"], scalar=True)
        result["extrapolated"]["arena_bytes"] = learner_arena_bytes(learner, cores=CORES, **sizes)
        result["extrapolated"]["arena_bytes_one_core"] = learner_arena_bytes(learner, cores=1, **sizes)
    return result


def _extrapolate(result, target):
    """Least-squares line instret = a + b * rows through the measured steps (the last step run of each
    mini-batch size: past the first step of the batch, which sets up the epoch and the fresh optimizer), for
    one core and the critical path; the step at `target` rows and the largest relative residual of the fit."""
    out = {}
    for cores in (1, CORES):
        for key in ("step", "step_critical"):
            rows, counts = [], []
            for mb in result["minibatches"].values():
                run = mb["runs"][cores]
                rows.append(run["step_rows"][-1])
                counts.append(run[key][-1])
            a, b = np.polyfit(np.array(rows, float), np.array(counts, float), 1)[::-1]
            fit = a + b * np.array(rows, float)
            out[f"{key}_c{cores}"] = dict(
                intercept=float(a),
                per_row=float(b),
                at_target=float(a + b * target),
                max_relative_residual=float(np.max(np.abs(fit - counts) / np.array(counts, float))),
            )
    out["target_rows"] = target
    return out


def _tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["small", "paper"])
    parser.add_argument("--out", default=os.path.join(ROOT, "tools", "on_device", "results", "measure.json"))
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "on_device"), help="bundles and builds")
    parser.add_argument("--paper-minibatches", type=int, nargs="+", default=SETTINGS["paper"]["minibatches"])
    args = parser.parse_args(argv)
    SETTINGS["paper"]["minibatches"] = args.paper_minibatches
    built = subprocess.run(
        ["make", "-C", os.path.join(ROOT, "tools", "arm"), CLASS_PLUGIN], capture_output=True, text=True
    )
    if built.returncode != 0:
        parser.error(f"cannot build the instruction-class plugin {CLASS_PLUGIN}:\n{built.stderr[-2000:]}")
    for tool in ("riscv64-unknown-elf-gcc", "qemu-system-riscv32", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            parser.error(
                f"{tool} not found (see tools/riscv/README.md and tools/arm/README.md for the Debian packages)"
            )
    previous = {}
    if os.path.isfile(args.out):
        with open(args.out) as f:
            previous = json.load(f).get("settings", {})
    results = dict(previous)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    for name in args.settings:
        print(f"measuring {name} ...", flush=True)
        results[name] = measure_setting(name, args.build)
        results[name].update(commit=commit.stdout.strip() or "unknown", date=datetime.date.today().isoformat())
        doc = dict(
            format="pulptrain.on_device.measure/1",
            cores=CORES,
            settings=results,
            toolchain=_tool_version(["riscv64-unknown-elf-gcc", "--version"]),
            qemu=_tool_version(["qemu-system-riscv32", "--version"]),
            m4f_toolchain=_tool_version(["arm-none-eabi-gcc", "--version"]),
            machine=platform.machine(),
            commit=commit.stdout.strip() or "unknown",
            date=datetime.date.today().isoformat(),
        )
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:  # after every setting, so a long run keeps what it measured
            json.dump(doc, f, indent=1)
            f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
