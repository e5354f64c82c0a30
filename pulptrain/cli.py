"""The ``pulptrain`` command line.

Subcommands:

* ``pulptrain cl``: one whole continual-learning experiment (:mod:`pulptrain.cl.experiment`): pretraining
  on the initial batch, the frozen stage, the stream with latent replays at ``--bits`` and, by default, with
  FP32 replays from the same pretrained stage; writes results.json and accuracy.png.
* ``pulptrain sweep``: a grid of such experiments over bits, LR layers, buffer sizes and seeds
  (:mod:`pulptrain.cl.sweep`), in this process or on Ray (``--backend ray``); appends every finished run to
  runs.jsonl (``--resume`` continues a killed sweep) and writes sweep.json, sweep.csv, sweep.md (paired
  differences to FP32 with 95 % intervals) and the plots.
* ``pulptrain energy``: the cost model of one learning event (:mod:`pulptrain.energy`): measured instruction
  counts on a Cortex-M4F and on an 8-core RISC-V cluster -> modelled time, energy and battery life, side by
  side with the paper's 65x, 37x and 535 h.
* ``pulptrain memory``: the memory breakdown of latent-replay training on MobileNetV1
  (:mod:`pulptrain.cl.memory`), as a table or, with ``--json``, as JSON.
* ``pulptrain export``: the learner of a ``cl`` experiment as a self-contained C bundle that learns on the
  device (:mod:`pulptrain.export`, docs/on_device.md).

``cl`` and ``sweep`` take ``--preset quick`` (the default) or ``--preset paper-like``: named defaults that
the options given on the command line override.

Every setting is checked before any work starts. A bad one ends the command with status 2 and one line,
``pulptrain cl: error: --flag ...`` (a checkpoint that does not fit: ``pulptrain cl: checkpoint error: ...``);
Ctrl-C ends it with status 130 and one line.
"""

import argparse
import copy
import json
import math
import os
import sys

__all__ = ["main", "build_parser"]

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class _CommandError(Exception):
    """A bad setting or input file: printed as one line ``<prog>: <kind>: <message>``, exit status 2."""

    def __init__(self, message, kind="error"):
        super().__init__(message)
        self.kind = kind


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default in --help (not that of on/off flags, which is their absence) and keeps
    the epilog's line breaks."""

    def _get_help_string(self, action):
        return action.help if action.nargs == 0 else super()._get_help_string(action)


def _finite(name, value, low, high=None, low_open=False, high_open=False):
    ok = math.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        span = f"{'(' if low_open else '['}{low:g}, " + (
            f"{high:g}{')' if high_open else ']'}" if high is not None else "inf)"
        )
        raise _CommandError(f"{name} must be a finite number in {span}, got {value!r}")


def _memory(args):
    from pulptrain.cl.experiment import MAX_WIDTH, check_lr_layer
    from pulptrain.cl.memory import MIB, learner_arena_bytes, memory_breakdown
    from pulptrain.quant_core import check_bits

    _finite("--width", args.width, 0, MAX_WIDTH, low_open=True)
    _finite("--momentum", args.momentum, 0, 1, high_open=True)
    for flag, value, low in (
        ("--input-size", args.input_size, 1),
        ("--replays", args.replays, 0),
        ("--batch", args.batch, 1),
        ("--num-classes", args.num_classes, 1),
        ("--in-channels", args.in_channels, 1),
        ("--max-new", args.max_new if args.max_new is not None else 1, 1),
        ("--min-new", args.min_new, 1),
        ("--threads", args.threads, 1),
    ):
        if value < low:
            raise _CommandError(f"{flag} must be an integer >= {low}, got {value}")
    try:
        check_lr_layer(args.lr_layer)
        check_bits(args.bits, "--bits", allow_fp32=True)
    except ValueError as e:
        raise _CommandError(str(e)) from None
    breakdown = memory_breakdown(
        width_mult=args.width,
        input_size=args.input_size,
        lr_layer=args.lr_layer,
        replays=args.replays,
        bits=args.bits,
        batch=args.batch,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        momentum=args.momentum > 0,
        first_stride=args.first_stride,
    )
    most_new = args.max_new if args.max_new is not None else args.batch
    if args.min_new > most_new:
        raise _CommandError(f"--min-new must be at most --max-new ({most_new}), got {args.min_new}")
    # the C learner step's one arena (csrc/cl); it needs a buffer of at least one latent
    arena = None
    if args.replays > 0:
        arena = learner_arena_bytes(
            width_mult=args.width,
            input_size=args.input_size,
            lr_layer=args.lr_layer,
            replays=args.replays,
            batch=args.batch,
            num_classes=args.num_classes,
            in_channels=args.in_channels,
            first_stride=args.first_stride,
            max_new=args.max_new,
            threads=args.threads,
            min_new=args.min_new,
        )
    if args.json:
        print(json.dumps({**breakdown.as_dict(), "learner_arena": arena}, indent=2))
    else:
        print(breakdown.table())
        if arena is not None:
            label = f"C learner arena ({args.threads}-core team, pt_cl_learner_arena_bytes)"
            print(f"{label:<58}{arena / MIB:>10.1f}  ({arena} bytes)")
    return 0


