"""The ``pulptrain`` command line.

Subcommands:

* ``pulptrain cl``: one whole continual-learning experiment (:mod:`pulptrain.cl.experiment`): pretraining
  on the initial batch, INT8 frozen stage, the stream with latent replays; writes results.json and
  accuracy.png.
* ``pulptrain sweep``: a grid of such experiments over bits, LR layers, buffer sizes and seeds
  (:mod:`pulptrain.cl.sweep`); writes sweep.md, sweep.csv and accuracy_vs_memory.png.
* ``pulptrain memory``: the memory breakdown of latent-replay training on MobileNetV1
  (:mod:`pulptrain.cl.memory`), as a table or, with ``--json``, as JSON.
"""
import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _memory(args):
    from pulptrain.cl.memory import memory_breakdown

    try:
        breakdown = memory_breakdown(width_mult=args.width, input_size=args.input_size, lr_layer=args.lr_layer,
                                     replays=args.replays, bits=args.bits, batch=args.batch,
                                     num_classes=args.num_classes, in_channels=args.in_channels,
                                     momentum=args.momentum > 0, first_stride=args.first_stride)
    except ValueError as e:
        raise SystemExit(f"pulptrain memory: error: {e}")
    if args.json:
        print(json.dumps(breakdown.as_dict(), indent=2))
    else:
        print(breakdown.table())
    return 0


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


CL_DEFAULTS_HELP = """\
Defaults (Fashion-MNIST): MobileNetV1 width 0.25 on the 28x28 images (first conv stride 2, so the
LR layer 19 latent is 128x2x2); NIC stream with 4 initial classes (2000 images), then 40 batches of 150
images of one class each (the 6 other classes arrive over the stream, old ones recur); pretraining on
the initial batch only: 8 epochs of SGD (Nesterov 0.9, cosine lr from 0.05, batch 64); then the latent
replay learner: 4 epochs per batch, mini-batches of 128 (new + replays), SGD lr 0.03 (batch 0: 0.01),
momentum 0.9, weight decay 5e-4, CWR* classifier, reference replacement policy, 500 replays at 8 bits.
Test accuracy on the whole 10,000-image test set after every batch. Measured: 66 CPU-seconds, 2 min 49 s
wall with 1 thread on the shared 2-core machine under a load of 5-7 from other jobs; final accuracy 60.3 %
(seed 0; it moves by several points from batch to batch, see docs/continual_learning.md).

CORe50 (--dataset core50 --data-root DIR): MobileNetV1 at 128x128x3, 50 classes, the scenario's own
batches; pretraining from scratch on batch 0 (no ImageNet weights are available), which is slow: use
--threads and expect hours for the full NICv2-391.
"""


def _experiment_config(args, exclude=()):
    from pulptrain.cl.experiment import ExperimentConfig, config_fields

    values = {name: getattr(args, name) for name in config_fields() if hasattr(args, name) and name not in exclude}
    return ExperimentConfig(**values)


