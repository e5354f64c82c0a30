"""The MobileNetV1 layer table of pulptrain.models: its rows, the shapes it resolves to, and the model, the
memory model, the self-check and the benchmarks that read it."""

import numpy as np
import pytest

from pulptrain import models, nn
from pulptrain.models import FC_INDEX, MOBILENET_V1, MOBILENET_V1_BLOCKS, POOL_INDEX, mobilenet_v1_layers

CONFIGS = [
    dict(),
    dict(width_mult=0.25, input_size=32, num_classes=10, in_channels=1, first_stride=1),
    dict(width_mult=0.3, input_size=28, num_classes=7, in_channels=2, first_stride=1),
    dict(width_mult=0.5, input_size=17, num_classes=3, in_channels=3, first_stride=2),
]


def test_table_rows():
    assert [row.index for row in MOBILENET_V1] == list(range(29))
    kinds = [row.kind for row in MOBILENET_V1]
    assert kinds == ["conv"] + ["dw", "pw"] * 13 + ["pool", "fc"]
    assert (MOBILENET_V1[POOL_INDEX].kind, MOBILENET_V1[FC_INDEX].kind) == ("pool", "fc")
    # a depthwise layer keeps the channels of the layer below it
    assert all(MOBILENET_V1[i].channels == MOBILENET_V1[i - 1].channels for i in range(1, 27, 2))
    assert [i for i, row in enumerate(MOBILENET_V1) if row.stride == 2] == [0, 3, 7, 11, 23]
    assert MOBILENET_V1_BLOCKS == tuple(
        (MOBILENET_V1[2 * j + 1].stride, MOBILENET_V1[2 * j + 2].channels) for j in range(13)
    )


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()) or "paper")
def test_model_is_built_from_the_table(config):
    """Every block's type, weight shape and output shape, and the MACs, against the built model itself."""
    model = models.mobilenet_v1(**{k: v for k, v in config.items()})
    model.eval()  # one image: BatchNorm in training mode needs more than one value per channel (as torch)
    layers = mobilenet_v1_layers(**config)
    assert model.layers == layers and len(layers) == 29
    size, channels = config.get("input_size", 128), config.get("in_channels", 3)
    h = np.zeros((1, channels, size, size), np.float32)
    conv_types = {"conv": nn.Conv2d, "dw": nn.DepthwiseConv2d, "pw": nn.PointwiseConv2d}
    for layer, block in zip(layers[:POOL_INDEX], model.blocks):
        conv = block[0]
        assert isinstance(conv, conv_types[layer.kind]), layer
        assert conv.weight.shape == layer.weight_shape and conv.weight.data.size == layer.params
        assert (layer.in_channels, layer.in_size) == (h.shape[1], h.shape[2])
        h = block.forward(h)
        assert h.shape == (1, layer.out_channels, layer.out_size, layer.out_size)
        assert layer.macs == conv.weight.data.size * layer.out_size**2
        assert layer.bn_channels == block[1].weight.shape[0] == layer.out_channels
    pool, fc = layers[POOL_INDEX], layers[FC_INDEX]
    assert model.blocks[POOL_INDEX].kernel_size == (pool.in_size, pool.in_size) == (h.shape[2], h.shape[3])
    assert model.classifier.weight.shape == fc.weight_shape == (config.get("num_classes", 50), h.shape[1])
    assert fc.params == model.classifier.weight.data.size + model.classifier.bias.data.size
    assert (model.feature_size, model.num_features) == (pool.in_size, fc.in_channels)


def test_paper_shapes():
    layers = mobilenet_v1_layers()
    assert (layers[0].in_size, layers[0].out_size, layers[0].out_channels) == (128, 64, 32)
    assert (layers[19].name, layers[19].out_channels, layers[19].out_size) == ("conv5_4/dw", 512, 8)
    assert (layers[23].in_size, layers[23].out_size, layers[26].out_channels) == (8, 4, 1024)
    assert layers[28].weight_shape == (50, 1024)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"width_mult": 0}, ValueError, "width_mult"),
        ({"first_stride": 3}, ValueError, "first_stride"),
        ({"input_size": 0}, ValueError, "input_size"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"in_channels": 1.5}, ValueError, "in_channels"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mobilenet_v1_layers(**kwargs)
    with pytest.raises(error, match=match):
        models.mobilenet_v1(**kwargs)


def test_readers_take_their_shapes_from_the_table():
    from pulptrain import selfcheck
    from pulptrain.cl import memory

    assert memory.mobilenet_v1_layers is mobilenet_v1_layers and memory.LayerShape is models.LayerShape
    kernel_of_kind = {"conv": "conv2d", "dw": "depthwise_conv2d", "pw": "pointwise_conv2d", "fc": "linear"}
    rows = {
        (
            kernel_of_kind[layer.kind],
            layer.in_channels,
            layer.out_channels,
            layer.in_size,
            layer.in_size,
            layer.kernel_size,
            layer.stride,
            layer.padding,
        )
        for layer in mobilenet_v1_layers()
        if layer.kind in kernel_of_kind
    }
    assert len(selfcheck.LAYERS) == 6 and all(tuple(row[1:]) in rows for row in selfcheck.LAYERS)