def _energy(args):
    import dataclasses

    from pulptrain import energy

    for flag, value in (
        ("--battery-mah", args.battery_mah),
        ("--battery-v", args.battery_v),
        ("--period", args.period),
        ("--pulp-mhz", args.pulp_mhz),
    ):
        _finite(flag, value, 0, low_open=True)
    source = "--proxy" if args.proxy else "--event" if args.event else "counts"  # the input, for errors
    try:
        if args.proxy:
            loaded = []
            for path in args.proxy:
                with open(path) as f:
                    loaded.append(json.load(f))
            counts = energy.proxy_counts(*loaded)
        elif args.event:
            with open(args.event) as f:
                counts = energy.measured_counts(json.load(f), args.setting)
        else:
            counts = energy.load_counts(args.counts)
        model = dataclasses.replace(energy.CostModel(), pulp_clock_hz=args.pulp_mhz * 1e6, xpulp=args.xpulp)
        event = dict(battery_mah=args.battery_mah, battery_v=args.battery_v, period_s=args.period)
        result = energy.model_event(counts, model, **event)
        rows = energy.sensitivity(counts, model, **event)
    except FileNotFoundError as e:
        raise _CommandError(f"no such file: {e.filename}") from None
    except json.JSONDecodeError as e:
        raise _CommandError(f"{source}: not JSON: {e}") from None
    except (KeyError, TypeError) as e:
        what = "a counts.json of make count" if args.proxy else "a tools/on_device/measure.py result"
        raise _CommandError(f"{source}: not {what} (missing {e})") from None
    except ValueError as e:
        raise _CommandError(str(e)) from None
    if args.write_counts:
        with open(args.write_counts, "w") as f:
            json.dump(counts, f, indent=1)
    if args.json:
        print(json.dumps({**result, "sensitivity": rows}, indent=1))
    else:
        print(energy.format_report(result, rows))
    return 0


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


CL_DEFAULTS_HELP = """\
--preset paper-like: the frozen stage pretrained offline (10 epochs, shifts and flips) on 2,000 held-out
training images per class that no stream draws from, one pretraining for every seed (cache it with
--pretrain-cache); Batch Renormalization above the LR layer; 20 batches of 300 images (initial batch
1,200), adaptive lr 0.003, every 2nd test image. Which images each phase sees: docs/continual_learning.md.

The default run (--preset quick, Fashion-MNIST): MobileNetV1 width 0.25 on the 28x28 images (first conv stride 2, so the
LR layer 19 latent is 128x2x2); NIC stream with 4 initial classes (2000 images), then 40 batches of 150
images of one class each (the 6 other classes arrive over the stream, old ones recur); pretraining on
the initial batch only: 8 epochs of SGD (Nesterov 0.9, cosine lr from 0.05, batch 64); then the latent
replay learner: 4 epochs per batch, mini-batches of 128 (new + replays), SGD lr 0.03 (batch 0: 0.01),
momentum 0.9, weight decay 5e-4, CWR* classifier, reference replacement policy, 500 replays at 8 bits,
and the same stream again with FP32 replays from the same pretrained stage (--compare none: only --bits).
Test accuracy on the whole 10,000-image test set after every batch. Measured times and accuracies are in
docs/continual_learning.md (the accuracy moves by several points from batch to batch).

Outputs: OUT/results.json ({"config", "date", "machine", "stream", "initial_classes", "new_classes",
"pretraining", "runs": {"8-bit": ..., "fp32": ...}}) and OUT/accuracy.png (one curve per run, the
batches where a new class arrives marked, each buffer's bytes in the legend).

Checkpoints (--checkpoint DIR): DIR/pretrained.npz once, DIR/learner-<run>.npz after every batch,
written atomically; --resume continues a run that was stopped at any point, with the same final result.

CORe50 (--dataset core50 --data-root DIR): MobileNetV1 at 128x128x3, 50 classes, the scenario's own
batches; pretraining from scratch on batch 0 (no ImageNet weights are available), which is slow for the
full NICv2-391. Its paths.pkl, LUP.pkl and labels.pkl are pickles: they are read with a restricted
unpickler that accepts only lists, dicts, tuples, ints and strings, but use a data folder you trust.
"""


