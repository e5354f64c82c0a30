"""Cost model: measured instruction counts of one learning event -> modelled time, energy and battery life on a
single Cortex-M4F core (the STM32L4 of the paper) and on an 8-core PULP cluster (the paper's VEGA).

Only the counts are measured: those of an exported learning application, phase by phase, on both targets
(``measured_counts`` of tools/on_device/measure.py's result), or the kernels' (``make -C tools/arm count`` on
the Cortex-M4F, ``make -C tools/riscv count`` on rv32imfc, with their split into instruction classes by a QEMU
plugin, tools/arm/insn_classes.c; ``proxy_counts``): exact retired instructions under QEMU. Everything after
them is a **model**: cycles per instruction class, clocks and power come from the documents named next to each
constant below; a phase without measured classes takes the stated
mix of its kind (PHASE_MIXES). ``sensitivity()`` varies every assumption over a plausible range and reports how
far each moves the speedup and the energy ratio.

Counts file (``COUNTS_SCHEMA``, JSON)::

    {"schema": "pulptrain-energy-counts/1",
     "event": "what one learning event is",
     "proxy": false,                      # true: assembled from kernel counts, not one measured program
     "source": "where the counts come from",
     "cores": 8,                          # cores of the rv32 critical path
     "phases": [{"name": "...",
                 "kind": "fp32" | "int8" | "other",   # picks the instruction-class mix (PHASE_MIXES)
                 "m4f_instructions": 123,             # one Cortex-M4F core
                 "rv32_instructions": 120,            # one rv32 core
                 "rv32_critical": 16,                 # the slowest core of the 8-core team, summed over forks
                 "m4f_classes": {"alu": 61, ...},     # optional, measured: instructions per class (CLASSES)
                 "rv32_classes": {"alu": 60, ...},    #   of one core; the mix of each target
                 "mix": {"alu": 0.5, ...}}]}          # optional: a mix for both targets (fractions, sum 1)

A target's mix is its measured classes, else ``mix``, else the kind's mix. The critical path of the 8-core
team is taken to have the one-core mix.
"""

import dataclasses
import json
import math

__all__ = [
    "COUNTS_SCHEMA",
    "CLASSES",
    "PHASE_MIXES",
    "CostModel",
    "check_counts",
    "load_counts",
    "model_event",
    "sensitivity",
    "EVENT_EPOCHS",
    "event_plan",
    "measured_counts",
    "proxy_counts",
    "format_report",
]

COUNTS_SCHEMA = "pulptrain-energy-counts/1"

# ---- instruction classes and the assumed mix per kind of phase, for phases without measured classes ----
CLASSES = ("alu", "load_store", "branch", "fp_load_store", "fp_arith", "fp_fma")

# Fallbacks for counts without measured classes: the Cortex-M4F's measured mix of the conv5 pointwise forward,
# grad_input and grad_weight steps (FP32, tools/arm/results/counts.json, rounded; rv32's is within 2 points)
FP32_TRAINING_MIX = {
    "alu": 0.30,
    "load_store": 0.02,
    "branch": 0.04,
    "fp_load_store": 0.22,
    "fp_arith": 0.00,
    "fp_fma": 0.42,
}
# and of the conv5 INT8 pointwise layer (the M4F's; rv32 needs more ALU work: about 66 % ALU, 30 % loads).
INT8_INFERENCE_MIX = {
    "alu": 0.37,
    "load_store": 0.59,
    "branch": 0.04,
    "fp_load_store": 0.0,
    "fp_arith": 0.0,
    "fp_fma": 0.0,
}
# Bookkeeping (buffer, packing, control): integer code (an assumption, not measured).
OTHER_MIX = {"alu": 0.60, "load_store": 0.28, "branch": 0.12, "fp_load_store": 0.0, "fp_arith": 0.0, "fp_fma": 0.0}
PHASE_MIXES = {"fp32": FP32_TRAINING_MIX, "int8": INT8_INFERENCE_MIX, "other": OTHER_MIX}

