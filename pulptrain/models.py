"""MobileNetV1 built from pulptrain.nn layers, indexed like the paper, and its layer table.

``MOBILENET_V1`` is the architecture as one typed table (29 :class:`LayerSpec` rows at width 1.0: index,
name, kind, channels, stride); :func:`mobilenet_v1_layers` resolves it for a width, input size and class
count into :class:`LayerShape` rows (channels, sizes, parameters, MACs). The model, the memory model
(:mod:`pulptrain.cl.memory`), the self-check and the benchmarks all read their MobileNetV1 shapes from here.

``model.blocks[i]`` for i = 0..26 is one convolution with its BatchNorm and ReLU (a Sequential of three:
conv, BN, ReLU; 0 is the 3x3 conv, odd i a depthwise 3x3, even i >= 2 a pointwise 1x1), ``model.blocks[27]``
is the average pool, then ``model.classifier`` (Linear, the table's layer 28) follows a flatten.
``split(model, l)`` cuts it after block l into the frozen stage (blocks 0..l) and the adaptive stage (the
rest, classifier included).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from pulptrain import nn

__all__ = [
    "MobileNetV1",
    "mobilenet_v1",
    "split",
    "use_batch_renorm",
    "MOBILENET_V1",
    "MOBILENET_V1_BLOCKS",
    "LayerSpec",
    "LayerShape",
    "mobilenet_v1_layers",
    "scaled_channels",
    "POOL_INDEX",
    "FC_INDEX",
]


@dataclass(frozen=True)
class LayerSpec:
    """One row of the MobileNetV1 table at width 1.0. kind: "conv" (the first 3x3 convolution), "dw"
    (depthwise 3x3), "pw" (pointwise 1x1), "pool" (the average pool over the last feature map) or "fc" (the
    classifier); channels: output channels at width 1.0 (None for fc: the number of classes); stride: of
    the convolution (layer 0's is the model's first_stride)."""

    index: int
    name: str
    kind: str
    channels: Optional[int]
    stride: int


MOBILENET_V1 = (
    LayerSpec(0, "conv1", "conv", 32, 2),
    LayerSpec(1, "conv2_1/dw", "dw", 32, 1),
    LayerSpec(2, "conv2_1/pw", "pw", 64, 1),
    LayerSpec(3, "conv2_2/dw", "dw", 64, 2),
    LayerSpec(4, "conv2_2/pw", "pw", 128, 1),
    LayerSpec(5, "conv3_1/dw", "dw", 128, 1),
    LayerSpec(6, "conv3_1/pw", "pw", 128, 1),
    LayerSpec(7, "conv3_2/dw", "dw", 128, 2),
    LayerSpec(8, "conv3_2/pw", "pw", 256, 1),
    LayerSpec(9, "conv4_1/dw", "dw", 256, 1),
    LayerSpec(10, "conv4_1/pw", "pw", 256, 1),
    LayerSpec(11, "conv4_2/dw", "dw", 256, 2),
    LayerSpec(12, "conv4_2/pw", "pw", 512, 1),
    LayerSpec(13, "conv5_1/dw", "dw", 512, 1),
    LayerSpec(14, "conv5_1/pw", "pw", 512, 1),
    LayerSpec(15, "conv5_2/dw", "dw", 512, 1),
    LayerSpec(16, "conv5_2/pw", "pw", 512, 1),
    LayerSpec(17, "conv5_3/dw", "dw", 512, 1),
    LayerSpec(18, "conv5_3/pw", "pw", 512, 1),
    LayerSpec(19, "conv5_4/dw", "dw", 512, 1),
    LayerSpec(20, "conv5_4/pw", "pw", 512, 1),
    LayerSpec(21, "conv5_5/dw", "dw", 512, 1),
    LayerSpec(22, "conv5_5/pw", "pw", 512, 1),
    LayerSpec(23, "conv5_6/dw", "dw", 512, 2),
    LayerSpec(24, "conv5_6/pw", "pw", 1024, 1),
    LayerSpec(25, "conv6/dw", "dw", 1024, 1),
    LayerSpec(26, "conv6/pw", "pw", 1024, 1),
    LayerSpec(27, "pool6", "pool", 1024, 1),
    LayerSpec(28, "fc", "fc", None, 1),
)
POOL_INDEX, FC_INDEX = 27, 28
#: (depthwise stride, pointwise output channels) of the 13 depthwise-separable pairs at width 1.0 (pair j
#: holds layers 2j+1 and 2j+2), read from MOBILENET_V1.
MOBILENET_V1_BLOCKS = tuple(
    (dw.stride, pw.channels) for dw, pw in zip(MOBILENET_V1[1:POOL_INDEX:2], MOBILENET_V1[2:POOL_INDEX:2])
)


@dataclass(frozen=True)
class LayerShape:
    """One layer of MobileNetV1 for a given width, input size and class count (per image). ``params``
    counts weights (+ the fc bias), ``bn_channels`` the channels of the BatchNorm after it (0: none),
    ``macs`` the multiply-accumulates of its forward pass; kernel_size / padding are those of the
    convolution (the pool's kernel is its whole input)."""

    index: int
    name: str
    kind: str
    in_channels: int
    out_channels: int
    stride: int
    in_size: int
    out_size: int
    params: int
    bn_channels: int
    macs: int
    kernel_size: int
    padding: int

    @property
    def out_elements(self):
        return self.out_channels * self.out_size * self.out_size

    @property
    def weight_shape(self):
        """The weight's shape in the PyTorch layout (None for the pool)."""
        return {
            "conv": (self.out_channels, self.in_channels, 3, 3),
            "dw": (self.out_channels, 1, 3, 3),
            "pw": (self.out_channels, self.in_channels, 1, 1),
            "fc": (self.out_channels, self.in_channels),
            "pool": None,
        }[self.kind]


def scaled_channels(channels, width_mult):
    """Channels of a layer at width multiplier ``width_mult``: ``max(1, round(channels * width_mult))``."""
    return max(1, int(round(channels * width_mult)))


def _conv_out(size, stride):
    """Output size of a 3x3 convolution with padding 1."""
    return (size + 2 - 3) // stride + 1


def mobilenet_v1_layers(width_mult=1.0, input_size=128, num_classes=50, in_channels=3, first_stride=2):
    """The 29 layers (0..28) of :data:`MOBILENET_V1` as :class:`LayerShape` rows for one image at this width
    multiplier, input size, class count and input channels. ``first_stride=1`` drops the first downsampling
    (small inputs), as in :func:`mobilenet_v1`."""
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if first_stride not in (1, 2):
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride}")
    for name, value in (("input_size", input_size), ("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    layers, c_in, size = [], int(in_channels), int(input_size)
    for spec in MOBILENET_V1:
        kind = spec.kind
        if kind == "fc":
            c_out = int(num_classes)
            layers.append(
                LayerShape(
                    spec.index, spec.name, kind, c_in, c_out, 1, 1, 1, c_in * c_out + c_out, 0, c_in * c_out, 1, 0
                )
            )
            continue
        if kind == "pool":
            layers.append(LayerShape(spec.index, spec.name, kind, c_in, c_in, 1, size, 1, 0, 0, 0, size, 0))
            continue
        stride = first_stride if spec.index == 0 else spec.stride
        c_out = c_in if kind == "dw" else scaled_channels(spec.channels, width_mult)
        out = _conv_out(size, stride) if kind != "pw" else size
        per_output = {"conv": 9 * c_in, "dw": 9, "pw": c_in}[kind]  # MACs per output value
        kernel = 1 if kind == "pw" else 3
        layers.append(
            LayerShape(
                spec.index,
                spec.name,
                kind,
                c_in,
                c_out,
                stride,
                size,
                out,
                per_output * c_out,
                c_out,
                per_output * c_out * out * out,
                kernel,
                kernel // 2,
            )
        )
        c_in, size = c_out, out
    return tuple(layers)


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017) with BN + ReLU after every convolution.

    Attributes: blocks (Sequential of 28: the paper's layers 0..27), flatten, classifier (Linear), layers
    (the LayerShape rows of mobilenet_v1_layers it was built from).
    Input (N, in_channels, input_size, input_size) -> logits (N, num_classes).
    """

    def __init__(
        self, width_mult=1.0, num_classes=50, input_size=128, in_channels=3, first_stride=2, relu6=False, rng=None
    ):
        super().__init__()
        self.layers = mobilenet_v1_layers(width_mult, input_size, num_classes, in_channels, first_stride)
        rng = np.random.default_rng(0) if rng is None else rng
        act = nn.ReLU6 if relu6 else nn.ReLU
        self.input_size, self.in_channels = input_size, in_channels

        def unit(layer):
            if layer.kind == "conv":
                conv = nn.Conv2d(
                    layer.in_channels, layer.out_channels, 3, stride=layer.stride, padding=1, bias=False, rng=rng
                )
            elif layer.kind == "dw":
                conv = nn.DepthwiseConv2d(layer.in_channels, 3, stride=layer.stride, padding=1, bias=False, rng=rng)
            else:
                conv = nn.PointwiseConv2d(layer.in_channels, layer.out_channels, bias=False, rng=rng)
            return nn.Sequential(conv, nn.BatchNorm2d(layer.out_channels), act())

        pool, fc = self.layers[POOL_INDEX], self.layers[FC_INDEX]
        blocks = [unit(layer) for layer in self.layers[:POOL_INDEX]]
        blocks.append(nn.AvgPool2d(pool.in_size))  # 4x4 at input 128: the pool over the whole last feature map
        self._child("blocks", nn.Sequential(*blocks))
        self._child("flatten", nn.Flatten())
        self._child("classifier", nn.Linear(fc.in_channels, fc.out_channels, rng=rng))
        self.feature_size, self.num_features = pool.in_size, fc.in_channels
        self.needs_input_grad = False  # the image needs no gradient: layer 0 skips its IG step

    def forward(self, x):
        return self.classifier.forward(self.flatten.forward(self.blocks.forward(x)))

    def _backward(self, dy, need_input_grad):
        dy = self.flatten._backward(self.classifier._backward(dy, True), True)
        return self.blocks._backward(dy, need_input_grad)


def mobilenet_v1(width_mult=1.0, num_classes=50, input_size=128, in_channels=3, first_stride=2, relu6=False, rng=None):
    """MobileNetV1 as in the paper (width 1.0, 128x128x3 input, 50 classes by default).

    width_mult scales every channel count (rounded, at least 1); first_stride=1 drops the first
    downsampling (for small inputs such as 28x28 or 32x32); relu6 uses ReLU6 instead of ReLU; rng is a
    numpy Generator for the initial weights (default: seed 0). Layer indices stay the paper's.
    """
    return MobileNetV1(
        width_mult=width_mult,
        num_classes=num_classes,
        input_size=input_size,
        in_channels=in_channels,
        first_stride=first_stride,
        relu6=relu6,
        rng=rng,
    )


def split(model, l):
    """(frozen, adaptive) Sequentials sharing model's modules: frozen = blocks 0..l, adaptive = blocks
    l+1..27, flatten and classifier, so adaptive.forward(frozen.forward(x)) == model.forward(x).

    l in [-1, 27]; l = -1 leaves the frozen stage empty. The adaptive stage does not compute a gradient for
    its input (the latent replays); set adaptive.needs_input_grad = True to get it.
    """
    if not isinstance(model, MobileNetV1):
        raise TypeError(f"model must be a MobileNetV1, got {type(model).__name__}")
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not -1 <= l <= POOL_INDEX:
        raise ValueError(f"l must be an int in [-1, {POOL_INDEX}], got {l!r}")
    frozen = model.blocks[: l + 1]
    adaptive = nn.Sequential(*model.blocks[l + 1 :], model.flatten, model.classifier)
    adaptive.needs_input_grad = False
    return frozen, adaptive


def use_batch_renorm(model, l, r_max=1.25, d_max=0.5, momentum=0.01):
    """Replaces the BatchNorm2d of every block above layer l (blocks l+1..26) by a BatchRenorm2d that
    starts from the same parameters and running statistics, as the reference latent-replay code does above
    the LR layer. Returns the model. State-dict names do not change."""
    if not isinstance(model, MobileNetV1):
        raise TypeError(f"model must be a MobileNetV1, got {type(model).__name__}")
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not -1 <= l <= POOL_INDEX:
        raise ValueError(f"l must be an int in [-1, {POOL_INDEX}], got {l!r}")
    for i in range(l + 1, POOL_INDEX):
        unit = model.blocks[i]
        old = unit[1]
        new = nn.BatchRenorm2d(old.weight.shape[0], eps=old.eps, momentum=momentum, r_max=r_max, d_max=d_max)
        new.load_state_dict(old.state_dict())
        new.train(old.training)
        unit[1] = new
    return model
