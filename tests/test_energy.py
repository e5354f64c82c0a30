"""The cost model of pulptrain.energy against values derived by hand from its documented constants, the proxy
event from the committed kernel counts, and `pulptrain energy` end to end with bad inputs."""

import copy
import json
import os

import pytest

from pulptrain import cli, energy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RV32_COUNTS = os.path.join(ROOT, "tools", "riscv", "results", "counts.json")
MEASURE = os.path.join(ROOT, "tools", "on_device", "results", "measure.json")
M4F_COUNTS = os.path.join(ROOT, "tools", "arm", "results", "counts.json")
ALU_ONLY = {c: 0.0 for c in energy.CLASSES} | {"alu": 1.0}
FMA_ONLY = {c: 0.0 for c in energy.CLASSES} | {"fp_fma": 1.0}


def counts_of(*phases, cores=8):
    return {"schema": energy.COUNTS_SCHEMA, "event": "test", "cores": cores, "phases": list(phases)}


def phase(m4f, rv32, critical, mix=None, kind="other"):
    p = {"name": "p", "kind": kind, "m4f_instructions": m4f, "rv32_instructions": rv32, "rv32_critical": critical}
    return p | ({"mix": mix} if mix else {})


def test_integer_phase_by_hand():
    m4f, critical = 80_000_000, 1_000_000
    r = energy.model_event(counts_of(phase(m4f, 8_000_000, critical, ALU_ONLY)), battery_mah=1000, battery_v=3.7)
    # M4F: 1 cycle per ALU instruction at 80 MHz; 100 uA/MHz x 80 MHz x 3.0 V = 24 mW
    m4f_s = m4f * 1.0 * energy.M4F_FLASH_STALL_FACTOR / 80e6
    m4f_w = 100e-6 * 80 * 3.0
    assert r["m4f"]["time_s"] == pytest.approx(m4f_s, rel=1e-12)
    assert r["m4f"]["power_w"] == pytest.approx(0.024, rel=1e-12)
    assert r["m4f"]["energy_j"] == pytest.approx(m4f_s * m4f_w, rel=1e-12)
    # PULP: 1 cycle per instruction x contention 1.1 on the critical path, at 79e9 * 49.4e-3 / 8 Hz, 49.4 mW
    pulp_hz = 79e9 * 49.4e-3 / (2 * 4)
    pulp_s = critical * 1.0 * 1.10 / pulp_hz
    assert r["pulp"]["time_s"] == pytest.approx(pulp_s, rel=1e-12)
    assert r["pulp"]["energy_j"] == pytest.approx(pulp_s * 49.4e-3, rel=1e-12)
    assert r["speedup"] == pytest.approx(m4f_s / pulp_s, rel=1e-12)
    assert r["energy_ratio"] == pytest.approx(m4f_s * m4f_w / (pulp_s * 49.4e-3), rel=1e-12)
    # lifetime: 1000 mAh x 3.7 V, one event a minute, asleep in between (Stop 2 1.1 uA x 3 V; VEGA 1.7 uW)
    battery_j = 1.0 * 3.7 * 3600
    for target, event_s, sleep_w in (("m4f", m4f_s, 1.1e-6 * 3.0), ("pulp", pulp_s, 1.7e-6)):
        average_w = (r[target]["energy_j"] + sleep_w * (60 - event_s)) / 60
        assert r[target]["lifetime_h"] == pytest.approx(battery_j / average_w / 3600, rel=1e-12)
    assert r["paper"] == {"speedup": 65.0, "energy_ratio": 37.0, "lifetime_h": 535.0}


def test_fp_phase_is_bound_by_the_shared_fpus():
    critical = 1_000_000
    r = energy.model_event(counts_of(phase(3_000_000, 8_000_000, critical, FMA_ONLY)))
    # M4F: VFMA 3 cycles. PULP: 8 cores' FMAs on 4 FPUs = 2 cycles per critical-path FMA (> 1 x 1.1 issue)
    assert r["m4f"]["time_s"] == pytest.approx(3_000_000 * 3 / 80e6, rel=1e-12)
    assert r["pulp"]["time_s"] == pytest.approx(critical * 8 / 4 / energy.PULP_CLOCK_HZ, rel=1e-12)
    model = energy.CostModel(pulp_shared_fpus=8)  # one FPU per core: the issue bound again
    r8 = energy.model_event(counts_of(phase(3_000_000, 8_000_000, critical, FMA_ONLY)), model)
    assert r8["pulp"]["time_s"] == pytest.approx(critical * 1.10 / energy.PULP_CLOCK_HZ, rel=1e-12)