def _given_on_command_line(parser, argv):
    """The destinations of the options given in ``argv`` (not left at their default): the same parser with
    every default suppressed leaves only those in the namespace."""
    probe = copy.deepcopy(parser)
    parsers = [probe]
    while parsers:
        p = parsers.pop()
        p.set_defaults(**{k: argparse.SUPPRESS for k in p._defaults if k != "handler"})
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def _experiment_config(args, exclude=(), **overrides):
    """The ExperimentConfig of the command line: the defaults of ``--preset``, then the options given."""
    from pulptrain.cl.experiment import PRESETS, config_fields, preset_config

    preset = PRESETS.get(args.preset, {})
    values = {
        name: getattr(args, name)
        for name in config_fields()
        if hasattr(args, name)
        and name not in exclude
        and name != "preset"
        and (name in args.given or name not in preset)
    }
    values.update(overrides)
    try:
        return preset_config(args.preset, **values)
    except ValueError as e:
        raise _CommandError(str(e)) from e


def _add_experiment_arguments(p, sweep):
    """Arguments shared by ``cl`` and ``sweep`` (``sweep`` takes lists for bits, lr-layer, replays, seeds)."""
    from pulptrain.cl.experiment import COMPARE_CHOICES, MAX_LR_LAYER, PRESETS, PRETRAIN_SOURCES, available_cpus
    from pulptrain.cl.experiment import ExperimentConfig as D

    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="quick",
        help="named defaults: quick (the main job, pretraining on the initial batch) or paper-like (frozen "
        "stage pretrained offline on a held-out source set, Batch Renormalization, 20 batches of 300; see "
        "docs/continual_learning.md); options given on the command line override them"
        + ("; also the default grid" if sweep else ""),
    )
    data = p.add_argument_group("scenario")
    data.add_argument("--dataset", choices=["fashion-mnist", "core50"], default=D.dataset, help="the stream's images")
    data.add_argument(
        "--data-root",
        default=None,
        help="data folder (Fashion-MNIST IDX files: default $PULPTRAIN_DATA or the Debian "
        "dataset-fashion-mnist location; CORe50: required, and trusted: see below)",
    )
    data.add_argument("--scenario", default=D.scenario, help="CORe50 scenario")
    data.add_argument("--run", type=int, default=D.run, help="CORe50 run 0..9")
    data.add_argument(
        "--num-batches", type=int, default=D.num_batches, help="Fashion-MNIST: batches after the initial one"
    )
    data.add_argument(
        "--initial-classes", type=int, default=D.initial_classes, help="Fashion-MNIST: classes in the initial batch"
    )
    data.add_argument(
        "--initial-samples", type=int, default=D.initial_samples, help="Fashion-MNIST: images in the initial batch"
    )
    data.add_argument(
        "--samples-per-batch", type=int, default=D.samples_per_batch, help="Fashion-MNIST: images per later batch"
    )
    data.add_argument(
        "--test-every", type=int, default=D.test_every, help="keep every k-th test image (1: the whole test set)"
    )
    model = p.add_argument_group("model")
    model.add_argument("--width", type=float, default=D.width, help="MobileNetV1 width multiplier")
    model.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="input size (None: 28 for Fashion-MNIST, 128 for CORe50, the images' size)",
    )
    model.add_argument("--first-stride", type=int, choices=[1, 2], default=D.first_stride, help="stride of layer 0")
    model.add_argument(
        "--pretrain-source",
        choices=PRETRAIN_SOURCES,
        default=D.pretrain_source,
        help="images of the pretraining: the stream's initial batch, or a held-out source set of the "
        "Fashion-MNIST training split that no stream draws from",
    )
    model.add_argument(
        "--held-out-per-class",
        type=int,
        default=D.held_out_per_class,
        help="held-out source: training images per class kept out of every stream",
    )
    model.add_argument(
        "--pretrain-augment",
        action=argparse.BooleanOptionalAction,
        default=D.pretrain_augment,
        help="random shifts (up to 2 pixels) and horizontal flips during pretraining",
    )
    model.add_argument(
        "--pretrain-seed",
        type=int,
        default=D.pretrain_seed,
        help="seed of the pretraining (None: the run's seed); fixed, one pretraining serves every seed",
    )
    model.add_argument("--pretrain-epochs", type=int, default=D.pretrain_epochs, help="pretraining epochs")
    model.add_argument("--pretrain-lr", type=float, default=D.pretrain_lr, help="initial pretraining lr (cosine)")
    model.add_argument("--pretrain-batch", type=int, default=D.pretrain_batch, help="pretraining mini-batch")
    cl = p.add_argument_group("continual learning")
    if sweep:
        from pulptrain.cl.experiment import PRESET_GRIDS

        def grid_help(what, name):
            grids = "; ".join(f"{preset}: {','.join(map(str, g[name]))}" for preset, g in PRESET_GRIDS.items())
            return f"{what}; None: the preset's grid ({grids})"

        cl.add_argument("--lr-layer", type=_int_list, default=None, help=grid_help("LR layers", "lr_layer"))
        cl.add_argument("--replays", type=_int_list, default=None, help=grid_help("buffer sizes", "replays"))
        cl.add_argument("--bits", type=_int_list, default=None, help=grid_help("latent bits", "bits"))
        cl.add_argument("--seeds", type=_int_list, default=None, help=grid_help("seeds", "seeds"))
    else:
        cl.add_argument(
            "--lr-layer",
            type=int,
            default=D.lr_layer,
            help=f"LR layer l, 0..{MAX_LR_LAYER}: the frozen stage is layers 0..l",
        )
        cl.add_argument("--replays", type=int, default=D.replays, help="buffer size (latents)")
        cl.add_argument(
            "--bits",
            type=int,
            default=D.bits,
            help="bits of the latent replays: 1..8 (INT8 frozen stage) or 32 (FP32 frozen stage)",
        )
        cl.add_argument(
            "--compare",
            choices=COMPARE_CHOICES,
            default=D.compare,
            help="fp32: also run FP32 replays from the same pretrained stage and seed, drawn next to "
            "--bits (nothing more when --bits is 32); none: the --bits run alone",
        )
        cl.add_argument("--seed", type=int, default=D.seed, help="seed of the stream, model and learner")
    cl.add_argument("--epochs", type=int, default=D.epochs, help="epochs per batch")
    cl.add_argument("--first-epochs", type=int, default=D.first_epochs, help="epochs on batch 0")
    cl.add_argument("--lr", type=float, default=D.lr, help="SGD lr of batches >= 1")
    cl.add_argument("--first-lr", type=float, default=D.first_lr, help="SGD lr of batch 0")
    cl.add_argument("--momentum", type=float, default=D.momentum, help="SGD momentum, in [0, 1)")
    cl.add_argument("--weight-decay", type=float, default=D.weight_decay, help="SGD weight decay, in [0, 1)")
    cl.add_argument("--minibatch", type=int, default=D.minibatch, help="new + replays per step")
    cl.add_argument("--no-cwr", dest="cwr", action="store_false", help="plain classifier, no CWR* consolidation")
    cl.add_argument("--freeze-bn", action="store_true", help="keep the adaptive stage's BatchNorm statistics frozen")
    cl.add_argument(
        "--batch-renorm",
        action=argparse.BooleanOptionalAction,
        default=D.batch_renorm,
        help="Batch Renormalization above the LR layer, as the reference code (pulptrain.models.use_batch_renorm)",
    )
    cl.add_argument(
        "--policy",
        choices=["reference", "reservoir", "class_balanced"],
        default=D.policy,
        help="buffer replacement policy",
    )
    cl.add_argument(
        "--calibration", choices=["max", "percentile"], default=D.calibration, help="INT8 activation calibration"
    )
    run = p.add_argument_group("run")
    run.add_argument("--out", default="cl_results" if not sweep else "sweep_results", help="output folder")
    # Results do not depend on the team size (bitwise), so a single run uses the CPUs it has; a sweep's runs
    # stay on one core each, the way its backends schedule them.
    default_threads = 1 if sweep else min(available_cpus(), 8)
    run.add_argument(
        "--threads",
        type=int,
        default=default_threads,
        help="kernel threads, at most the CPUs available (results are the same for any count)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--pretrain-cache",
        default=None,
        help="folder caching pretrainings by a hash of their settings, so later runs reuse them"
        + ("; None: OUT/pretrained" if sweep else "; None: no cache"),
    )