# ---- Cortex-M4F (STM32L4) cycles per instruction: Arm Cortex-M4 TRM (DDI 0439), "Instruction set summary"
# (processor timing) and "FPU instruction set" (FPU timing). No dual issue; 3-stage pipeline. ----
M4F_CPI = {
    "alu": 1.0,  # data processing, MUL/MLA (32-bit result): 1 cycle
    "load_store": 2.0,  # LDR/STR: 2 cycles (neighbouring loads can pipeline to 1 each: not modelled)
    "branch": 2.0,  # 1 + P with P = 1..3 refill cycles when taken, 1 when not taken: 2 on average (assumed)
    "fp_load_store": 2.0,  # VLDR/VSTR: 2 cycles
    "fp_arith": 1.0,  # VADD/VSUB/VMUL/VMOV: 1 cycle
    "fp_fma": 3.0,  # VFMA/VMLA: 3 cycles
}
# STM32L4 at 80 MHz runs flash with 4 wait states; the ART accelerator (prefetch + instruction cache) hides
# them in loops. 1.0 = hidden entirely (assumed); the sensitivity goes to 1.3.
M4F_FLASH_STALL_FACTOR = 1.0
M4F_CLOCK_HZ = 80e6  # STM32L4 (e.g. STM32L476) maximum SYSCLK, the paper's baseline
# STM32L476xx datasheet (DS10198), features page: run mode 100 uA/MHz (LDO), Stop 2 1.1 uA (SRAM retained,
# no RTC); typical figures at VDD = 3.0 V.
STM32L4_RUN_UA_PER_MHZ = 100.0
STM32L4_STOP2_UA = 1.1
STM32L4_VDD = 3.0

# ---- PULP (RI5CY cores of the VEGA cluster) ----
# RI5CY: single-issue 4-stage in-order core, 1 cycle per instruction; single-cycle TCDM loads/stores (bank
# conflicts are the contention factor); taken branches 3 cycles, not taken 1: 2 on average (assumed); the FPU
# pipelines one FMA per cycle.
PULP_CPI = {"alu": 1.0, "load_store": 1.0, "branch": 2.0, "fp_load_store": 1.0, "fp_arith": 1.0, "fp_fma": 1.0}
# TCDM bank conflicts and load-use stalls on 8 cores: 10 % more cycles (assumed; sensitivity 1.0 .. 1.3).
PULP_CONTENTION_FACTOR = 1.10
# Optional, off by default (counts are rv32imfc, compiled without Xpulp): hardware loops remove the loop
# counter and branch and post-increment loads remove the pointer increments. In the 4x4 tile's k step that is
# 4 of 28 instructions: factor 24/28 on the instruction count of the critical path.
XPULP_INSTRUCTION_FACTOR = 24 / 28
# VEGA (the paper's 22 nm chip): 8 worker cores share 4 FPUs (cluster-level FP issue limit).
VEGA_WORKER_CORES = 8
VEGA_SHARED_FPUS = 4
VEGA_PEAK_POWER_W = 49.4e-3  # the paper's VEGA figure at peak
VEGA_FP32_FLOP_PER_S_PER_W = 79e9  # the paper's VEGA FP32 efficiency
VEGA_SLEEP_W = 1.7e-6  # retentive sleep
# Cluster clock: the operating point at which 4 FPUs x one FMA (2 FLOP) per cycle deliver 79 GFLOP/s/W at
# 49.4 mW, i.e. 3.9 GFLOP/s / 8 FLOP per cycle = 488 MHz. (Derived from the two figures above; the paper's own
# operating point is not restated here: override with --pulp-mhz.)
PULP_CLOCK_HZ = VEGA_FP32_FLOP_PER_S_PER_W * VEGA_PEAK_POWER_W / (2 * VEGA_SHARED_FPUS)

