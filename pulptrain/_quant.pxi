# Latent codes (quantize / dequantize / bit packing) and INT8 inference bindings (included by _C.pyx).
from libc.stdint cimport uint8_t, int8_t, int32_t

# ---- latent codes ---------------------------------------------------------------------------------------

def packed_size(count, bits):
    """Bytes that pack_bits makes from `count` codes of `bits` bits: exactly ceil(count * bits / 8)."""
    cdef int64_t c = _int_arg(count, "count", 0, 2**62)
    cdef int b = _int_arg(bits, "bits", 1, 8)
    return pt_packed_bytes(c, b)


def quantize(x, scale, bits=8, *, out=None):
    """Latent codes: q = clip(round_half_even(x / scale), 0, 2**bits - 1) as uint8, same shape as x.

    x: float32 array of any shape (typically a post-ReLU activation); scale: real > 0 (units of x per
    code step); bits: 1..8. x / scale is a float32 division and the rounding is half to even, so the result
    equals numpy's clip(rint(x / float32(scale)), 0, 2**bits - 1). +-inf clip to the ends; NaN is a
    ValueError. out: a C-contiguous uint8 array of x's shape.
    """
    X = _typed_input(x, "x", np.float32, -1, "")
    cdef float s = _scale_arg(scale)
    cdef int b = _int_arg(bits, "bits", 1, 8)
    Q = _typed_output(out, X.shape, np.uint8, (X,))
    cdef int64_t count = X.size
    cdef const float *px = <const float *>_vptr(X)
    cdef uint8_t *pq = <uint8_t *>_vptr(Q)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_quantize(&team, count, px, s, b, pq)
    if st == PT_ERR_VALUE_OUT_OF_RANGE:
        raise ValueError("x contains NaN, which has no code")
    _check(st, "quantize")
    return Q


def dequantize(codes, scale, *, out=None):
    """x = scale * codes (a float32 product), same shape as codes. codes: uint8 array, scale: real > 0.
    out: a C-contiguous float32 array of codes' shape."""
    Q = _typed_input(codes, "codes", np.uint8, -1, "")
    cdef float s = _scale_arg(scale)
    X = _typed_output(out, Q.shape, np.float32, (Q,))
    cdef int64_t count = Q.size
    cdef const uint8_t *pq = <const uint8_t *>_vptr(Q)
    cdef float *px = <float *>_vptr(X)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_dequantize(&team, count, pq, s, px)
    _check(st, "dequantize")
    return X


def pack_bits(codes, bits, *, out=None):
    """Pack uint8 codes (any shape, read in C order) of `bits` bits (1..8) into a 1-D uint8 array of exactly
    packed_size(codes.size, bits) bytes. Code i fills bits [i*bits, (i+1)*bits) of a little-endian bit
    stream (stream bit k = bit k % 8 of byte k // 8, a code's least significant bit first); unused high
    bits of the last byte are 0. A code above 2**bits - 1 is a ValueError (out is then unspecified).
    """
    Q = _typed_input(codes, "codes", np.uint8, -1, "")
    cdef int b = _int_arg(bits, "bits", 1, 8)
    cdef int64_t count = Q.size
    P = _typed_output(out, (pt_packed_bytes(count, b),), np.uint8, (Q,))
    cdef const uint8_t *pq = <const uint8_t *>_vptr(Q)
    cdef uint8_t *pp = <uint8_t *>_vptr(P)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_pack_bits(&team, count, pq, b, pp)
    if st == PT_ERR_VALUE_OUT_OF_RANGE:
        raise ValueError(f"codes must be <= {(1 << b) - 1} for bits={b}, got a maximum of {int(Q.max())}")
    _check(st, "pack_bits")
    return P


def unpack_bits(packed, bits, count, *, out=None):
    """Inverse of pack_bits: `count` uint8 codes of `bits` bits from `packed`, a 1-D uint8 array of exactly
    packed_size(count, bits) bytes. Returns shape (count,); out may be any C-contiguous uint8 array holding
    count elements (for example a (N, C, H, W) latent buffer) and is returned as is."""
    P = _typed_input(packed, "packed", np.uint8, 1, "(bytes,)")
    cdef int b = _int_arg(bits, "bits", 1, 8)
    cdef int64_t c = _int_arg(count, "count", 1, 2**62)
    cdef int64_t need = pt_packed_bytes(c, b)
    if P.shape[0] != need:
        raise ValueError(f"packed must hold exactly {need} bytes for count={c}, bits={b}, got {P.shape[0]}")
    Q = _typed_output(out, (c,), np.uint8, (P,), True)
    cdef const uint8_t *pp = <const uint8_t *>_vptr(P)
    cdef uint8_t *pq = <uint8_t *>_vptr(Q)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_unpack_bits(&team, c, pp, b, pq)
    _check(st, "unpack_bits")
    return Q