def test_default_mix_weights_the_cpis_and_xpulp_shrinks_the_critical_path():
    mix = energy.FP32_TRAINING_MIX
    assert sum(mix.values()) == pytest.approx(1.0)
    m4f_cpi = sum(mix[c] * energy.M4F_CPI[c] for c in energy.CLASSES)
    r = energy.model_event(counts_of(phase(10**9, 10**9, 10**8, kind="fp32")))
    assert r["m4f"]["time_s"] == pytest.approx(10**9 * m4f_cpi / 80e6, rel=1e-12)
    x = energy.model_event(counts_of(phase(10**9, 10**9, 10**8, kind="fp32")), energy.CostModel(xpulp=True))
    assert x["pulp"]["time_s"] == pytest.approx(r["pulp"]["time_s"] * 24 / 28, rel=1e-12)


def test_clock_moves_time_not_energy_and_run_current_moves_energy_not_time():
    counts = counts_of(phase(10**9, 10**9, 10**8, kind="fp32"))
    base = energy.model_event(counts)
    slow = energy.model_event(counts, energy.CostModel(pulp_clock_hz=energy.PULP_CLOCK_HZ / 2))
    assert slow["pulp"]["time_s"] == pytest.approx(2 * base["pulp"]["time_s"], rel=1e-12)
    assert slow["pulp"]["energy_j"] == pytest.approx(base["pulp"]["energy_j"], rel=1e-12)
    rows = {r["assumption"]: r for r in energy.sensitivity(counts)}
    current = next(r for name, r in rows.items() if name.startswith("STM32L4 run current"))
    low, high = current["range"]
    assert current["speedup"] == pytest.approx([base["speedup"]] * 2, rel=1e-12)
    assert current["energy_ratio"] == pytest.approx(
        [base["energy_ratio"] * low / 100, base["energy_ratio"] * high / 100], rel=1e-12
    )
    swings = [abs(r["energy_ratio"][1] - r["energy_ratio"][0]) for r in energy.sensitivity(counts)]
    assert swings == sorted(swings, reverse=True)


def test_measured_classes_take_precedence_over_mix_and_kind():
    m4f_classes = {c: 0 for c in energy.CLASSES} | {"fp_fma": 300, "alu": 700}
    rv32_classes = {c: 0 for c in energy.CLASSES} | {"branch": 1000}
    p = phase(10**6, 10**6, 10**5, ALU_ONLY, kind="fp32") | {"m4f_classes": m4f_classes, "rv32_classes": rv32_classes}
    r = energy.model_event(counts_of(p))
    # M4F: 30 % VFMA at 3 cycles + 70 % ALU at 1; PULP: all branches at 2 cycles x contention 1.1
    assert r["m4f"]["time_s"] == pytest.approx(10**6 * (0.3 * 3 + 0.7 * 1) / 80e6, rel=1e-12)
    assert r["pulp"]["time_s"] == pytest.approx(10**5 * 2 * 1.10 / energy.PULP_CLOCK_HZ, rel=1e-12)


def test_event_longer_than_the_period_has_no_lifetime():
    r = energy.model_event(counts_of(phase(80_000_000 * 120, 10**6, 10**5, ALU_ONLY)))
    assert r["m4f"]["lifetime_h"] is None and r["pulp"]["lifetime_h"] is not None


