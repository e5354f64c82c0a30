"""Independent float64 numpy references for the kernels: slow, obvious, written from the definitions.

Used by the tests and by `python -m pulptrain.selfcheck`; never by the kernels themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntPair = Union[int, Sequence[int]]  # an int, or an (h, w) pair


def pair(v: IntPair) -> tuple[int, ...]:
    """An int as (v, v), a pair as a tuple."""
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a window of k taps moved by stride over size inputs padded by pad on each side."""
    return (size + 2 * pad - k) // stride + 1


def _patches(
    x: NDArray[np.floating], kh: int, kw: int, stride: IntPair, padding: IntPair
) -> Iterator[tuple[int, int, NDArray[np.float64]]]:
    """Yields (ky, kx, patch) with patch[n, c, oh, ow] = padded x[n, c, oh*sh + ky, ow*sw + kx]."""
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = out_size(x.shape[2], kh, sh, ph)
    wo = out_size(x.shape[3], kw, sw, pw)
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx, xp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]


def conv2d(
    x: NDArray[np.floating],
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    depthwise: bool = False,
) -> NDArray[np.float64]:
    """Float64 convolution (depthwise: groups = channels, w (C, 1, kh, kw)) of x (N, C_in, H, W) with
    w (C_out, C_in, kh, kw); returns (N, C_out, H_out, W_out)."""
    w = np.asarray(w, np.float64)
    kh, kw = w.shape[2:]
    y = None
    for ky, kx, patch in _patches(x, kh, kw, stride, padding):
        if depthwise:
            term = patch * w[None, :, 0, ky, kx, None, None]
        else:
            term = np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
        y = term if y is None else y + term
    assert y is not None, f"conv2d: the kernel {kh}x{kw} has no taps"
    if bias is not None:
        y = y + np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv2d_grad_input(
    dy: ArrayLike,
    w: ArrayLike,
    input_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    depthwise: bool = False,
) -> NDArray[np.float64]:
    """Float64 gradient of conv2d with respect to x: dy (N, C_out, H_out, W_out) -> dx of input_shape."""
    dy = np.asarray(dy, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = input_shape
    kh, kw = w.shape[2:]
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    ho, wo = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    for ky in range(kh):
        for kx in range(kw):
            if depthwise:
                term = dy * w[None, :, 0, ky, kx, None, None]
            else:
                term = np.einsum("nohw,oc->nchw", dy, w[:, :, ky, kx])
            dxp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw] += term
    return dxp[:, :, ph : ph + h, pw : pw + wd]


def conv2d_grad_weight(
    dy: ArrayLike,
    x: NDArray[np.floating],
    weight_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    depthwise: bool = False,
) -> NDArray[np.float64]:
    """Float64 gradient of conv2d with respect to w, summed over the batch: dw of weight_shape."""
    dy = np.asarray(dy, np.float64)
    kh, kw = weight_shape[2:]
    dw = np.zeros(weight_shape)
    for ky, kx, patch in _patches(x, kh, kw, stride, padding):
        if depthwise:
            dw[:, 0, ky, kx] = np.einsum("nchw,nchw->c", dy, patch)
        else:
            dw[:, :, ky, kx] = np.einsum("nohw,nchw->oc", dy, patch)
    return dw


def linear(x: ArrayLike, w: ArrayLike, bias: ArrayLike | None = None) -> NDArray[np.float64]:
    """Float64 x (N, in) @ w (out, in).T + bias (out,): (N, out)."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y if bias is None else y + np.asarray(bias, np.float64)


def bias_grad(dy: ArrayLike) -> NDArray[np.float64]:
    """Float64 dy (N, C, ...) summed over every axis but 1: (C,)."""
    dy = np.asarray(dy, np.float64)
    return dy.sum(axis=tuple(i for i in range(dy.ndim) if i != 1))


def assert_close(actual: ArrayLike, expected: ArrayLike, scale: float = 1e-4) -> float:
    """max |actual - expected| <= scale * (1 + max |expected|)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = np.max(np.abs(actual - expected)) if actual.size else 0.0
    bound = scale * (1.0 + (np.max(np.abs(expected)) if expected.size else 0.0))
    assert err <= bound, f"max |diff| {err:.3g} > {bound:.3g}"
    return err
