"""Post-training quantization of a frozen stage: the float blocks below the latent-replay layer become
INT8 kernels (PULP-NN scheme) whose output is the latent, already quantized to ``lr_bits``.

Scheme (see pulptrain.quant for the integer arithmetic; this module builds on pulptrain.quant_core):
- the image input is quantized asymmetrically to uint8 (``q = clip(round(x / s_in) + z, 0, 255)``; z = 0 when
  the calibration images are non-negative). A non-zero z is handled exactly: the first layer's input is padded
  with code z and ``z * sum(w)`` is folded into its int32 bias;
- every conv / depthwise / pointwise unit (conv, BatchNorm, ReLU or ReLU6) is folded (BN into the weights),
  weights are quantized symmetrically per output channel, and the output is requantized to uint8 codes with
  zero point 0 (the output is post-ReLU, hence non-negative);
- activation scales come from the calibration data: ``calibration="max"`` takes the largest value seen at each
  unit's output, ``"percentile"`` the ``percentile``-th percentile (pulptrain.quant.calibrate_scale);
- the last unit requantizes straight to ``lr_bits`` codes (clip at 2**lr_bits - 1), so the latent is rounded
  once; a trailing average pool keeps its input scale and, below 8 bits, is requantized by quant.quantize.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from pulptrain import nn, quant_core
from pulptrain._C import INT8_LAYER_KINDS, INT8_STAGE_COLUMNS, int8_stage_forward
from pulptrain.quant_core import LatentCodes, check_bits

__all__ = ["quantize_frozen", "QuantizedFrozenStage", "Int8LayerTable"]

_CONVS = (nn.Conv2d, nn.DepthwiseConv2d, nn.PointwiseConv2d)
_POOLS = (nn.AvgPool2d, nn.GlobalAvgPool2d)
_PERCENTILE_SAMPLE = 1 << 20  # values kept per unit for percentile calibration


def _modules(module):
    yield module
    for child in module.children():
        yield from _modules(child)


@contextmanager
def _eval_mode(module):
    """Runs the body with every sub-module in eval mode, then restores each module's own mode."""
    modes = [(m, m.training) for m in _modules(module)]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _parse_unit(index, unit):
    """(conv, bn or None, relu6 flag) of a Sequential(conv, [BatchNorm2d], ReLU|ReLU6), or the pool itself."""
    if isinstance(unit, _POOLS) and not isinstance(unit, nn.MaxPool2d):
        return unit
    parts = list(unit) if isinstance(unit, nn.Sequential) else [unit]
    conv = parts[0] if parts and isinstance(parts[0], _CONVS) else None
    bn = parts[1] if len(parts) > 1 and isinstance(parts[1], nn.BatchNorm2d) else None
    act = parts[-1] if len(parts) > 1 and isinstance(parts[-1], nn.ReLU) else None
    if conv is None or act is None or len(parts) != (3 if bn is not None else 2):
        raise ValueError(
            f"frozen stage unit {index} must be Sequential(conv, [BatchNorm2d], ReLU or ReLU6) or "
            f"an average pool, got {unit!r}: INT8 latents are unsigned, post-ReLU"
        )
    return conv, bn, isinstance(act, nn.ReLU6)