def _bytes_text(nbytes):
    return f"{nbytes / 2**20:.2f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"


def _cl(args):
    from pulptrain.cl.experiment import run_experiment
    from pulptrain.cl.learner import CheckpointError

    if args.resume and not args.checkpoint:
        raise _CommandError("--resume needs --checkpoint DIR")
    try:
        result = run_experiment(_experiment_config(args), resume=args.resume)
    except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError; DatasetError a FileNotFoundError
        raise _CommandError(str(e), "checkpoint error" if isinstance(e, CheckpointError) else "error") from e
    runs = "; ".join(
        f"{label}: final accuracy {100 * run['final_accuracy']:.2f} %, buffer {_bytes_text(run['buffer_nbytes'])}"
        for label, run in result["runs"].items()
    )
    print(f"{runs}; {result['num_batches']} batches, {result['wall_seconds']:.0f} s; results in {args.out}")
    return 0


def _sweep(args):
    from pulptrain.cl.experiment import PRESET_GRIDS, check_output_folders
    from pulptrain.cl.sweep import rewrite_outputs, run_sweep

    try:
        if args.report_only:
            rows = rewrite_outputs(args.out)
        else:
            base = _experiment_config(args, exclude=("bits", "lr_layer", "replays"), compare="none")
            check_output_folders(base)
            grid = PRESET_GRIDS[args.preset]
            rows = run_sweep(
                base,
                bits=args.bits or grid["bits"],
                lr_layers=args.lr_layer or grid["lr_layer"],
                replays=args.replays or grid["replays"],
                seeds=args.seeds or grid["seeds"],
                resume=args.resume,
                backend=args.backend,
                workers=args.workers,
                address=args.address,
            )
    except (ValueError, FileNotFoundError) as e:
        raise _CommandError(str(e)) from e
    print(f"{len(rows)} runs; table in {args.out}/sweep.md")
    return 0


