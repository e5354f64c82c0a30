"""MobileNetV1 built from pulptrain.nn layers, indexed like the paper (see the layer table in the docs).

``model.blocks[i]`` for i = 0..26 is one convolution with its BatchNorm and ReLU (a Sequential of three:
conv, BN, ReLU; 0 is the 3x3 conv, odd i a depthwise 3x3, even i >= 2 a pointwise 1x1), ``model.blocks[27]``
is the average pool, then ``model.classifier`` (Linear) follows a flatten. ``split(model, l)`` cuts it after
block l into the frozen stage (blocks 0..l) and the adaptive stage (the rest, classifier included).
"""
import numpy as np

from pulptrain import nn

__all__ = ["MobileNetV1", "mobilenet_v1", "split", "use_batch_renorm", "MOBILENET_V1_BLOCKS"]

# (depthwise stride, pointwise output channels) of the 13 depthwise-separable pairs at width 1.0;
# pair j holds blocks 2j+1 (depthwise) and 2j+2 (pointwise).
MOBILENET_V1_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
                       (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
FIRST_CONV_CHANNELS = 32
POOL_INDEX = 27


def _scaled(channels, width_mult):
    return max(1, int(round(channels * width_mult)))


def _conv_out(size, stride):
    """Output size of a 3x3 convolution with padding 1."""
    return (size + 2 - 3) // stride + 1


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017) with BN + ReLU after every convolution.

    Attributes: blocks (Sequential of 28: the paper's layers 0..27), flatten, classifier (Linear).
    Input (N, in_channels, input_size, input_size) -> logits (N, num_classes).
    """

    def __init__(self, width_mult=1.0, num_classes=50, input_size=128, in_channels=3, first_stride=2,
                 relu6=False, rng=None):
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        if first_stride not in (1, 2):
            raise ValueError(f"first_stride must be 1 or 2, got {first_stride}")
        rng = np.random.default_rng(0) if rng is None else rng
        act = nn.ReLU6 if relu6 else nn.ReLU
        self.input_size, self.in_channels = input_size, in_channels

        def unit(conv, channels):
            return nn.Sequential(conv, nn.BatchNorm2d(channels), act())

        channels = _scaled(FIRST_CONV_CHANNELS, width_mult)
        blocks = [unit(nn.Conv2d(in_channels, channels, 3, stride=first_stride, padding=1, bias=False, rng=rng),
                       channels)]
        size = _conv_out(input_size, first_stride)
        for stride, out_base in MOBILENET_V1_BLOCKS:
            out = _scaled(out_base, width_mult)
            blocks.append(unit(nn.DepthwiseConv2d(channels, 3, stride=stride, padding=1, bias=False, rng=rng),
                               channels))
            blocks.append(unit(nn.PointwiseConv2d(channels, out, bias=False, rng=rng), out))
            channels, size = out, _conv_out(size, stride)
        if size < 1:
            raise ValueError(f"input_size {input_size} is too small for MobileNetV1")
        blocks.append(nn.AvgPool2d(size))  # 4x4 at input 128: the pool over the whole last feature map
        self._child("blocks", nn.Sequential(*blocks))
        self._child("flatten", nn.Flatten())
        self._child("classifier", nn.Linear(channels, num_classes, rng=rng))
        self.feature_size, self.num_features = size, channels
        self.needs_input_grad = False  # the image needs no gradient: layer 0 skips its IG step

    def forward(self, x):
        return self.classifier.forward(self.flatten.forward(self.blocks.forward(x)))

    def _backward(self, dy, need_input_grad):
        dy = self.flatten._backward(self.classifier._backward(dy, True), True)
        return self.blocks._backward(dy, need_input_grad)


def mobilenet_v1(width_mult=1.0, num_classes=50, input_size=128, in_channels=3, first_stride=2, relu6=False,
                 rng=None):
    """MobileNetV1 as in the paper (width 1.0, 128x128x3 input, 50 classes by default).

    width_mult scales every channel count (rounded, at least 1); first_stride=1 drops the first
    downsampling (for small inputs such as 28x28 or 32x32); relu6 uses ReLU6 instead of ReLU; rng is a
    numpy Generator for the initial weights (default: seed 0). Layer indices stay the paper's.
    """
    return MobileNetV1(width_mult=width_mult, num_classes=num_classes, input_size=input_size,
                       in_channels=in_channels, first_stride=first_stride, relu6=relu6, rng=rng)


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
    frozen = model.blocks[:l + 1]
    adaptive = nn.Sequential(*model.blocks[l + 1:], model.flatten, model.classifier)
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