# ---- the paper's figures and the use case ----
PAPER_SPEEDUP = 65.0
PAPER_ENERGY_RATIO = 37.0
PAPER_LIFETIME_H = 535.0
EVENT_PERIOD_S = 60.0  # one learning event a minute
# Battery (ASSUMPTION: the paper's cell is not restated here): a 1000 mAh single-cell LiPo at 3.7 V; the
# conversion to the chips' supplies is taken as lossless.
BATTERY_MAH = 1000.0
BATTERY_V = 3.7


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Every modelled quantity, defaulting to the documented constants of this module."""

    m4f_cpi: dict = dataclasses.field(default_factory=lambda: dict(M4F_CPI))
    m4f_flash_stall_factor: float = M4F_FLASH_STALL_FACTOR
    m4f_clock_hz: float = M4F_CLOCK_HZ
    m4f_run_ua_per_mhz: float = STM32L4_RUN_UA_PER_MHZ
    m4f_sleep_ua: float = STM32L4_STOP2_UA
    m4f_vdd: float = STM32L4_VDD
    pulp_cpi: dict = dataclasses.field(default_factory=lambda: dict(PULP_CPI))
    pulp_contention_factor: float = PULP_CONTENTION_FACTOR
    xpulp: bool = False
    pulp_clock_hz: float = PULP_CLOCK_HZ
    pulp_shared_fpus: int = VEGA_SHARED_FPUS
    pulp_peak_power_w: float = VEGA_PEAK_POWER_W
    pulp_sleep_w: float = VEGA_SLEEP_W
    mixes: dict = dataclasses.field(default_factory=lambda: {k: dict(v) for k, v in PHASE_MIXES.items()})

    @property
    def m4f_power_w(self):
        """Run power at the clock: datasheet current per MHz x MHz x VDD."""
        return self.m4f_run_ua_per_mhz * 1e-6 * (self.m4f_clock_hz / 1e6) * self.m4f_vdd

    @property
    def pulp_power_w(self):
        """Cluster power at the clock: the VEGA peak figure scaled linearly with the clock (same voltage,
        dynamic power; leakage not separated), so the energy per cycle stays that of the paper's figure."""
        return self.pulp_peak_power_w * self.pulp_clock_hz / PULP_CLOCK_HZ

    @property
    def m4f_sleep_w(self):
        return self.m4f_sleep_ua * 1e-6 * self.m4f_vdd


def _mix_of(phase, model, target):
    """The class fractions of a phase on `target` ("m4f" or "rv32"): measured classes, else mix, else kind's."""
    classes = phase.get(f"{target}_classes")
    if classes:
        total = sum(classes.values())
        return {c: classes[c] / total for c in CLASSES}
    return phase.get("mix") or model.mixes[phase["kind"]]


def _weighted_cpi(mix, cpi):
    return sum(mix[c] * cpi[c] for c in CLASSES)


def m4f_cycles(phase, model):
    """Cycles of one phase on the Cortex-M4F: instructions x mix-weighted CPI x flash stall factor."""
    mix = _mix_of(phase, model, "m4f")
    return phase["m4f_instructions"] * _weighted_cpi(mix, model.m4f_cpi) * model.m4f_flash_stall_factor


def pulp_cycles(phase, cores, model):
    """Cycles of one phase on the cluster: the critical path's issue cycles (instructions x CPI x contention),
    or, when the cores' FP instructions exceed what the shared FPUs issue, the FPU-bound cycles
    (all cores' FP instructions / FPUs), whichever is larger."""
    mix = _mix_of(phase, model, "rv32")
    critical = phase["rv32_critical"] * (XPULP_INSTRUCTION_FACTOR if model.xpulp else 1.0)
    issue = critical * _weighted_cpi(mix, model.pulp_cpi) * model.pulp_contention_factor
    fp_share = mix["fp_arith"] + mix["fp_fma"]
    fpu_bound = critical * fp_share * min(cores, VEGA_WORKER_CORES) / model.pulp_shared_fpus
    return max(issue, fpu_bound)