class _Calibration:
    """Streaming statistics of one tensor: its max and min, and a bounded random sample for percentiles."""

    def __init__(self, rng):
        self.max, self.min, self.samples, self.rng = -np.inf, np.inf, [], rng

    def update(self, x, keep_sample):
        self.max = max(self.max, float(x.max()))
        self.min = min(self.min, float(x.min()))
        if keep_sample:
            flat = x.reshape(-1)
            take = min(flat.size, _PERCENTILE_SAMPLE // 8)
            self.samples.append(flat[self.rng.choice(flat.size, take, replace=False)])

    def scale(self, bits, method, percentile):
        values = np.concatenate(self.samples) if method == "percentile" else np.array([self.max], np.float32)
        return quant_core.calibrate_scale(values, bits=bits, method=method, percentile=percentile)


@dataclass(frozen=True)
class Int8LayerTable:
    """The INT8 frozen stage as the layer table of the C sequencer (csrc/int8/int8_stage.h), for one input
    shape: what :meth:`QuantizedFrozenStage.forward` runs and what ``pulptrain export`` writes as C tables.

    table: int32 (L, 14), columns ``pulptrain._C.INT8_STAGE_COLUMNS`` (sizes are each layer's input);
    weights: L int8 arrays (None for a pool); requant: L (bias, multiplier, shift) int32 triples (None for a
    pool); lr_step: None or (in_scale, out_scale, bits), the sub-byte step after a trailing pool;
    input_shape / output_shape: (C, H, W) of the input codes and of the latent codes.
    """

    table: np.ndarray
    weights: list
    requant: list
    lr_step: tuple
    input_shape: tuple
    output_shape: tuple

    def forward(self, codes, out=None):
        """The latent codes of uint8 input codes (N,) + input_shape, by the C sequencer."""
        return int8_stage_forward(self.table, self.weights, self.requant, codes, lr_step=self.lr_step, out=out)


def _window_output(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


class _Int8Unit:
    """One folded conv unit: its integer parameters and how to call its kernel."""

    def __init__(self, conv, params, input_zero_point):
        self.kind = type(conv)
        self.params = params
        self.stride = getattr(conv, "stride", (1, 1))
        self.padding = getattr(conv, "padding", (0, 0))
        self.zero_point = input_zero_point
        if input_zero_point:
            # x_real = s * (q - z): sum_k w_k (q_k - z) = sum_k w_k q_k - z sum_k w_k, padding filled with z
            w_sum = params.weight.reshape(params.weight.shape[0], -1).astype(np.int64).sum(axis=1)
            corrected = params.bias.astype(np.int64) - input_zero_point * w_sum
            info = np.iinfo(np.int32)
            params.bias = np.clip(corrected, info.min, info.max).astype(np.int32)

    def table_row(self, shape):
        """(row of the layer table, output shape) for an input of shape (C, H, W)."""
        c, h, w = shape
        kh, kw = self.params.weight.shape[2:] if self.params.weight.ndim == 4 else (1, 1)
        kind = {nn.Conv2d: "conv2d", nn.DepthwiseConv2d: "depthwise", nn.PointwiseConv2d: "pointwise"}[self.kind]
        c_out = self.params.weight.shape[0]
        (sh, sw), (ph, pw) = self.stride, self.padding
        row = [INT8_LAYER_KINDS.index(kind), c, h, w, c_out, kh, kw, sh, sw, ph, pw, self.zero_point, 0]
        row.append(self.params.clip_max)
        return row, (c_out, _window_output(h, kh, sh, ph), _window_output(w, kw, sw, pw))

    def __call__(self, codes):
        p = self.params
        args = p.kernel_args()
        if self.kind is nn.PointwiseConv2d:
            return quant_core.int8_pointwise_conv2d_forward(codes, *args, clip_max=p.clip_max)
        padding = self.padding
        if self.zero_point and any(padding):
            ph, pw = padding
            codes = np.pad(codes, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=self.zero_point)
            padding = 0
        fn = quant_core.int8_conv2d_forward if self.kind is nn.Conv2d else quant_core.int8_depthwise_conv2d_forward
        return fn(codes, *args, stride=self.stride, padding=padding, clip_max=p.clip_max)


class _Int8Pool:
    def __init__(self, pool):
        self.pool = pool

    def table_row(self, shape):
        c, h, w = shape
        if isinstance(self.pool, nn.GlobalAvgPool2d):
            (kh, kw), (sh, sw) = (h, w), (h, w)
        else:
            if any(self.pool.padding):
                raise ValueError("INT8 average pooling supports padding 0 only")
            (kh, kw), (sh, sw) = self.pool.kernel_size, self.pool.stride
        row = [INT8_LAYER_KINDS.index("avg_pool"), c, h, w, c, kh, kw, sh, sw, 0, 0, 0, 0, 255]
        return row, (c, _window_output(h, kh, sh, 0), _window_output(w, kw, sw, 0))

    def __call__(self, codes):
        if isinstance(self.pool, nn.GlobalAvgPool2d):
            return quant_core.int8_global_avg_pool2d(codes)
        if any(self.pool.padding):
            raise ValueError("INT8 average pooling supports padding 0 only")
        return quant_core.int8_avg_pool2d(codes, self.pool.kernel_size, stride=self.pool.stride)


class QuantizedFrozenStage:
    """The INT8 frozen stage made by quantize_frozen.

    forward(x) takes float32 images (N, C, H, W) and returns the latent at the LR layer as
    :class:`pulptrain.quant.LatentCodes`: uint8 codes of lr_bits bits (shape of the float stage's output),
    the scale and lr_bits, so that the latent is ~= scale * codes. Attributes: lr_bits, scale, input_scale,
    input_zero_point, units (one callable per frozen block), unit_scales (output scale of each block),
    weight_nbytes (INT8 weights + int32 bias and requantization parameters, in bytes).
    """

    def __init__(self, float_stage, units, unit_scales, input_scale, input_zero_point, lr_bits, lr_requant):
        self.float_stage, self.units, self.unit_scales = float_stage, units, unit_scales
        self.input_scale, self.input_zero_point = input_scale, input_zero_point
        self.lr_bits, self.scale, self._lr_requant = lr_bits, unit_scales[-1], lr_requant
        self._tables = {}  # input shape -> Int8LayerTable
        self.weight_nbytes = sum(
            u.params.weight.nbytes + u.params.bias.nbytes + u.params.multiplier.nbytes + u.params.shift.nbytes
            for u in units
            if isinstance(u, _Int8Unit)
        )

    def quantize_input(self, x):
        """uint8 codes of float images x (N, C, H, W): clip(round(x / input_scale) + input_zero_point)."""
        x = np.asarray(x, dtype=np.float32)
        if self.input_zero_point:
            x = x + np.float32(self.input_zero_point * self.input_scale)
        return quant_core.quantize(x, self.input_scale, 8)

    def unit_outputs(self, x):
        """The codes after every unit for float32 images x, one kernel call per unit from Python (the last
        is the latent): what :meth:`layer_errors` compares, and an independent path to check forward by."""
        codes = self.quantize_input(x)
        outputs = []
        for i, unit in enumerate(self.units):
            codes = unit(codes)
            if i == len(self.units) - 1 and self._lr_requant is not None:
                codes = quant_core.quantize(quant_core.dequantize(codes, self._lr_requant), self.scale, self.lr_bits)
            outputs.append(codes)
        return outputs

    def layer_table(self, input_shape):
        """The :class:`Int8LayerTable` of this stage for images of shape (C, H, W)."""
        input_shape = tuple(int(v) for v in input_shape)
        if input_shape not in self._tables:
            rows, weights, requant, shape = [], [], [], input_shape
            for unit in self.units:
                row, shape = unit.table_row(shape)
                rows.append(row)
                if isinstance(unit, _Int8Unit):
                    p = unit.params
                    weights.append(np.ascontiguousarray(p.weight))
                    requant.append(tuple(np.ascontiguousarray(a, np.int32) for a in (p.bias, p.multiplier, p.shift)))
                else:
                    weights.append(None)
                    requant.append(None)
            lr_step = None if self._lr_requant is None else (self._lr_requant, self.scale, self.lr_bits)
            table = np.array(rows, np.int32).reshape(-1, len(INT8_STAGE_COLUMNS))
            self._tables[input_shape] = Int8LayerTable(table, weights, requant, lr_step, input_shape, shape)
        return self._tables[input_shape]

    def forward(self, x):
        """LatentCodes (uint8 codes, scale, lr_bits) of the latent for float32 images x (N, C, H, W): the input
        codes go through the layer table in one C call (the sequencer an exported bundle runs)."""
        codes = self.quantize_input(x)
        return LatentCodes(self.layer_table(codes.shape[1:]).forward(codes), self.scale, self.lr_bits)

    __call__ = forward

    def dequantize(self, codes):
        """float32 latent = scale * codes."""
        return quant_core.dequantize(codes, self.scale)

    def layer_errors(self, x):
        """Per-block error of the INT8 stage against the float one on images x, errors accumulating through
        the stage as they do in use. Returns a list of dicts: block, cosine (cosine similarity of the
        flattened tensors), relative_l2 (||int8 - float|| / ||float||), max_abs_error, scale."""
        with _eval_mode(self.float_stage):
            int8_outputs = self.unit_outputs(x)
            h = np.asarray(x, dtype=np.float32)
            rows = []
            for i, block in enumerate(self.float_stage):
                h = block.forward(h).copy()
                deq = quant_core.dequantize(int8_outputs[i], self.unit_scales[i]).astype(np.float64)
                ref = h.astype(np.float64).reshape(-1)
                diff = deq.reshape(-1) - ref
                norm = np.linalg.norm(ref) * np.linalg.norm(deq)
                rows.append(
                    dict(
                        block=i,
                        cosine=float(ref @ deq.reshape(-1) / norm) if norm > 0 else 1.0,
                        relative_l2=float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-30)),
                        max_abs_error=float(np.abs(diff).max()),
                        scale=float(self.unit_scales[i]),
                    )
                )
            return rows