def test_proxy_counts_add_the_kernel_rows():
    with open(RV32_COUNTS) as f:
        rv32 = json.load(f)
    with open(M4F_COUNTS) as f:
        m4f = json.load(f)
    counts = energy.proxy_counts(rv32, m4f, minibatch=2, new_images=3)
    assert counts["proxy"] and "PROXY" in counts["event"]
    energy.check_counts(counts)
    frozen, forward, backward = counts["phases"]

    def rows(table, layer, op, steps):
        return [
            r
            for r in table["rows"]
            if r["layer"] == layer and r["op"] == op and r["step"] in steps and r["variant"] in ("auto", "-")
        ]

    # forward: conv5_x/pw twice (conv5_4, conv5_5) and every other adaptive layer once, per latent
    layers = [
        ("conv5_x/pw", "pointwise"),
        ("conv5_x/dw", "depthwise"),
        ("conv5_x/pw", "pointwise"),
        ("conv5_6/dw", "depthwise"),
        ("conv5_6/pw", "pointwise"),
        ("conv6/dw", "depthwise"),
        ("conv6/pw", "pointwise"),
        ("fc", "linear"),
    ]
    expect = sum(rows(m4f, layer, op, ("forward",))[0]["instret"] for layer, op in layers) * 2
    assert forward["m4f_instructions"] == expect
    # backward: both gradients everywhere except the first trainable layer's input gradient
    expect = sum(r["critical"] for layer, op in layers for r in rows(rv32, layer, op, ("grad_input", "grad_weight")))
    expect -= rows(rv32, "conv5_x/pw", "pointwise", ("grad_input",))[0]["critical"]
    assert backward["rv32_critical"] == expect * 2
    # measured classes: each row's plugin total is its timer count minus the row's method gap
    expect = sum((r["instret"] - r["method_gap"]) for layer, op in layers for r in rows(m4f, layer, op, ("forward",)))
    assert sum(forward["m4f_classes"].values()) == expect * 2
    assert sum(forward["rv32_classes"].values()) > 0
    stage = rv32["int8_frozen_stage_lr19"]
    assert frozen["rv32_instructions"] == stage["instret"] * 3 and frozen["rv32_critical"] == stage["critical"] * 3
    with pytest.raises(ValueError, match="lack the rows"):
        energy.proxy_counts({"cores": 8, "rows": []}, m4f)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.update(schema="other/1"), "schema"),
        (lambda c: c.update(cores=0), "cores must be >= 1"),
        (lambda c: c.update(phases=[]), "phases must be a non-empty list"),
        (lambda c: c["phases"][0].update(kind="fp64"), r"phases\[0\]\.kind"),
        (lambda c: c["phases"][0].update(m4f_instructions=-1), r"phases\[0\]\.m4f_instructions"),
        (lambda c: c["phases"][0].update(rv32_critical=1.5), r"phases\[0\]\.rv32_critical"),
        (lambda c: c["phases"][0].update(rv32_critical=10**9), "exceeds rv32_instructions"),
        (lambda c: c["phases"][0].update(mix={"alu": 1.0}), r"phases\[0\]\.mix must give"),
        (lambda c: c["phases"][0].update(mix=ALU_ONLY | {"branch": 0.5}), "sum to 1"),
        (lambda c: c["phases"][0].update(m4f_instructions=0), "no instructions"),
        (lambda c: c["phases"][0].update(m4f_classes={"alu": 3}), r"phases\[0\]\.m4f_classes must give"),
        (lambda c: c["phases"][0].update(rv32_classes=dict.fromkeys(energy.CLASSES, 0)), "counts no instruction"),
        (lambda c: c["phases"][0].update(rv32_classes=dict.fromkeys(energy.CLASSES, -1)), r"rv32_classes\.alu"),
    ],
)
def test_bad_counts_are_refused_naming_the_field(edit, match):
    counts = counts_of(phase(100, 80, 10, ALU_ONLY))
    edit(counts)
    with pytest.raises(ValueError, match=match):
        energy.model_event(counts)


@pytest.mark.parametrize("name", ["battery_mah", "battery_v", "period_s"])
def test_bad_battery_settings(name):
    with pytest.raises(ValueError, match=name):
        energy.model_event(counts_of(phase(100, 80, 10, ALU_ONLY)), **{name: 0})