def _number(value, name, integer=False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < 0:
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_counts(counts):
    """Raises ValueError naming the field when ``counts`` does not follow COUNTS_SCHEMA; returns it."""
    if not isinstance(counts, dict):
        raise ValueError(f"counts must be a JSON object, got {type(counts).__name__}")
    if counts.get("schema") != COUNTS_SCHEMA:
        raise ValueError(f"counts: schema must be {COUNTS_SCHEMA!r}, got {counts.get('schema')!r}")
    _number(counts.get("cores"), "counts: cores", integer=True)
    if counts["cores"] < 1:
        raise ValueError(f"counts: cores must be >= 1, got {counts['cores']}")
    phases = counts.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ValueError("counts: phases must be a non-empty list")
    for i, p in enumerate(phases):
        where = f"counts: phases[{i}]"
        if not isinstance(p, dict):
            raise ValueError(f"{where} must be an object")
        if not isinstance(p.get("name"), str):
            raise ValueError(f"{where}.name must be a string")
        if p.get("kind") not in PHASE_MIXES:
            raise ValueError(f"{where}.kind must be one of {sorted(PHASE_MIXES)}, got {p.get('kind')!r}")
        for key in ("m4f_instructions", "rv32_instructions", "rv32_critical"):
            _number(p.get(key), f"{where}.{key}", integer=True)
        if p["rv32_critical"] > p["rv32_instructions"] and counts["cores"] > 1:
            raise ValueError(f"{where}.rv32_critical exceeds rv32_instructions (the critical path of a team)")
        for target in ("m4f", "rv32"):
            classes = p.get(f"{target}_classes")
            if classes is None:
                continue
            if not isinstance(classes, dict) or set(classes) != set(CLASSES):
                raise ValueError(f"{where}.{target}_classes must give a count for each of {list(CLASSES)}")
            for c in CLASSES:
                _number(classes[c], f"{where}.{target}_classes.{c}", integer=True)
            if sum(classes.values()) == 0:
                raise ValueError(f"{where}.{target}_classes counts no instruction")
        mix = p.get("mix")
        if mix is not None:
            if not isinstance(mix, dict) or set(mix) != set(CLASSES):
                raise ValueError(f"{where}.mix must give a fraction for each of {list(CLASSES)}")
            for c in CLASSES:
                _number(mix[c], f"{where}.mix.{c}")
            if abs(sum(mix.values()) - 1.0) > 1e-6:
                raise ValueError(f"{where}.mix fractions must sum to 1, got {sum(mix.values()):g}")
    if sum(p["m4f_instructions"] for p in phases) == 0 or sum(p["rv32_critical"] for p in phases) == 0:
        raise ValueError("counts: the event has no instructions on one of the targets")
    return counts


def load_counts(path):
    """Reads and checks a counts JSON file (ValueError naming the problem, FileNotFoundError)."""
    with open(path) as f:
        try:
            counts = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON: {e}") from None
    return check_counts(counts)


def _lifetime_h(event_j, event_s, sleep_w, period_s, battery_j):
    """Hours of one event every period_s, asleep in between; None when the event outlasts the period."""
    if event_s > period_s:
        return None
    average_w = (event_j + sleep_w * (period_s - event_s)) / period_s
    return battery_j / average_w / 3600.0


def model_event(counts, model=None, battery_mah=BATTERY_MAH, battery_v=BATTERY_V, period_s=EVENT_PERIOD_S):
    """The modelled time, energy and lifetime of one learning event on both targets (a dict, JSON-ready)."""
    model = model or CostModel()
    check_counts(counts)
    for name, value in (("battery_mah", battery_mah), ("battery_v", battery_v), ("period_s", period_s)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    cores = counts["cores"]
    phases = []
    for p in counts["phases"]:
        m4f_s = m4f_cycles(p, model) / model.m4f_clock_hz
        pulp_s = pulp_cycles(p, cores, model) / model.pulp_clock_hz
        phases.append(
            {
                "name": p["name"],
                "kind": p["kind"],
                "m4f_instructions": p["m4f_instructions"],
                "rv32_instructions": p["rv32_instructions"],
                "rv32_critical": p["rv32_critical"],
                "m4f_s": m4f_s,
                "pulp_s": pulp_s,
            }
        )
    m4f_s = sum(p["m4f_s"] for p in phases)
    pulp_s = sum(p["pulp_s"] for p in phases)
    m4f_j = m4f_s * model.m4f_power_w
    pulp_j = pulp_s * model.pulp_power_w
    battery_j = battery_mah * 1e-3 * battery_v * 3600.0
    return {
        "event": counts.get("event", ""),
        "proxy": bool(counts.get("proxy", False)),
        "cores": cores,
        "phases": phases,
        "m4f": {
            "instructions": sum(p["m4f_instructions"] for p in phases),
            "time_s": m4f_s,
            "energy_j": m4f_j,
            "power_w": model.m4f_power_w,
            "lifetime_h": _lifetime_h(m4f_j, m4f_s, model.m4f_sleep_w, period_s, battery_j),
        },
        "pulp": {
            "instructions_critical": sum(p["rv32_critical"] for p in phases),
            "time_s": pulp_s,
            "energy_j": pulp_j,
            "power_w": model.pulp_power_w,
            "lifetime_h": _lifetime_h(pulp_j, pulp_s, model.pulp_sleep_w, period_s, battery_j),
        },
        "speedup": m4f_s / pulp_s,
        "energy_ratio": m4f_j / pulp_j,
        "paper": {"speedup": PAPER_SPEEDUP, "energy_ratio": PAPER_ENERGY_RATIO, "lifetime_h": PAPER_LIFETIME_H},
        "battery": {"mah": battery_mah, "volts": battery_v, "period_s": period_s},
        "model": {
            "m4f_clock_hz": model.m4f_clock_hz,
            "pulp_clock_hz": model.pulp_clock_hz,
            "xpulp": model.xpulp,
            "pulp_shared_fpus": model.pulp_shared_fpus,
        },
    }


def _with_cpi(model, field, cls, value):
    return dataclasses.replace(model, **{field: {**getattr(model, field), cls: value}})


# Each assumption with its plausible range (low, high): a function of (model, value) -> model.
SENSITIVITY = [
    ("M4F VFMA cycles (TRM 3; 1 if fully pipelined)", (1.0, 3.0), lambda m, v: _with_cpi(m, "m4f_cpi", "fp_fma", v)),
    ("M4F VLDR/VSTR cycles (1 pipelined .. 2)", (1.0, 2.0), lambda m, v: _with_cpi(m, "m4f_cpi", "fp_load_store", v)),
    ("M4F LDR/STR cycles (1 pipelined .. 2)", (1.0, 2.0), lambda m, v: _with_cpi(m, "m4f_cpi", "load_store", v)),
    ("M4F branch cycles (1 .. 4)", (1.0, 4.0), lambda m, v: _with_cpi(m, "m4f_cpi", "branch", v)),
    ("M4F flash stall factor (1.0 .. 1.3)", (1.0, 1.3), lambda m, v: dataclasses.replace(m, m4f_flash_stall_factor=v)),
    (
        "STM32L4 run current uA/MHz (datasheet headline 100, +-20 %)",
        (80.0, 120.0),
        lambda m, v: dataclasses.replace(m, m4f_run_ua_per_mhz=v),
    ),
    ("PULP branch cycles (1 .. 3)", (1.0, 3.0), lambda m, v: _with_cpi(m, "pulp_cpi", "branch", v)),
    ("PULP contention factor (1.0 .. 1.3)", (1.0, 1.3), lambda m, v: dataclasses.replace(m, pulp_contention_factor=v)),
    ("PULP shared FPUs (4 .. 8)", (4, 8), lambda m, v: dataclasses.replace(m, pulp_shared_fpus=v)),
    (
        "PULP cluster clock MHz (250 .. 488; power scales with it)",
        (250e6, PULP_CLOCK_HZ),
        lambda m, v: dataclasses.replace(m, pulp_clock_hz=v),
    ),
    ("Xpulp hardware loops + post-increment (off, on)", (0, 1), lambda m, v: dataclasses.replace(m, xpulp=bool(v))),
]


def sensitivity(counts, model=None, **event_args):
    """For each assumption of SENSITIVITY: (name, (low, high), speedup at low/high, energy ratio at low/high),
    largest swing of the energy ratio first."""
    model = model or CostModel()
    rows = []
    for name, (low, high), apply in SENSITIVITY:
        at = [model_event(counts, apply(model, v), **event_args) for v in (low, high)]
        rows.append(
            {
                "assumption": name,
                "range": [low, high],
                "speedup": [r["speedup"] for r in at],
                "energy_ratio": [r["energy_ratio"] for r in at],
            }
        )
    return sorted(rows, key=lambda r: -abs(r["energy_ratio"][1] - r["energy_ratio"][0]))


# ---- the learning event of an exported application, measured on both targets (tools/on_device/measure.py) ----
EVENT_EPOCHS = 4  # epochs per batch of new images: the paper's and `pulptrain cl`'s


def event_plan(new, replays, minibatch):
    """``(new_per_step, replays_per_step, steps_per_epoch)`` of a batch of ``new`` images with a full buffer of
    ``replays`` latents in mini-batches of ``minibatch`` rows: the C learner's plan (pt_cl_learner_plan,
    pulptrain.cl.LatentReplayLearner.minibatch_plan) once the buffer is full."""
    per_step = max(1, new // max(1, (new + replays) // minibatch))
    return per_step, minibatch - per_step, new // per_step


def measured_counts(measure, setting):
    """A counts dict (COUNTS_SCHEMA, proxy: false) of one learning event of the exported application, from the
    JSON of tools/on_device/measure.py: one batch of new images (each through the INT8 frozen stage),
    EVENT_EPOCHS epochs of training mini-batches and the end of the batch (CWR* + buffer update), every
    phase's count measured by the same program on a Cortex-M4F core and on rv32 (one core, and the critical
    path of the team), with each phase's instruction classes on one core of each target where the measurement
    has them. The setting must have a Cortex-M4F run (ValueError naming the setting otherwise)."""
    settings = measure.get("settings", {}) if isinstance(measure, dict) else {}
    if setting not in settings:
        raise ValueError(f"setting {setting!r} is not in the measurement (it has {sorted(settings)})")
    result = settings[setting]
    with_m4f = {mb: entry for mb, entry in result["minibatches"].items() if "m4f" in entry["runs"]}
    if not with_m4f:
        raise ValueError(f"setting {setting!r} has no Cortex-M4F run (its program does not fit the board)")
    minibatch, entry = next(iter(with_m4f.items()))
    s, cores = result["setting"], measure["cores"]
    one, team, m4f = entry["runs"]["1"], entry["runs"][str(cores)], entry["runs"]["m4f"]
    _, _, steps_per_epoch = event_plan(s["new"], s["replays"], int(minibatch))
    steps = EVENT_EPOCHS * steps_per_epoch

    def unit(run, key):
        """One image, one training step (the last run: past the batch's first, which sets up the epoch), or the
        end of the batch."""
        value = run[key]
        return value[-1] if isinstance(value, list) else value

    def phase(name, kind, times, key, critical_key):
        counts = {
            "name": name,
            "kind": kind,
            "m4f_instructions": round(times * unit(m4f, key)),
            "rv32_instructions": round(times * unit(one, key)),
            "rv32_critical": round(times * unit(team, critical_key)),
        }
        for target, run in (("m4f", m4f), ("rv32", one)):  # measured classes (the plugin), one core
            if "classes" in run:
                counts[f"{target}_classes"] = {c: round(times * run["classes"][key][c]) for c in CLASSES}
        return counts

    return {
        "schema": COUNTS_SCHEMA,
        "event": f"one learning event of the exported application, setting {setting!r}: {s['new']} new images "
        f"through the INT8 frozen stage, {EVENT_EPOCHS} epochs x {steps_per_epoch} training mini-batches of "
        f"{minibatch} rows, the end of the batch (MobileNetV1 {s['width']:g}, {s['input_size']}x{s['input_size']}, "
        f"l = {s['lr_layer']})",
        "proxy": False,
        "source": f"tools/on_device/measure.py, commit {result.get('commit', measure.get('commit'))}: per-phase "
        "counts of the same program on a Cortex-M4F core and on rv32imfc (and their instruction classes, where "
        "measured)",
        "cores": cores,
        "phases": [
            phase(
                f"frozen stage (INT8), {s['new']} new images",
                "int8",
                s["new"],
                "frozen_per_image",
                "frozen_per_image_critical",
            ),
            phase(f"training, {steps} mini-batches (FP32 adaptive stage)", "fp32", steps, "step", "step_critical"),
            phase("end of batch: CWR* + buffer update", "other", 1, "end", "end_critical"),
        ],
    }


# ---- the paper-scale event as a proxy from kernel-level counts (its program does not fit the M4F board) ----
# The adaptive stage above LR layer 19 (conv5_4/dw output) in count rows (tools/*/counts.json, batch 1):
# (layer, op, steps, times). The first trainable layer (conv5_4/pw) needs no input gradient.
ADAPTIVE_STAGE_LR19 = [
    ("conv5_x/pw", "pointwise", ("forward", "grad_weight"), 1),  # conv5_4/pw
    ("conv5_x/dw", "depthwise", ("forward", "grad_input", "grad_weight"), 1),  # conv5_5/dw
    ("conv5_x/pw", "pointwise", ("forward", "grad_input", "grad_weight"), 1),  # conv5_5/pw
    ("conv5_6/dw", "depthwise", ("forward", "grad_input", "grad_weight"), 1),
    ("conv5_6/pw", "pointwise", ("forward", "grad_input", "grad_weight"), 1),
    ("conv6/dw", "depthwise", ("forward", "grad_input", "grad_weight"), 1),
    ("conv6/pw", "pointwise", ("forward", "grad_input", "grad_weight"), 1),
    ("fc", "linear", ("forward", "grad_input", "grad_weight"), 1),
]
# The INT8 frozen stage to LR layer 19 for one new image (l = 19, conv5_4/dw output): layer -> times it occurs
# (also what tools/riscv/count_table.py sums for its frozen-stage line).
FROZEN_STAGE_LR19 = {
    "conv1": 1,
    "conv2_1/dw": 1,
    "conv2_1/pw": 1,
    "conv2_2/dw": 1,
    "conv2_2/pw": 1,
    "conv3_1/dw": 1,
    "conv3_1/pw": 1,
    "conv3_2/dw": 1,
    "conv3_2/pw": 1,
    "conv4_1/dw": 1,
    "conv4_1/pw": 1,
    "conv4_2/dw": 1,
    "conv4_2/pw": 1,
    "conv5_x/dw": 4,
    "conv5_x/pw": 3,
}
PROXY_MINIBATCH = 128  # latents per training mini-batch (the memory command's default)
PROXY_NEW_IMAGES = 21  # new images per mini-batch through the frozen stage (ASSUMPTION: about 1/6 of 128)


def proxy_counts(rv32_counts, m4f_counts, minibatch=PROXY_MINIBATCH, new_images=PROXY_NEW_IMAGES):
    """A counts dict (COUNTS_SCHEMA, proxy: true) for one adaptive-stage training mini-batch: `new_images`
    images through the INT8 frozen stage, then `minibatch` latents forward and backward through the FP32
    adaptive stage; batch-1 kernel counts times the number of samples (kernel start-up counted per sample, a
    small overestimate). Left out: the classifier's loss and softmax, bias gradients, BatchNorm, the optimizer
    step, replay-buffer bookkeeping (each well under 1 % of the MACs)."""
    for name, value in (("minibatch", minibatch), ("new_images", new_images)):
        _number(value, name, integer=True)
    rv32 = {(r["layer"], r["op"], r["step"]): r for r in rv32_counts["rows"] if r["variant"] in ("auto", "-")}
    m4f = {(r["layer"], r["op"], r["step"]): r for r in m4f_counts["rows"] if r["variant"] in ("auto", "-")}

    def phase(name, kind, keys_times, samples):
        missing = [k for k, _ in keys_times if k not in rv32 or k not in m4f]
        if missing:
            raise ValueError(f"kernel counts lack the rows {missing}")
        total = {"m4f_instructions": 0, "rv32_instructions": 0, "rv32_critical": 0}
        for key, times in keys_times:
            total["m4f_instructions"] += m4f[key]["instret"] * times * samples
            total["rv32_instructions"] += rv32[key]["instret"] * times * samples
            total["rv32_critical"] += rv32[key]["critical"] * times * samples
        # measured classes (make -C tools/arm count records both targets' in the M4F file)
        for target, field in (("m4f", "classes"), ("rv32", "rv32_classes")):
            if all(field in m4f[key] for key, _ in keys_times):
                total[f"{target}_classes"] = {
                    c: sum(m4f[key][field][c] * times * samples for key, times in keys_times) for c in CLASSES
                }
        return {"name": name, "kind": kind, **total}

    frozen = [((layer, _INT8_OP[layer], "forward"), times) for layer, times in FROZEN_STAGE_LR19.items()]
    forward = [((layer, op, "forward"), times) for layer, op, _, times in ADAPTIVE_STAGE_LR19]
    backward = [
        ((layer, op, step), times)
        for layer, op, steps, times in ADAPTIVE_STAGE_LR19
        for step in steps
        if step != "forward"
    ]
    return {
        "schema": COUNTS_SCHEMA,
        "event": f"PROXY: one training mini-batch at LR layer 19 ({new_images} new images through the INT8 frozen "
        f"stage, {minibatch} latents forward + backward through the FP32 adaptive stage), MobileNetV1 128x128",
        "proxy": True,
        "source": "batch-1 kernel counts: tools/arm/results/counts.json (Cortex-M4F, and both targets' "
        "instruction classes) and tools/riscv/results/counts.json (rv32imfc, 8-core critical path), times the samples",
        "cores": rv32_counts["cores"],
        "phases": [
            phase("frozen stage (INT8), new images", "int8", frozen, new_images),
            phase("adaptive stage forward (FP32)", "fp32", forward, minibatch),
            phase("adaptive stage backward (FP32)", "fp32", backward, minibatch),
        ],
    }


_INT8_OP = {
    layer: "int8_conv2d" if layer == "conv1" else "int8_depthwise" if layer.endswith("/dw") else "int8_pointwise"
    for layer in FROZEN_STAGE_LR19
}


def _si_time(s):
    return f"{s * 1e3:,.1f} ms" if s < 10 else f"{s:,.2f} s"


def _hours(h):
    return "n/a (event longer than the period)" if h is None else f"{h:,.0f} h"


def format_report(result, sensitivity_rows=None):
    """The side-by-side table (Markdown) and, when given, the sensitivity lines."""
    m, p = result["m4f"], result["pulp"]
    b = result["battery"]
    cores = result["cores"]
    lines = []
    if result["proxy"]:
        lines.append("PROXY EVENT (assembled from kernel counts, not the exported application):")
    lines.append(f"Event: {result['event']}")
    lines.append("")
    lines.append(
        f"| | Cortex-M4F, 1 core @ {result['model']['m4f_clock_hz'] / 1e6:g} MHz | "
        f"PULP, {cores} cores @ {result['model']['pulp_clock_hz'] / 1e6:.0f} MHz | ratio | paper |"
    )
    lines.append("|---|---|---|---|---|")
    lines.append(
        f"| instructions (measured) | {m['instructions']:,} | {p['instructions_critical']:,} "
        f"(critical path) | {m['instructions'] / p['instructions_critical']:.1f}x | |"
    )
    lines.append(
        f"| time per event (model) | {_si_time(m['time_s'])} | {_si_time(p['time_s'])} | "
        f"{result['speedup']:.1f}x faster | {result['paper']['speedup']:g}x |"
    )
    lines.append(f"| power while learning (model) | {m['power_w'] * 1e3:.1f} mW | {p['power_w'] * 1e3:.1f} mW | | |")
    lines.append(
        f"| energy per event (model) | {m['energy_j'] * 1e3:,.2f} mJ | {p['energy_j'] * 1e3:,.2f} mJ | "
        f"{result['energy_ratio']:.1f}x less | {result['paper']['energy_ratio']:g}x |"
    )
    lines.append(
        f"| lifetime, 1 event / {b['period_s']:g} s, {b['mah']:g} mAh @ {b['volts']:g} V (model) | "
        f"{_hours(m['lifetime_h'])} | {_hours(p['lifetime_h'])} | | {result['paper']['lifetime_h']:g} h |"
    )
    lines.append("")
    lines.append("| phase | kind | M4F instr | rv32 instr | rv32 critical | M4F time | PULP time |")
    lines.append("|---|---|---|---|---|---|---|")
    for ph in result["phases"]:
        lines.append(
            f"| {ph['name']} | {ph['kind']} | {ph['m4f_instructions']:,} | {ph['rv32_instructions']:,} | "
            f"{ph['rv32_critical']:,} | {_si_time(ph['m4f_s'])} | {_si_time(ph['pulp_s'])} |"
        )
    if sensitivity_rows:
        lines.append("")
        lines.append("Sensitivity (each assumption at the ends of its range, the others at their defaults):")
        lines.append("")
        lines.append("| assumption | speedup | energy ratio |")
        lines.append("|---|---|---|")
        for r in sensitivity_rows:
            s, e = r["speedup"], r["energy_ratio"]
            lines.append(f"| {r['assumption']} | {s[0]:.1f}x .. {s[1]:.1f}x | {e[0]:.1f}x .. {e[1]:.1f}x |")
        top = sensitivity_rows[0]
        lines.append("")
        lines.append(
            f"Moves the energy ratio most: {top['assumption']} "
            f"({top['energy_ratio'][0]:.1f}x .. {top['energy_ratio'][1]:.1f}x)."
        )
    return "\n".join(lines)