def quantize_frozen(frozen, calibration_x, *, lr_bits=8, calibration="max", percentile=99.99, batch_size=64, seed=0):
    """Post-training quantization of a float frozen stage (a Sequential from pulptrain.models.split).

    frozen: Sequential whose blocks are Sequential(conv, BatchNorm2d, ReLU|ReLU6) (conv: Conv2d,
    DepthwiseConv2d or PointwiseConv2d) or an average pool; BN is folded with its running statistics.
    calibration_x: float32 images (N, C, H, W) from the training data (never test data), run in batches of
    batch_size through the float stage in eval mode. lr_bits: 1..8, the bits of the latent codes.
    calibration: "max" (largest activation seen) or "percentile" (the `percentile`-th percentile of a random
    sample of at most 2**20 values per block, drawn with `seed`). Returns a QuantizedFrozenStage; the float
    stage is left unchanged (every module back in its previous train/eval mode).
    """
    if not isinstance(frozen, nn.Sequential) or len(frozen) == 0:
        raise TypeError("frozen must be a non-empty pulptrain.nn.Sequential of blocks")
    lr_bits = check_bits(lr_bits, "lr_bits")
    if calibration not in ("max", "percentile"):
        raise ValueError(f"calibration must be 'max' or 'percentile', got {calibration!r}")
    x = np.asarray(calibration_x)
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"calibration_x must be a non-empty float32 array (N, C, H, W), got {x.dtype} {x.shape}")
    parsed = [_parse_unit(i, b) for i, b in enumerate(frozen)]

    rng = np.random.default_rng(seed)
    stats_in = _Calibration(rng)
    stats = [_Calibration(rng) for _ in parsed]
    keep = calibration == "percentile"
    with _eval_mode(frozen):
        for start in range(0, x.shape[0], batch_size):
            h = x[start : start + batch_size]
            stats_in.update(h, False)
            for block, st in zip(frozen, stats):
                h = block.forward(h)
                st.update(h, keep)

    if stats_in.min >= 0:
        in_scale, zero_point = quant_core.calibrate_scale(np.array([stats_in.max], np.float32), 8), 0
    else:
        in_scale = (stats_in.max - stats_in.min) / 255.0 if stats_in.max > stats_in.min else 1.0
        zero_point = int(np.clip(round(-stats_in.min / in_scale), 0, 255))

    units, scales = [], []
    scale = in_scale
    last = len(parsed) - 1
    lr_requant = None
    for i, (item, st) in enumerate(zip(parsed, stats)):
        if not isinstance(item, tuple):  # average pool: codes keep their scale
            units.append(_Int8Pool(item))
            if i == last and lr_bits < 8:
                lr_requant = scale
                scale = st.scale(lr_bits, calibration, percentile)
            scales.append(scale)
            continue
        conv, bn, relu6 = item
        bits = lr_bits if i == last else 8
        out_scale = st.scale(bits, calibration, percentile)
        if relu6:
            out_scale = min(out_scale, 6.0 / ((1 << bits) - 1))
        bias = None if conv.bias is None else conv.bias.data
        w, b = conv.weight.data.astype(np.float64), bias
        if bn is not None:
            w, b = quant_core.fold_batchnorm(
                w, b, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var, bn.eps
            )
        params = quant_core.quantize_conv_params(w, b, scale, out_scale, relu6=relu6, out_bits=bits)
        units.append(_Int8Unit(conv, params, zero_point if i == 0 else 0))
        scales.append(out_scale)
        scale = out_scale
    return QuantizedFrozenStage(frozen, units, scales, in_scale, zero_point, lr_bits, lr_requant)
