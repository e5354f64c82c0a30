"""The Cortex-M4F instruction counter (csrc/core/pt_counter.h: QEMU's -icount virtual clock read through the
CMSDK timers) on assembly loops of known length, and the checker of its output. The run needs the Arm
toolchain and qemu-system-arm (.ci/install) and is skipped without them; `make -C tools/arm validate` runs the
same check with loops up to 1.8e9 instructions."""

import importlib.util
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("count_validate", os.path.join(ROOT, "tools", "arm", "count_validate.py"))
count_validate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(count_validate)

TOOLS = ("make", "arm-none-eabi-gcc", "qemu-system-arm")
CLASSES = ("alu", "load_store", "branch", "fp_load_store", "fp_arith", "fp_fma")


def test_checker_accepts_exact_and_rejects_off_by_one_counts():
    exact = [f"VALIDATE loop=alu k=4 n={n} instructions={4 * n + 5 if n else 4}" for n in (0, 1, 7, 1000)]
    ok, messages = count_validate.check(count_validate.parse(exact))
    assert ok and "exact" in messages[0]
    off = exact[:-1] + ["VALIDATE loop=alu k=4 n=1000 instructions=4006"]
    assert not count_validate.check(count_validate.parse(off))[0]
    # a constant far above a call's own setup is not a counter that sees every instruction
    assert not count_validate.check(count_validate.parse(["VALIDATE loop=alu k=4 n=1 instructions=504"]))[0]
    assert not count_validate.check(count_validate.parse(["VALIDATE loop=empty k=0 n=0 instructions=29"]))[0]


@pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason="needs make, arm-none-eabi-gcc, qemu-system-arm")
def test_counter_is_exact_on_loops_of_known_length():
    built = subprocess.run(
        ["make", "--no-print-directory", "-C", "tools/arm", os.path.join(ROOT, "build", "arm", "count_validate.elf")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    lengths = (0, 1, 2, 3, 10, 4321, 250000)
    args = "".join(f",arg={n}" for n in lengths)
    run = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-nographic",
            "-icount",
            "shift=7",
            "-semihosting-config",
            f"enable=on,target=native{args}",
            "-kernel",
            os.path.join(ROOT, "build", "arm", "count_validate.elf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    loops = count_validate.parse((run.stdout + run.stderr).splitlines())
    assert set(loops) == {"empty", "alu", "memory_fp"}
    for name, k in (("alu", 4), ("memory_fp", 6)):
        rows = {n: count for kk, n, count in loops[name] if kk == k}
        assert sorted(rows) == sorted(lengths)
        # one more iteration is exactly K more instructions, for every length
        constant = rows[1] - k
        for n in lengths[1:]:
            assert rows[n] == k * n + constant, (name, n, rows[n])
        assert 0 <= constant <= count_validate.MAX_CONSTANT
    ok, messages = count_validate.check(loops)
    assert ok, messages


@pytest.mark.skipif(
    not all(shutil.which(t) for t in (*TOOLS, "gcc", "nm")), reason="needs gcc, nm and the Arm toolchain and QEMU"
)
def test_class_plugin_counts_each_class_of_known_loops(tmp_path):
    build = os.path.join(ROOT, "build", "arm")
    elf, plugin = os.path.join(build, "count_validate.elf"), os.path.join(build, "insn_classes.so")
    built = subprocess.run(
        ["make", "--no-print-directory", "-C", "tools/arm", elf, plugin], cwd=ROOT, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout + built.stderr
    symbols = subprocess.run(["nm", elf], capture_output=True, text=True, check=True).stdout.split("\n")
    address = {line.split()[2]: "0x" + line.split()[0] for line in symbols if len(line.split()) == 3}
    log = tmp_path / "classes.log"
    lengths = (1, 2, 1000)
    run = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native" + "".join(f",arg={n}" for n in lengths),
            "-kernel",
            elf,
            "-plugin",
            f"{plugin},isa=thumb,begin={address['pt_region_begin']},end={address['pt_region_end']}",
            "-d",
            "plugin",
            "-D",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    regions = [dict(t.split("=") for t in line.split()[1:]) for line in log.read_text().splitlines()]
    regions = [{k: int(v) for k, v in r.items()} for r in regions]
    assert len(regions) == 2 * len(lengths)  # the alu loop at each length, then the memory/FP loop
    # per iteration: subs, add, eor (alu) + bne; ldr, str (load_store), vldr, vfma, subs, bne
    per_iteration = [
        {"alu": 3, "branch": 1},
        {"load_store": 2, "fp_load_store": 1, "fp_fma": 1, "alu": 1, "branch": 1},
    ]
    for loop, step in enumerate(per_iteration):
        first = regions[loop * len(lengths)]
        for i, n in enumerate(lengths):
            r = regions[loop * len(lengths) + i]
            for c in CLASSES:
                assert r[c] - first[c] == step.get(c, 0) * (n - lengths[0]), (loop, n, c)
            assert r["total"] == sum(r[c] for c in CLASSES)