def test_cli_proxy_table_json_and_counts_round_trip(capsys, tmp_path):
    written = tmp_path / "event.json"
    cli.main(["energy", "--proxy", RV32_COUNTS, M4F_COUNTS, "--write-counts", str(written)])
    table = capsys.readouterr().out
    assert table.startswith("PROXY EVENT") and "| 65x |" in table and "| 37x |" in table and "535 h" in table
    assert "Moves the energy ratio most:" in table
    cli.main(["energy", str(written), "--json", "--battery-mah", "500"])
    out = json.loads(capsys.readouterr().out)
    with open(written) as f:
        expected = energy.model_event(json.load(f), battery_mah=500)
    assert out["speedup"] == pytest.approx(expected["speedup"]) and out["proxy"] is True
    assert out["pulp"]["lifetime_h"] == pytest.approx(expected["pulp"]["lifetime_h"])
    assert len(out["sensitivity"]) == len(energy.SENSITIVITY)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["energy"], "one of the arguments counts --proxy --event is required"),
        (["energy", "--event", "BAD"], "setting 'small' is not in the measurement"),
        (["energy", "missing.json"], "no such file: missing.json"),
        (["energy", "BAD", "--battery-mah", "-5"], "--battery-mah must be a finite number"),
        (["energy", "BAD", "--pulp-mhz", "nan"], "--pulp-mhz must be a finite number"),
        (["energy", "BAD"], "schema must be"),
        (["energy", "--proxy", "BAD", "BAD"], "not a counts.json of make count"),
    ],
)
def test_cli_bad_inputs(argv, match, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "x", "rows_missing": True}))
    argv = [str(bad) if a == "BAD" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "pulptrain energy: error:" in err and match in err, err


def test_cli_not_json(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SystemExit):
        cli.main(["energy", str(bad)])
    assert "is not JSON" in capsys.readouterr().err
    counts = copy.deepcopy(counts_of(phase(100, 80, 10, ALU_ONLY)))
    assert energy.check_counts(counts) is counts


def _measure(m4f=True):
    """A tools/on_device/measure.py result with one setting: 10 new images, 30 replays, mini-batches of 8."""
    runs = {
        "1": {"frozen_per_image": 1000.5, "step": [70, 50], "end": 300},
        "8": {"frozen_per_image_critical": 200.25, "step_critical": [9, 7], "end_critical": 300},
    }
    if m4f:
        runs["m4f"] = {"frozen_per_image": 900.0, "step": [66, 44], "end": 250}
    setting = {"new": 10, "replays": 30, "width": 0.25, "input_size": 28, "lr_layer": 19}
    return {"cores": 8, "commit": "abc", "settings": {"s": {"setting": setting, "minibatches": {"8": {"runs": runs}}}}}


def test_measured_counts_compose_the_event_from_the_phases():
    counts = energy.measured_counts(_measure(), "s")
    assert energy.check_counts(counts) is counts and counts["proxy"] is False and counts["cores"] == 8
    # 10 new + 30 replays in mini-batches of 8: 5 mini-batches of 2 new + 6 replays per epoch
    assert energy.event_plan(10, 30, 8) == (2, 6, 5)
    steps = energy.EVENT_EPOCHS * 5
    frozen, training, end = counts["phases"]
    assert (frozen["m4f_instructions"], frozen["rv32_instructions"], frozen["rv32_critical"]) == (9000, 10005, 2002)
    # the steady-state step (the last one run), times every step of the event
    assert (training["m4f_instructions"], training["rv32_instructions"]) == (44 * steps, 50 * steps)
    assert training["rv32_critical"] == 7 * steps and training["kind"] == "fp32"
    assert (end["m4f_instructions"], end["rv32_instructions"], end["rv32_critical"]) == (250, 300, 300)


def test_measured_counts_carry_the_measured_classes_of_each_phase():
    measure = _measure()
    runs = measure["settings"]["s"]["minibatches"]["8"]["runs"]
    alu = {c: 0 for c in energy.CLASSES} | {"alu": 1}
    fma = {c: 0 for c in energy.CLASSES} | {"fp_fma": 3}
    runs["m4f"]["classes"] = {"frozen_per_image": alu, "step": fma, "end": alu}
    frozen, training, end = energy.measured_counts(measure, "s")["phases"]
    assert frozen["m4f_classes"]["alu"] == 10 and training["m4f_classes"]["fp_fma"] == 3 * energy.EVENT_EPOCHS * 5
    assert "rv32_classes" not in training  # only the targets measured
    # a phase of pure FMAs takes the FMA cycles, not the fp32 kind's mix
    model = energy.CostModel()
    assert energy.m4f_cycles(training, model) == pytest.approx(
        training["m4f_instructions"] * model.m4f_cpi["fp_fma"] * model.m4f_flash_stall_factor
    )


def test_measured_counts_refuse_a_missing_setting_or_m4f_run():
    with pytest.raises(ValueError, match="setting 'x' is not in the measurement"):
        energy.measured_counts(_measure(), "x")
    with pytest.raises(ValueError, match="setting 's' has no Cortex-M4F run"):
        energy.measured_counts(_measure(m4f=False), "s")


def test_event_plan_is_the_plan_the_c_learner_ran():
    """The committed measurement's runs report the C learner's plan (new and replays per mini-batch)."""
    with open(MEASURE) as f:
        measure = json.load(f)
    checked = 0
    for result in measure["settings"].values():
        s = result["setting"]
        for minibatch, entry in result["minibatches"].items():
            for run in entry["runs"].values():
                new, replays, _ = energy.event_plan(s["new"], s["replays"], int(minibatch))
                assert (new, replays) == (run["plan"]["new_per_step"], run["plan"]["replays_per_step"])
                checked += 1
    assert checked >= 3


def test_cli_measured_event(capsys):
    cli.main(["energy", "--event", MEASURE, "--setting", "small", "--json"])
    out = json.loads(capsys.readouterr().out)
    with open(MEASURE) as f:
        expected = energy.model_event(energy.measured_counts(json.load(f), "small"))
    assert out["proxy"] is False and out["speedup"] == pytest.approx(expected["speedup"])
    assert out["m4f"]["instructions"] == sum(p["m4f_instructions"] for p in out["phases"]) > 0
