"""The quantization arithmetic behind :mod:`pulptrain.quant` (import it from there): the latent-code bits
check, the latent batch types a frozen stage emits, activation scales, and the INT8 layer parameters.
:mod:`pulptrain.frozen_int8` builds on this module, and :mod:`pulptrain.quant` publishes both, so neither
imports the other. The scheme and the API are described in :mod:`pulptrain.quant`.
"""

from dataclasses import dataclass

import numpy as np

from pulptrain._C import (
    dequantize,
    get_int8_microkernel,
    int8_avg_pool2d,
    int8_conv2d_forward,
    int8_depthwise_conv2d_forward,
    int8_global_avg_pool2d,
    int8_linear_forward,
    int8_microkernels,
    int8_pointwise_conv2d_forward,
    pack_bits,
    packed_size,
    quantize,
    set_int8_microkernel,
    unpack_bits,
)

__all__ = [
    "check_bits",
    "LatentCodes",
    "FloatLatents",
    "as_latents",
    "FP32_BITS",
    "quantize",
    "dequantize",
    "pack_bits",
    "unpack_bits",
    "packed_size",
    "calibrate_scale",
    "quantize_multiplier",
    "fold_batchnorm",
    "quantize_weights_per_channel",
    "relu_clip_max",
    "QuantizedParams",
    "quantize_conv_params",
    "int8_conv2d_forward",
    "int8_depthwise_conv2d_forward",
    "int8_pointwise_conv2d_forward",
    "int8_linear_forward",
    "int8_avg_pool2d",
    "int8_global_avg_pool2d",
    "int8_microkernels",
    "set_int8_microkernel",
    "get_int8_microkernel",
]

UINT8_MAX = 255
INT8_WEIGHT_MAX = 127  # symmetric weights: -127..127 (-128 unused, so negating a channel is exact)
MAX_SHIFT = 62
MULTIPLIER_BITS = 31  # multipliers are normalised into [2**30, 2**31) when the shift allows


FP32_BITS = 32  # "bits" of latents kept in float32 (no quantization)