# ---- INT8 inference layers ------------------------------------------------------------------------------

# Mirrors csrc/int8/int8_depthwise_conv2d.c: its column phases use a stack array per phase, and its in-plane
# indices are 32-bit.
cdef enum:
    _DW_MAX_STRIDE = 64


cdef int _int8_depthwise_limits(pt_conv_geometry *g, object stride) except -1:
    if g.stride_w > _DW_MAX_STRIDE:
        raise ValueError(f"stride must be >= 1 and <= {_DW_MAX_STRIDE} along the width for the INT8 depthwise "
                         f"kernel, got {stride!r}")
    # the kernel's int16 phase planes: (H + 2 pad_h) rows of the padded width rounded up to the stride, plus
    # kw, rounded up to 32 elements, must stay <= INT32_MAX
    cdef int64_t h_pad = g.h_in + 2 * g.pad_h, w_pad = g.w_in + 2 * g.pad_w
    cdef int64_t plane = h_pad * ((w_pad + g.stride_w - 1) // g.stride_w) * g.stride_w + g.kw
    if plane > 2 ** 31 - 32 or g.h_in * g.w_in > 2 ** 31 - 1:
        raise ValueError(f"the padded input plane {h_pad}x{w_pad} is too large for the INT8 depthwise kernel "
                         f"(32-bit plane indices)")
    return 0


def int8_microkernels():
    """Names of the INT8 matmul microkernels this CPU can run ('portable-4x2' everywhere, plus 'avx2-4x16' on
    x86 CPUs with AVX2, 'avxvnni-6x16' on those with AVX-VNNI and 'avx512vnni-8x32' on those with AVX512-VNNI).
    All give identical results."""
    names = []
    while pt_int8_microkernel_name(len(names)) != NULL:
        names.append(pt_int8_microkernel_name(len(names)).decode())
    return names


def set_int8_microkernel(name):
    """Select the INT8 microkernel used by conv2d / pointwise / linear ('auto' = the best one of the ISA level
    in use, see set_isa)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    if pt_int8_set_microkernel(name.encode()) != PT_OK:
        raise ValueError(f"name must be 'auto' or one of {int8_microkernels()}, got {name!r}")


def get_int8_microkernel():
    """The INT8 microkernel in use."""
    return pt_int8_get_microkernel().decode()


cdef void *_workspace_bytes(int64_t nbytes) except? NULL:
    return <void *>_workspace((nbytes + 3) // 4)


cdef object _per_channel(object v, str name, int64_t channels, int64_t lo, int64_t hi):
    """An int (broadcast) or an int32 array of shape (channels,), every value in [lo, hi]."""
    if _is_int(v):
        if v < lo or v > hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
        return np.full(channels, int(v), dtype=np.int32)  # [lo, hi] lies inside the int32 range
    arr = _typed_input(v, name, np.int32, 1, f"({channels},)")
    if arr.shape[0] != channels:
        raise ValueError(f"{name} must have shape ({channels},), got {arr.shape}")
    # the range check in a C loop: two numpy reductions per array were most of an INT8 call's overhead
    cdef const int32_t *values = <const int32_t *>_vptr(arr)
    cdef int64_t i
    for i in range(channels):
        if values[i] < lo or values[i] > hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got values in [{arr.min()}, {arr.max()}]")
    return arr


cdef tuple _requant_arrays(object bias, object multiplier, object shift, int64_t channels):
    B = None
    if bias is not None:
        B = _typed_input(bias, "bias", np.int32, 1, f"({channels},)")
        if B.shape[0] != channels:
            raise ValueError(f"bias must have shape ({channels},), got {B.shape}")
    M = _per_channel(multiplier, "multiplier", channels, 0, 2 ** 31 - 1)
    S = _per_channel(shift, "shift", channels, 0, PT_INT8_MAX_SHIFT)
    return B, M, S


cdef pt_requant _requant(object B, object M, object S, object clip_min, object clip_max) except *:
    cdef pt_requant rq
    rq.clip_min = _int_arg(clip_min, "clip_min", 0, 255)
    rq.clip_max = _int_arg(clip_max, "clip_max", 0, 255)
    if rq.clip_min > rq.clip_max:
        raise ValueError(f"clip_min must be <= clip_max, got {clip_min} > {clip_max}")
    rq.bias = <const int32_t *>_vptr(B)
    rq.multiplier = <const int32_t *>_vptr(M)
    rq.shift = <const int32_t *>_vptr(S)
    return rq


cdef int _check_k(int64_t K, str what) except -1:
    if K > PT_INT8_MAX_K:
        raise ValueError(f"{what} = {K} is too long for an exact int32 accumulator (at most {PT_INT8_MAX_K})")
    return 0


_REQUANT_DOC = """
    Requantization per output channel c (exact integers, 64-bit intermediate):
    acc = bias[c] + sum x_u8 * w_i8;  p = acc * multiplier[c];
    y_u8 = clip(floor(p / 2**shift[c] + 1/2), clip_min, clip_max)  (= (p + 2**(shift-1)) >> shift).
    bias: int32 (C_out,) or None; multiplier: int32 (C_out,) in [0, 2**31 - 1] or one int for all channels;
    shift: int32 (C_out,) in [0, 62] or one int; 0 <= clip_min <= clip_max <= 255 (clip_max < 255 is a
    ReLU6-style clip). x is uint8 NCHW (zero point 0; padding reads as 0), w int8 in the PyTorch layout.
    Non-contiguous inputs are copied; out must be a C-contiguous uint8 array of the result's shape.
"""


def int8_conv2d_forward(x, w, bias, multiplier, shift, *, stride=1, padding=0, clip_min=0, clip_max=255,
                        out=None):
    X = _typed_input(x, "x", np.uint8, 4, "(N, C_in, H, W)")
    W = _typed_input(w, "w", np.int8, 4, "(C_out, C_in, kh, kw)")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (C_out, {X.shape[1]}, kh, kw) to match x {X.shape}, got {W.shape}")
    _check_k(W.shape[1] * W.shape[2] * W.shape[3], "C_in * kh * kw")
    B, M, S = _requant_arrays(bias, multiplier, shift, W.shape[0])
    cdef pt_requant rq = _requant(B, M, S, clip_min, clip_max)
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], W.shape[0], W.shape[2],
                                        W.shape[3], stride, padding)
    Y = _typed_output(out, (g.n, g.c_out, g.h_out, g.w_out), np.uint8, (X, W, B, M, S))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsb = pt_int8_conv2d_forward_workspace_bytes(&team, &g)
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef const int8_t *pW = <const int8_t *>_vptr(W)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_int8_conv2d_forward(&team, &g, pX, pW, &rq, pY, ws, wsb)
    _check(st, "int8_conv2d_forward")
    return Y


int8_conv2d_forward.__doc__ = """INT8 2-D convolution (groups=1) with requantization to uint8.

    x (N, C_in, H, W) uint8, w (C_out, C_in, kh, kw) int8; stride / padding an int or an (h, w) pair.
    Returns y (N, C_out, H_out, W_out) uint8, H_out = (H + 2*pad_h - kh) // stride_h + 1.
""" + _REQUANT_DOC


def int8_depthwise_conv2d_forward(x, w, bias, multiplier, shift, *, stride=1, padding=0, clip_min=0,
                                  clip_max=255, out=None):
    X = _typed_input(x, "x", np.uint8, 4, "(N, C, H, W)")
    W = _typed_input(w, "w", np.int8, 4, "(C, 1, kh, kw)")
    _depthwise_weight(W.shape[:4], "w", X.shape[1])
    _check_k(W.shape[2] * W.shape[3], "kh * kw")
    B, M, S = _requant_arrays(bias, multiplier, shift, X.shape[1])
    cdef pt_requant rq = _requant(B, M, S, clip_min, clip_max)
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], X.shape[1], W.shape[2],
                                        W.shape[3], stride, padding)
    _int8_depthwise_limits(&g, stride)
    Y = _typed_output(out, (g.n, g.c_out, g.h_out, g.w_out), np.uint8, (X, W, B, M, S))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsb = pt_int8_depthwise_conv2d_forward_workspace_bytes(&team, &g)
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef const int8_t *pW = <const int8_t *>_vptr(W)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_int8_depthwise_conv2d_forward(&team, &g, pX, pW, &rq, pY, ws, wsb)
    _check(st, "int8_depthwise_conv2d_forward")
    return Y


int8_depthwise_conv2d_forward.__doc__ = """INT8 depthwise 2-D convolution (groups=C) with requantization.

    x (N, C, H, W) uint8, w (C, 1, kh, kw) int8. Returns y (N, C, H_out, W_out) uint8.
""" + _REQUANT_DOC


def int8_pointwise_conv2d_forward(x, w, bias, multiplier, shift, *, clip_min=0, clip_max=255, out=None):
    X = _typed_input(x, "x", np.uint8, 4, "(N, C_in, H, W)")
    W = _typed_input(w, "w", np.int8, 4, "(C_out, C_in, 1, 1)")
    _pointwise_weight(W, "w")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (C_out, {X.shape[1]}, 1, 1) to match x {X.shape}, got {W.shape}")
    _check_k(W.shape[1], "C_in")
    B, M, S = _requant_arrays(bias, multiplier, shift, W.shape[0])
    cdef pt_requant rq = _requant(B, M, S, clip_min, clip_max)
    cdef int64_t n = X.shape[0], ci = X.shape[1], co = W.shape[0], hw = X.shape[2] * X.shape[3]
    Y = _typed_output(out, (n, co, X.shape[2], X.shape[3]), np.uint8, (X, W, B, M, S))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsb = pt_int8_pointwise_conv2d_forward_workspace_bytes(&team, n, ci, co, hw)
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef const int8_t *pW = <const int8_t *>_vptr(W)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_int8_pointwise_conv2d_forward(&team, n, ci, co, hw, pX, pW, &rq, pY, ws, wsb)
    _check(st, "int8_pointwise_conv2d_forward")
    return Y


int8_pointwise_conv2d_forward.__doc__ = """INT8 1x1 convolution (stride 1, no padding) with requantization.

    x (N, C_in, H, W) uint8, w (C_out, C_in, 1, 1) int8. Returns y (N, C_out, H, W) uint8.
""" + _REQUANT_DOC


def int8_linear_forward(x, w, bias, multiplier, shift, *, clip_min=0, clip_max=255, out=None):
    X = _typed_input(x, "x", np.uint8, 2, "(N, in_features)")
    W = _typed_input(w, "w", np.int8, 2, "(out_features, in_features)")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (out_features, {X.shape[1]}) to match x {X.shape}, got {W.shape}")
    _check_k(W.shape[1], "in_features")
    B, M, S = _requant_arrays(bias, multiplier, shift, W.shape[0])
    cdef pt_requant rq = _requant(B, M, S, clip_min, clip_max)
    cdef int64_t n = X.shape[0], fi = X.shape[1], fo = W.shape[0]
    Y = _typed_output(out, (n, fo), np.uint8, (X, W, B, M, S))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsb = pt_int8_linear_forward_workspace_bytes(&team, n, fi, fo)
    cdef void *ws = _workspace_bytes(wsb)
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef const int8_t *pW = <const int8_t *>_vptr(W)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_int8_linear_forward(&team, n, fi, fo, pX, pW, &rq, pY, ws, wsb)
    _check(st, "int8_linear_forward")
    return Y


int8_linear_forward.__doc__ = """INT8 fully connected layer with requantization: y = requant(x . w^T).

    x (N, in_features) uint8, w (out_features, in_features) int8. Returns y (N, out_features) uint8.
""" + _REQUANT_DOC


def int8_avg_pool2d(x, kernel_size, *, stride=None, out=None):
    """Average pooling of uint8 codes: y = floor(mean of each kh x kw window + 1/2) (round half up; the
    scale is unchanged). x (N, C, H, W) uint8; kernel_size and stride an int or an (h, w) pair, stride
    defaults to kernel_size; no padding. Returns y (N, C, H_out, W_out) uint8."""
    X = _typed_input(x, "x", np.uint8, 4, "(N, C, H, W)")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], X.shape[1], kh, kw,
                                        kernel_size if stride is None else stride, 0)
    Y = _typed_output(out, (g.n, g.c_out, g.h_out, g.w_out), np.uint8, (X,))
    cdef const uint8_t *pX = <const uint8_t *>_vptr(X)
    cdef uint8_t *pY = <uint8_t *>_vptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_int8_avg_pool2d(&team, &g, pX, pY)
    _check(st, "int8_avg_pool2d")
    return Y


def int8_global_avg_pool2d(x, *, out=None):
    """Global average pooling of uint8 codes (the mean of each H x W plane, rounded half up).
    x (N, C, H, W) uint8. Returns y (N, C, 1, 1) uint8."""
    X = _typed_input(x, "x", np.uint8, 4, "(N, C, H, W)")
    return int8_avg_pool2d(X, (X.shape[2], X.shape[3]), out=out)
