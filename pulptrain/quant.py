"""Quantization: latent-replay codes (sub-byte, bit-packed) and the INT8 frozen-stage arithmetic.

Latent codes: a latent replay (LR) is a non-negative post-ReLU tensor, stored unsigned with
zero point 0 as ``q = clip(round_half_even(x / scale), 0, 2**bits - 1)`` and read back as ``scale * q``;
``pack_bits`` stores codes of 1..8 bits densely (exactly ceil(count * bits / 8) bytes), so a 7-bit
memory really is 7/8 of an 8-bit one. ``calibrate_scale`` picks ``scale`` from calibration activations.

INT8 layers (PULP-NN scheme): activations are uint8 codes with a per-tensor scale (zero point 0),
weights int8 with a per-output-channel scale (symmetric, zero point 0), accumulation in int32, and the
result is requantized to uint8 with a per-channel integer multiplier and shift (BN folded in)::

    acc[c] = bias_i32[c] + sum_k x_u8[k] * w_i8[c, k]                        (exact integers)
    p      = acc[c] * multiplier[c]                                         (exact, 64-bit)
    y_u8   = clip(floor(p / 2**shift[c] + 1/2), clip_min, clip_max)         (round half up)

``multiplier`` is in [0, 2**31 - 1] and ``shift`` in [0, 62] per output channel; with
``quantize_multiplier`` the pair stands for the real factor ``in_scale * w_scale[c] / out_scale``.
``quantize_conv_params`` turns float weights (BN already folded with ``fold_batchnorm``) and the input /
output activation scales into everything the INT8 kernels take.

API (x_u8: uint8 NCHW codes; w_i8: int8 in the PyTorch layout; bias int32 (C_out,) or None; multiplier,
shift: int32 (C_out,) or one int; every out= is a C-contiguous array of the result's shape and dtype)::

    quantize(x, scale, bits=8, *, out=None) -> uint8 codes          dequantize(codes, scale, *, out=None)
    pack_bits(codes, bits, *, out=None) -> uint8 (packed_size,)     packed_size(count, bits)
    unpack_bits(packed, bits, count, *, out=None) -> uint8 (count,)
    calibrate_scale(x, bits=8, method="max" | "percentile", percentile=99.99) -> float
    int8_conv2d_forward(x_u8, w_i8, bias, multiplier, shift, *, stride=1, padding=0, clip_min=0,
                        clip_max=255, out=None)                    (also int8_depthwise_conv2d_forward)
    int8_pointwise_conv2d_forward(x_u8, w_i8, bias, multiplier, shift, *, clip_min=0, clip_max=255, out=None)
    int8_linear_forward(x_u8 (N, in), w_i8 (out, in), bias, multiplier, shift, *, clip_min, clip_max, out)
    int8_avg_pool2d(x_u8, kernel_size, *, stride=None, out=None)   int8_global_avg_pool2d(x_u8, *, out=None)
    fold_batchnorm(w, b, gamma, beta, mean, var, eps=1e-5) -> (w', b')
    quantize_conv_params(w, b, in_scale, out_scale, *, relu6=False, out_bits=8) -> QuantizedParams
    quantize_multiplier(real) -> (multiplier, shift); quantize_weights_per_channel(w) -> (w_i8, w_scale)

Latent batches: a frozen stage emits :class:`LatentCodes` (uint8 codes, scale, bits; the INT8 stage) or
float32 latents (:class:`FloatLatents`, bits 32); both have ``values(out=None)`` (float32 latents),
``take(rows)`` and ``at_precision(bits, scale)``. ``check_bits(bits, name, allow_fp32=False)`` is the one check
of a bits argument. ``quantize_frozen`` / ``QuantizedFrozenStage`` (post-training quantization of a frozen
stage) live in :mod:`pulptrain.frozen_int8` and are published here too.
"""

from pulptrain import quant_core
from pulptrain.frozen_int8 import QuantizedFrozenStage, quantize_frozen
from pulptrain.quant_core import *  # noqa: F401,F403 (the arithmetic, published here)

__all__ = quant_core.__all__ + ["quantize_frozen", "QuantizedFrozenStage"]