def check_bits(bits, name="bits", *, allow_fp32=False):
    """``int(bits)`` when bits is a code width in 1..8 (or 32 = FP32 when allow_fp32): the one check of the
    latent-code bits, used where a bits argument enters the package. TypeError when bits is not an int,
    ValueError naming ``name`` when it is out of range."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {bits!r}")
    if not (1 <= bits <= 8 or (allow_fp32 and bits == FP32_BITS)):
        allowed = "1..8 (quantized) or 32 (FP32)" if allow_fp32 else "an int in 1..8"
        raise ValueError(f"{name} must be {allowed}, got {bits!r}")
    return int(bits)


@dataclass(frozen=True)
class LatentCodes:
    """A batch of latents as unsigned codes with zero point 0: latent = scale * codes (float32 product).

    codes: uint8 array (N,) + latent shape, every value < 2**bits; scale: float > 0; bits: 1..8. What the
    INT8 frozen stage emits, and what a replay buffer of the same bits and scale stores unchanged.
    """

    codes: np.ndarray
    scale: float
    bits: int

    def __post_init__(self):
        codes = np.asarray(self.codes)
        if codes.dtype != np.uint8 or codes.ndim < 1:
            raise TypeError(f"codes must be a uint8 array (N, ...), got {codes.dtype} {codes.shape}")
        codes = np.ascontiguousarray(codes)
        scale = float(self.scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {self.scale!r}")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "bits", check_bits(self.bits))

    @property
    def shape(self):
        return self.codes.shape

    def __len__(self):
        return len(self.codes)

    def values(self, out=None):
        """The float32 latents, scale * codes (into ``out`` when given)."""
        return dequantize(self.codes, self.scale, out=out)

    def take(self, rows):
        """The latents at the given rows (a copy), as LatentCodes."""
        return LatentCodes(self.codes[rows], self.scale, self.bits)

    def at_precision(self, bits, scale):
        """These latents as LatentCodes of ``bits`` / ``scale``: this object itself when both match (no
        dequantize / quantize round trip), else quantize(values(), scale, bits)."""
        if bits == self.bits and float(scale) == self.scale:
            return self
        return LatentCodes(quantize(self.values(), scale, bits), scale, bits)

    @staticmethod
    def concatenate(parts):
        """One LatentCodes of the rows of ``parts`` (LatentCodes of the same scale and bits) in order."""
        first = parts[0]
        if any(p.scale != first.scale or p.bits != first.bits for p in parts):
            raise ValueError("latent codes of different scales or bits cannot be concatenated")
        return LatentCodes(np.concatenate([p.codes for p in parts]), first.scale, first.bits)


@dataclass(frozen=True)
class FloatLatents:
    """A batch of float32 latents (N,) + latent shape: the output of a float frozen stage. Same interface
    as :class:`LatentCodes` (bits is 32, FP32_BITS). :func:`as_latents` checks that the values are finite."""

    data: np.ndarray
    bits = FP32_BITS

    def __post_init__(self):
        data = np.asarray(self.data, dtype=np.float32)
        if data.ndim < 1:
            raise ValueError(f"latents must be an array (N, ...), got shape {data.shape}")
        data = np.ascontiguousarray(data)
        object.__setattr__(self, "data", data)

    @property
    def shape(self):
        return self.data.shape

    def __len__(self):
        return len(self.data)

    def values(self, out=None):
        """The float32 latents (the array itself, or copied into ``out``)."""
        if out is None:
            return self.data
        np.copyto(out, self.data)
        return out

    def take(self, rows):
        return FloatLatents(self.data[rows])

    def at_precision(self, bits, scale):
        """These latents as LatentCodes of ``bits`` / ``scale``: quantize(latents, scale, bits)."""
        return LatentCodes(quantize(self.data, scale, bits), scale, bits)

    @staticmethod
    def concatenate(parts):
        return FloatLatents(np.concatenate([p.data for p in parts]))


def as_latents(latents, copy=False):
    """LatentCodes and FloatLatents as they are; anything else (an array of float latents) as FloatLatents,
    a float32 copy when ``copy`` (for an array that its owner overwrites, such as an nn layer's output) or
    when it is not already a C-contiguous float32 array; ValueError when they are not finite."""
    if isinstance(latents, (LatentCodes, FloatLatents)):
        return latents
    batch = FloatLatents(np.array(latents, np.float32) if copy else np.asarray(latents))
    if not np.all(np.isfinite(batch.data)):
        raise ValueError("latents must be finite")
    return batch


def calibrate_scale(x, bits=8, method="max", percentile=99.99):
    """Activation scale (units of x per code step) for unsigned codes of `bits` bits, zero point 0.

    The clipping value is max(x) (method="max") or the `percentile`-th percentile of x
    (method="percentile", linear interpolation as numpy.percentile; it clips the rare largest values to
    keep resolution for the rest). scale = clip_value / (2**bits - 1), so clip_value maps to the top code.
    x: array of calibration activations (any shape, typically post-ReLU). When the clipping value is not
    > 0 (an all-zero or all-negative tensor, which quantizes to zeros at any scale) the scale is 1.0.
    Returns a Python float.
    """
    bits = check_bits(bits)
    values = np.asarray(x, dtype=np.float64)
    if values.size == 0:
        raise ValueError("x must not be empty")
    if not np.all(np.isfinite(values)):
        raise ValueError("x must be finite")
    if method == "max":
        clip_value = float(values.max())
    elif method == "percentile":
        if not 0.0 < float(percentile) <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
        clip_value = float(np.percentile(values, float(percentile)))
    else:
        raise ValueError(f"method must be 'max' or 'percentile', got {method!r}")
    if not clip_value > 0.0:
        return 1.0
    return clip_value / float((1 << bits) - 1)


def quantize_multiplier(real_multiplier):
    """Integer (multiplier, shift) with multiplier / 2**shift ~= real_multiplier, per element.

    real_multiplier: array-like of reals >= 0 and < 2**31. Returns two int32 arrays of the same shape:
    multiplier in [2**30, 2**31) (or smaller when the shift would exceed 62, for tiny factors; 0 for 0) and
    shift in [0, 62]. The relative error is at most 2**-31 for factors >= 2**-31.
    """
    real = np.asarray(real_multiplier, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real < 0):
        raise ValueError("real_multiplier must be finite and >= 0")
    if np.any(real >= 2.0**31):
        raise ValueError("real_multiplier must be < 2**31")
    fraction, exponent = np.frexp(real)  # real = fraction * 2**exponent, fraction in [0.5, 1)
    shift = MULTIPLIER_BITS - exponent.astype(np.int64)
    shift = np.clip(shift, 0, MAX_SHIFT)
    multiplier = np.rint(real * np.exp2(shift.astype(np.float64))).astype(np.int64)
    # rounding can reach 2**31: halve it with one less shift (exact: the value is even)
    top = multiplier >= 2**31
    multiplier = np.where(top, multiplier // 2, multiplier)
    shift = np.where(top, shift - 1, shift)
    shift = np.where(real == 0, 0, shift)
    return multiplier.astype(np.int32), shift.astype(np.int32)


def fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold an inference BatchNorm that follows a conv / linear into its weight and bias.

    BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta with y = W x + b, so W' = W * a[c],
    b' = (b - mean) * a + beta with a = gamma / sqrt(var + eps). weight (C_out, ...), bias (C_out,) or
    None, the BN vectors (C_out,). Returns float64 (weight', bias').
    """
    w = np.asarray(weight, dtype=np.float64)
    c = w.shape[0]
    vectors = [np.asarray(v, dtype=np.float64) for v in (gamma, beta, running_mean, running_var)]
    for name, v in zip(("gamma", "beta", "running_mean", "running_var"), vectors):
        if v.shape != (c,):
            raise ValueError(f"{name} must have shape ({c},), got {v.shape}")
    gamma, beta, mean, var = vectors
    if np.any(var + eps <= 0):
        raise ValueError("running_var + eps must be > 0")
    a = gamma / np.sqrt(var + eps)
    b = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (c,):
        raise ValueError(f"bias must have shape ({c},), got {b.shape}")
    return w * a.reshape((c,) + (1,) * (w.ndim - 1)), (b - mean) * a + beta


def quantize_weights_per_channel(weight):
    """Symmetric per-output-channel int8 weights: w_scale[c] = max|w[c]| / 127,
    w_i8 = clip(round_half_even(w / w_scale[c]), -127, 127). An all-zero channel gets w_scale 1.0.
    weight (C_out, ...) float. Returns (w_i8 of weight's shape, w_scale float64 (C_out,))."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim < 1 or w.size == 0 or not np.all(np.isfinite(w)):
        raise ValueError("weight must be a non-empty finite array (C_out, ...)")
    amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    w_scale = np.where(amax > 0, amax / INT8_WEIGHT_MAX, 1.0)
    shaped = w_scale.reshape((-1,) + (1,) * (w.ndim - 1))
    w_i8 = np.clip(np.rint(w / shaped), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX).astype(np.int8)
    return w_i8, w_scale


def relu_clip_max(out_scale, relu6=False, out_bits=8):
    """Upper clip code of a ReLU (2**out_bits - 1) or ReLU6 (round(6 / out_scale), at most 2**out_bits - 1)
    layer output. out_bits < 8 makes the layer emit sub-byte codes directly (for example the LR layer)."""
    top = (1 << check_bits(out_bits, "out_bits")) - 1
    if not relu6:
        return top
    if isinstance(out_scale, (bool, np.bool_)) or not isinstance(out_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"out_scale must be a real number, got {out_scale!r}")
    if not (np.isfinite(out_scale) and out_scale > 0):
        raise ValueError(f"out_scale must be finite and > 0, got {out_scale!r}")
    return int(min(top, max(0, round(6.0 / float(out_scale)))))


@dataclass
class QuantizedParams:
    """Everything an INT8 kernel takes for one layer, plus the scales it stands for.

    weight: int8, the layer's weight layout; weight_scale: float64 (C_out,); bias: int32 (C_out,) in units
    of in_scale * weight_scale[c]; multiplier / shift: int32 (C_out,); in_scale / out_scale: the activation
    scales (float units per code); clip_max: the top output code (2**out_bits - 1 for ReLU, at most
    round(6/out_scale) for ReLU6). The float layer it replaces computes y ~= out_scale * int8_layer(x_u8).
    """

    weight: np.ndarray
    weight_scale: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    in_scale: float
    out_scale: float
    clip_max: int = UINT8_MAX

    def kernel_args(self):
        """(weight, bias, multiplier, shift) in the order the int8_*_forward functions take them (pass
        clip_max=self.clip_max as well)."""
        return self.weight, self.bias, self.multiplier, self.shift


def quantize_conv_params(weight, bias, in_scale, out_scale, *, relu6=False, out_bits=8):
    """Post-training quantization of one conv / depthwise / pointwise / linear layer.

    weight (C_out, ...) and bias (C_out,) or None are float, with BN already folded (fold_batchnorm);
    in_scale / out_scale are the input and output activation scales (calibrate_scale). Weights are
    quantized symmetrically per output channel; bias_i32 = round(bias / (in_scale * w_scale[c])) (int32
    saturated); (multiplier, shift) = quantize_multiplier(in_scale * w_scale[c] / out_scale). The layer's
    float output y then satisfies y ~= out_scale * clip(round(acc * in_scale * w_scale / out_scale)),
    which is what the INT8 kernels compute in integers. out_bits < 8 (with out_scale from
    calibrate_scale(..., bits=out_bits)) makes the layer output `out_bits`-bit codes directly, e.g. the
    latent at the LR layer, ready for pack_bits. Returns QuantizedParams.
    """
    in_scale, out_scale = float(in_scale), float(out_scale)
    if not (np.isfinite(in_scale) and in_scale > 0 and np.isfinite(out_scale) and out_scale > 0):
        raise ValueError(f"in_scale and out_scale must be finite and > 0, got {in_scale}, {out_scale}")
    w_i8, w_scale = quantize_weights_per_channel(weight)
    c = w_i8.shape[0]
    b = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    if b.shape != (c,):
        raise ValueError(f"bias must have shape ({c},), got {b.shape}")
    int32 = np.iinfo(np.int32)
    bias_i32 = np.clip(np.rint(b / (in_scale * w_scale)), int32.min, int32.max).astype(np.int32)
    multiplier, shift = quantize_multiplier(in_scale * w_scale / out_scale)
    return QuantizedParams(
        w_i8, w_scale, bias_i32, multiplier, shift, in_scale, out_scale, relu_clip_max(out_scale, relu6, out_bits)
    )