def _export(args):
    from pulptrain.export import export_experiment

    for name in ("stream_batches", "cores"):
        if getattr(args, name) < 1:
            raise _CommandError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.test_images < 0:
        raise _CommandError(f"--test-images must be >= 0, got {args.test_images}")
    try:
        manifest = export_experiment(
            _experiment_config(args, exclude=("out",), compare="none"),
            args.out,
            stream_batches=args.stream_batches,
            test_images=args.test_images,
            cores=args.cores,
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError) as e:
        raise _CommandError(str(e)) from e
    print(
        f"bundle in {args.out}: {len(manifest['batch_sizes'])} batches, {manifest['test_images']} test images, "
        f"arena {_bytes_text(manifest['arena_bytes'])}; build and run: make -C {args.out} run-host (or run-rv32)"
    )
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="pulptrain", description="On-device training with latent replays.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    memory = commands.add_parser(
        "memory",
        help="memory breakdown of latent-replay training (frozen stage, FP32 adaptive stage, "
        "activations, replay buffer)",
        description="Memory of latent-replay training on MobileNetV1, computed from the architecture.",
        formatter_class=_HelpFormatter,
    )
    memory.add_argument("--model", choices=["mobilenet_v1"], default="mobilenet_v1", help="architecture")
    memory.add_argument("--width", type=float, default=1.0, help="width multiplier")
    memory.add_argument("--input-size", type=int, default=128, help="input height = width in pixels")
    memory.add_argument("--lr-layer", type=int, default=19, help="latent-replay layer l, 0..27")
    memory.add_argument("--replays", type=int, default=1500, help="latents in the replay buffer")
    memory.add_argument(
        "--bits",
        type=int,
        default=8,
        help="bits per latent value: 1..8 (INT8 frozen stage) or 32 (FP32 frozen stage and latents)",
    )
    memory.add_argument("--batch", type=int, default=128, help="training mini-batch size")
    memory.add_argument("--num-classes", type=int, default=50, help="classifier outputs")
    memory.add_argument("--in-channels", type=int, default=3, help="input channels")
    memory.add_argument(
        "--first-stride", type=int, default=2, choices=[1, 2], help="stride of the first conv; 1 for small inputs"
    )
    memory.add_argument("--momentum", type=float, default=0.9, help="SGD momentum; 0 drops its state")
    memory.add_argument(
        "--max-new",
        type=int,
        default=None,
        help="most new samples per CL batch (sizes the C learner arena; default: --batch)",
    )
    memory.add_argument(
        "--min-new",
        type=int,
        default=1,
        help="fewest new samples per CL batch (= --max-new for batches of one size: the smallest arena)",
    )
    memory.add_argument("--threads", type=int, default=1, help="cores of the team the C learner's arena is sized for")
    memory.add_argument("--json", action="store_true", help="print JSON (bytes and MiB) instead of a table")
    memory.set_defaults(handler=_memory)

    from pulptrain import energy as cost

    energy = commands.add_parser(
        "energy",
        help="modelled time, energy and battery life of one learning event: Cortex-M4F vs 8-core PULP",
        description="Measured instruction counts of one learning event (a counts JSON, see pulptrain.energy)\n"
        "-> modelled time and energy per event on one Cortex-M4F core (STM32L4) and on the 8-core\n"
        "PULP cluster (VEGA), speedup and energy ratio next to the paper's 65x and 37x, and the\n"
        "battery life at one event per --period seconds next to the paper's 535 h; then how far each\n"
        "assumption of the model moves the ratios. Everything after the counts is a model.",
        formatter_class=_HelpFormatter,
    )
    source = energy.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "counts", nargs="?", help="counts JSON of one learning event (schema pulptrain-energy-counts/1)"
    )
    source.add_argument(
        "--proxy",
        nargs=2,
        metavar=("RV32_COUNTS", "M4F_COUNTS"),
        help="build a PROXY event (one training mini-batch) from the kernel counts of make -C tools/riscv count "
        "and make -C tools/arm count (tools/*/results/counts.json)",
    )
    source.add_argument(
        "--event",
        metavar="MEASURE_JSON",
        help="the learning event of an exported application, measured on both targets by "
        "tools/on_device/measure.py (tools/on_device/results/measure.json)",
    )
    energy.add_argument("--setting", default="small", help="with --event: the measured setting")
    energy.add_argument("--battery-mah", type=float, default=cost.BATTERY_MAH, help="battery capacity in mAh")
    energy.add_argument("--battery-v", type=float, default=cost.BATTERY_V, help="battery voltage")
    energy.add_argument("--period", type=float, default=cost.EVENT_PERIOD_S, help="seconds between learning events")
    energy.add_argument(
        "--pulp-mhz",
        type=float,
        default=cost.PULP_CLOCK_HZ / 1e6,
        help="PULP cluster clock (power scales with it)",
    )
    energy.add_argument("--xpulp", action="store_true", help="model hardware loops + post-increment loads")
    energy.add_argument("--write-counts", metavar="FILE", help="also write the counts JSON used (e.g. the proxy)")
    energy.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    energy.set_defaults(handler=_energy)

    cl = commands.add_parser(
        "cl",
        help="one continual-learning experiment (Fashion-MNIST stream or CORe50)",
        description="Pretrain MobileNetV1 on the initial batch, build the frozen stage (INT8 for bits <= 8),\n"
        "learn the stream with latent replays at --bits and, unless --compare none, with FP32\n"
        "replays from the same pretrained stage; writes OUT/results.json and OUT/accuracy.png.",
        epilog=CL_DEFAULTS_HELP,
        formatter_class=_HelpFormatter,
    )
    _add_experiment_arguments(cl, sweep=False)
    cl.add_argument("--checkpoint", default=None, help="folder for checkpoints, written atomically after every batch")
    cl.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    cl.set_defaults(handler=_cl)

    sweep = commands.add_parser(
        "sweep",
        help="a grid of CL experiments: bits x LR layers x buffer sizes x seeds",
        description="Runs one CL experiment per (seed, LR layer, bits, replays); one pretraining serves\n"
        "every run with its settings (cached in OUT/pretrained). Every finished run is appended to\n"
        "OUT/runs.jsonl, and OUT/sweep.json, sweep.csv and sweep.md (paired differences to FP32\n"
        "with 95 % intervals, mean +- std over seeds) are rewritten; at the end the plots\n"
        "accuracy_vs_memory.png and bits_curve.png.",
        epilog="The other settings are those of 'pulptrain cl' (see pulptrain cl --help).\n\n"
        "Ray: --backend ray --workers N starts a local Ray with N CPUs (one run per CPU); on a cluster\n"
        "started with 'ray start --head' (and 'ray start --address HEAD:6379' on the other nodes),\n"
        "--address HEAD:6379 (or auto) joins it. Every node needs pulptrain and the data set.",
        formatter_class=_HelpFormatter,
    )
    _add_experiment_arguments(sweep, sweep=True)
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in OUT: the runs of OUT/runs.jsonl are kept and not repeated (also to add "
        "seeds or bit widths with the same settings)",
    )
    sweep.add_argument(
        "--backend", choices=["local", "ray"], default="local", help="local: in this process; ray: one Ray task per run"
    )
    sweep.add_argument(
        "--workers", type=int, default=2, help="ray without --address: CPUs of the local Ray (parallel runs)"
    )
    sweep.add_argument("--address", default=None, help="ray: address of a running cluster (HEAD:6379 or auto)")
    sweep.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite sweep.json, sweep.md, sweep.csv and the plots from OUT/runs.jsonl",
    )
    sweep.set_defaults(handler=_sweep)

    export = commands.add_parser(
        "export",
        help="write a self-contained C bundle (INT8 frozen stage, FP32 learner, replay buffer, an embedded stream "
        "and a Makefile for the host, rv32 and Cortex-M4F) from a cl experiment",
        description="Write the C bundle of a continual-learning experiment: the learner of `pulptrain cl` with the "
        "same settings (its state from --checkpoint DIR when given, else pretrained afresh), the stream's next "
        "batches and a test subset, into --out. Then: make -C OUT run-host / run-rv32 (docs/on_device.md).",
        formatter_class=_HelpFormatter,
    )
    _add_experiment_arguments(export, sweep=False)
    export.set_defaults(out="bundle")  # --out: the bundle's folder
    export.add_argument("--checkpoint", default=None, help="a `pulptrain cl --checkpoint` folder to start from")
    export.add_argument("--stream-batches", type=int, default=3, help="stream batches embedded in the bundle")
    export.add_argument("--test-images", type=int, default=1000, help="test images embedded (0: none)")
    export.add_argument("--cores", type=int, default=8, help="the largest team the bundle runs (sizes the arena)")
    export.set_defaults(handler=_export)
    return parser


def parse_args(argv=None):
    """The parsed command line, with ``given``: the options given on it (they override ``--preset``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = _given_on_command_line(parser, argv)
    return args


def main(argv=None):
    """Run one subcommand; returns its exit status (argparse's own errors and bad settings exit with 2)."""
    prog, args = "pulptrain", None
    try:
        args = parse_args(argv)
        prog = f"pulptrain {args.command}"
        return args.handler(args)
    except _CommandError as e:
        print(f"{prog}: {e.kind}: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except BrokenPipeError:  # the reader went away (| head): drop the rest of the output quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        checkpoint = getattr(args, "checkpoint", None)
        hint = f" (continue with --checkpoint {checkpoint} --resume)" if checkpoint else ""
        if getattr(args, "command", None) == "sweep" and not getattr(args, "report_only", False):
            hint = f" (the finished runs are in {args.out}/runs.jsonl: continue with --resume)"
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