def _add_experiment_arguments(p, sweep):
    """Arguments shared by ``cl`` and ``sweep`` (``sweep`` takes lists for bits, lr-layer, replays, seeds)."""
    from pulptrain.cl.experiment import ExperimentConfig as D

    data = p.add_argument_group("scenario")
    data.add_argument("--dataset", choices=["fashion-mnist", "core50"], default=D.dataset)
    data.add_argument("--data-root", default=None,
                      help="data folder (Fashion-MNIST IDX files: default $PULPTRAIN_DATA or the Debian "
                           "dataset-fashion-mnist location; CORe50: required)")
    data.add_argument("--scenario", default=D.scenario, help=f"CORe50 scenario (default {D.scenario})")
    data.add_argument("--run", type=int, default=D.run, help="CORe50 run 0..9 (default 0)")
    data.add_argument("--num-batches", type=int, default=D.num_batches,
                      help=f"Fashion-MNIST: batches after the initial one (default {D.num_batches})")
    data.add_argument("--initial-classes", type=int, default=D.initial_classes,
                      help=f"Fashion-MNIST: classes in the initial batch (default {D.initial_classes})")
    data.add_argument("--initial-samples", type=int, default=D.initial_samples,
                      help=f"Fashion-MNIST: images in the initial batch (default {D.initial_samples})")
    data.add_argument("--samples-per-batch", type=int, default=D.samples_per_batch,
                      help=f"Fashion-MNIST: images per later batch (default {D.samples_per_batch})")
    data.add_argument("--test-every", type=int, default=D.test_every,
                      help="keep every k-th test image (default 1: the whole test set)")
    model = p.add_argument_group("model")
    model.add_argument("--width", type=float, default=D.width, help=f"MobileNetV1 width (default {D.width})")
    model.add_argument("--input-size", type=int, default=None, help="input size (default 28 / 128 for CORe50)")
    model.add_argument("--first-stride", type=int, choices=[1, 2], default=D.first_stride,
                       help=f"stride of layer 0 (default {D.first_stride})")
    model.add_argument("--pretrain-epochs", type=int, default=D.pretrain_epochs,
                       help=f"pretraining epochs on batch 0 (default {D.pretrain_epochs})")
    model.add_argument("--pretrain-lr", type=float, default=D.pretrain_lr, help=f"default {D.pretrain_lr}")
    model.add_argument("--pretrain-batch", type=int, default=D.pretrain_batch, help=f"default {D.pretrain_batch}")
    cl = p.add_argument_group("continual learning")
    if sweep:
        cl.add_argument("--lr-layer", type=_int_list, default=[19, 23], help="LR layers (default 19,23)")
        cl.add_argument("--replays", type=_int_list, default=[200, 500], help="buffer sizes (default 200,500)")
        cl.add_argument("--bits", type=_int_list, default=[32, 8, 7, 6, 4], help="latent bits (default 32,8,7,6,4)")
        cl.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="seeds (default 0,1,2)")
    else:
        cl.add_argument("--lr-layer", type=int, default=D.lr_layer, help=f"LR layer l (default {D.lr_layer})")
        cl.add_argument("--replays", type=int, default=D.replays, help=f"buffer size (default {D.replays})")
        cl.add_argument("--bits", type=int, default=D.bits,
                        help="bits of the latent replays: 1..8 (INT8 frozen stage) or 32 (FP32) (default 8)")
        cl.add_argument("--seed", type=int, default=D.seed, help="seed of the stream, model and learner (default 0)")
    cl.add_argument("--epochs", type=int, default=D.epochs, help=f"epochs per batch (default {D.epochs})")
    cl.add_argument("--first-epochs", type=int, default=D.first_epochs,
                    help=f"epochs on batch 0 (default {D.first_epochs})")
    cl.add_argument("--lr", type=float, default=D.lr, help=f"SGD lr of batches >= 1 (default {D.lr})")
    cl.add_argument("--first-lr", type=float, default=D.first_lr, help=f"SGD lr of batch 0 (default {D.first_lr})")
    cl.add_argument("--momentum", type=float, default=D.momentum, help=f"default {D.momentum}")
    cl.add_argument("--weight-decay", type=float, default=D.weight_decay, help=f"default {D.weight_decay}")
    cl.add_argument("--minibatch", type=int, default=D.minibatch, help=f"new + replays per step (default {D.minibatch})")
    cl.add_argument("--no-cwr", dest="cwr", action="store_false", help="plain classifier, no CWR* consolidation")
    cl.add_argument("--freeze-bn", action="store_true", help="keep the adaptive stage's BatchNorm statistics frozen")
    cl.add_argument("--policy", choices=["reference", "reservoir", "class_balanced"], default=D.policy,
                    help="buffer replacement policy (default reference)")
    cl.add_argument("--calibration", choices=["max", "percentile"], default=D.calibration,
                    help="INT8 activation calibration (default max)")
    run = p.add_argument_group("run")
    run.add_argument("--out", default="cl_results" if not sweep else "sweep_results", help="output folder")
    run.add_argument("--threads", type=int, default=1, help="kernel threads (default 1)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def _cl(args):
    from pulptrain.cl.experiment import run_experiment
    from pulptrain.cl.learner import CheckpointError

    if args.resume and not args.checkpoint:
        raise SystemExit("pulptrain cl: error: --resume needs --checkpoint DIR")
    try:
        result = run_experiment(_experiment_config(args), resume=args.resume)
    except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError
        kind = "checkpoint error" if isinstance(e, CheckpointError) else "error"
        raise SystemExit(f"pulptrain cl: {kind}: {e}")
    print(f"final accuracy {100 * result['final_accuracy']:.2f} % after {result['num_batches']} batches, "
          f"buffer {result['buffer_mib']:.3f} MiB, {result['wall_seconds']:.0f} s; results in {args.out}")
    return 0


def _sweep(args):
    from pulptrain.cl.sweep import rewrite_outputs, run_sweep

    try:
        if args.report_only:
            rows = rewrite_outputs(args.out)
        else:
            base = _experiment_config(args, exclude=("bits", "lr_layer", "replays"))
            rows = run_sweep(base, bits=args.bits, lr_layers=args.lr_layer, replays=args.replays, seeds=args.seeds,
                             append=args.append)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"pulptrain sweep: error: {e}")
    print(f"{len(rows)} runs; table in {args.out}/sweep.md")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="pulptrain", description="On-device training with latent replays.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    memory = commands.add_parser(
        "memory", help="memory breakdown of latent-replay training (frozen INT8 stage, FP32 adaptive stage, "
                       "activations, replay buffer)",
        description="Memory of latent-replay training on MobileNetV1, computed from the architecture.")
    memory.add_argument("--model", choices=["mobilenet_v1"], default="mobilenet_v1")
    memory.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    memory.add_argument("--input-size", type=int, default=128, help="input height = width in pixels (default 128)")
    memory.add_argument("--lr-layer", type=int, default=19, help="latent-replay layer l, 0..27 (default 19)")
    memory.add_argument("--replays", type=int, default=1500, help="latents in the replay buffer (default 1500)")
    memory.add_argument("--bits", type=int, default=8, help="bits per latent value, 1..8 or 32 = FP32 (default 8)")
    memory.add_argument("--batch", type=int, default=128, help="training mini-batch size (default 128)")
    memory.add_argument("--num-classes", type=int, default=50, help="classifier outputs (default 50)")
    memory.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    memory.add_argument("--first-stride", type=int, default=2, choices=[1, 2],
                        help="stride of the first conv; 1 for small inputs (default 2)")
    memory.add_argument("--momentum", type=float, default=0.9, help="SGD momentum; 0 drops its state (default 0.9)")
    memory.add_argument("--json", action="store_true", help="print JSON (bytes and MiB) instead of a table")
    memory.set_defaults(handler=_memory)

    cl = commands.add_parser(
        "cl", help="one continual-learning experiment (Fashion-MNIST stream or CORe50)",
        description="Pretrain MobileNetV1 on the initial batch, quantize the frozen stage (bits <= 8), learn the "
                    "stream with latent replays; writes OUT/results.json and OUT/accuracy.png.",
        epilog=CL_DEFAULTS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_arguments(cl, sweep=False)
    cl.add_argument("--checkpoint", default=None,
                    help="folder for checkpoints, written atomically after every batch")
    cl.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    cl.set_defaults(handler=_cl)

    sweep = commands.add_parser(
        "sweep", help="a grid of CL experiments: bits x LR layers x buffer sizes x seeds",
        description="Runs one CL experiment per (seed, LR layer, bits, replays), pretraining once per seed and "
                    "quantizing once per (seed, LR layer, bits). Writes OUT/sweep.md (mean +- std over seeds), "
                    "OUT/sweep.csv (one row per run), OUT/sweep.json and OUT/accuracy_vs_memory.png.",
        epilog="The other settings are those of 'pulptrain cl' (see pulptrain cl --help).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_arguments(sweep, sweep=True)
    sweep.add_argument("--append", action="store_true",
                       help="add the runs to those already in OUT/sweep.json (same settings; e.g. more seeds)")
    sweep.add_argument("--report-only", action="store_true",
                       help="run nothing: rewrite sweep.md, sweep.csv and the plot from OUT/sweep.json")
    sweep.set_defaults(handler=_sweep)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
