"""The ``pulptrain`` command line.

Subcommands:

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
    memory.set_defaults(run=_memory)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
