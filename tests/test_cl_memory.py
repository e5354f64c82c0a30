"""The analytical memory model against the paper's numbers, and the `pulptrain memory` CLI."""

import json

import numpy as np
import pytest

from pulptrain import cli
from pulptrain.cl.memory import MIB, memory_breakdown, mobilenet_v1_layers, packed_row_bytes


def test_architecture_matches_the_paper_table():
    layers = mobilenet_v1_layers()
    assert [layer.index for layer in layers] == list(range(29))
    assert sum(layer.macs for layer in layers) / 1e6 == pytest.approx(185.4, abs=0.05)
    assert sum(layer.params for layer in layers) / 1e6 == pytest.approx(3.24, abs=0.005)
    assert layers[0].macs == 3_538_944  # 3x3x3 -> 32 at 64x64
    assert (layers[19].name, layers[19].out_channels, layers[19].out_size) == ("conv5_4/dw", 512, 8)
    assert (layers[23].out_channels, layers[23].out_size) == (512, 4)
    assert (layers[27].out_channels, layers[27].out_size) == (1024, 1)
    b = memory_breakdown(lr_layer=19)
    assert b.frozen_macs / 1e6 == pytest.approx(126.1, abs=0.05)
    assert b.adaptive_macs / 1e6 == pytest.approx(59.3, abs=0.05)
    assert b.adaptive_params / 1e6 == pytest.approx(2.17, abs=0.01)


@pytest.mark.parametrize(
    "replays, bits, lr_layer, mib",
    [(1500, 8, 19, 46.9), (1500, 32, 19, 187.5), (1500, 7, 19, 41.0), (3000, 8, 19, 93.8), (3000, 8, 23, 23.4)],
)
def test_replay_buffer_matches_the_paper(replays, bits, lr_layer, mib):
    b = memory_breakdown(lr_layer=lr_layer, replays=replays, bits=bits)
    assert round(b.replay_buffer / MIB, 1) == mib


def test_breakdown_components():
    b = memory_breakdown(lr_layer=19, replays=1500, bits=8, batch=128)
    assert b.latent_shape == (512, 8, 8)
    assert b.replay_buffer == 1500 * (32768 + 2)
    assert b.adaptive_gradients == 4 * b.adaptive_params == b.optimizer_state
    assert b.adaptive_weights > b.adaptive_gradients  # + BN running statistics
    assert b.total == sum(getattr(b, c) for c in b.COMPONENTS)
    # the frozen INT8 weights are one byte per weight, plus 8 bytes per output channel
    assert b.frozen_weights == b.frozen_params + 8 * sum(layer.bn_channels for layer in mobilenet_v1_layers()[:20])
    # activations scale with the mini-batch; without momentum there is no optimizer state
    assert memory_breakdown(batch=64).activations * 2 == b.activations
    assert memory_breakdown(momentum=False).optimizer_state == 0
    # only the classifier trains at l = 27
    top = memory_breakdown(lr_layer=27)
    assert top.latent_shape == (1024, 1, 1) and top.adaptive_params == 1024 * 50 + 50


def test_width_and_input_size():
    b = memory_breakdown(width_mult=0.5, input_size=96, lr_layer=19)
    assert b.latent_shape == (256, 6, 6)
    assert packed_row_bytes(10, 3) == 4 and packed_row_bytes(10, 32) == 40


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr_layer": 28}, "lr_layer"),
        ({"bits": 9}, "bits"),
        ({"bits": 0}, "bits"),
        ({"batch": 0}, "batch"),
        ({"replays": -1}, "replays"),
        ({"width_mult": 0}, "width_mult"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memory_breakdown(**kwargs)


def test_cli_memory_json_and_table(capsys):
    assert (
        cli.main(
            ["memory", "--model", "mobilenet_v1", "--lr-layer", "19", "--replays", "1500", "--bits", "8", "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert round(out["mib"]["replay_buffer"], 1) == 46.9 and out["latent_shape"] == [512, 8, 8]
    assert out["total"] == sum(
        out[c]
        for c in (
            "frozen_weights",
            "adaptive_weights",
            "adaptive_gradients",
            "optimizer_state",
            "activations",
            "replay_buffer",
        )
    )
    cli.main(["memory", "--bits", "32"])
    table = capsys.readouterr().out
    assert "187.5" in table and "total" in table
    with pytest.raises(SystemExit) as e:
        cli.main(["memory", "--bits", "12"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("pulptrain memory: error: --bits")


@pytest.mark.parametrize("width, size, first_stride, l", [(0.25, 32, 1, 19), (0.5, 64, 2, 23), (0.3, 28, 1, 5)])
def test_matches_the_model(width, size, first_stride, l):
    from pulptrain import models

    model = models.mobilenet_v1(
        width_mult=width, num_classes=10, input_size=size, in_channels=1, first_stride=first_stride
    )
    frozen, adaptive = models.split(model, l)
    b = memory_breakdown(
        width_mult=width,
        input_size=size,
        lr_layer=l,
        num_classes=10,
        in_channels=1,
        first_stride=first_stride,
        replays=10,
        batch=2,
    )
    assert b.adaptive_params == sum(p.data.size for p in adaptive.parameters())
    assert b.frozen_params == sum(p.data.size for p in frozen.parameters() if p.data.ndim > 1)
    x = np.zeros((1, 1, size, size), np.float32)
    assert frozen.forward(x).shape[1:] == b.latent_shape
