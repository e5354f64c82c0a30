# Latent codes (quantize / dequantize / bit packing) and INT8 inference bindings (included by _C.pyx).
from libc.stdint cimport uint8_t, int8_t, int32_t

cdef extern from "pt_status.h" nogil:
    cdef enum:
        PT_ERR_VALUE_OUT_OF_RANGE

cdef extern from "quant.h" nogil:
    int64_t pt_packed_bytes(int64_t count, int bits)
    pt_status pt_quantize(int64_t count, const float *x, float scale, int bits, uint8_t *codes)
    pt_status pt_dequantize(int64_t count, const uint8_t *codes, float scale, float *x)
    pt_status pt_pack_bits(int64_t count, const uint8_t *codes, int bits, uint8_t *packed)
    pt_status pt_unpack_bits(int64_t count, const uint8_t *packed, int bits, uint8_t *codes)


# ---- validation helpers for non-float32 arrays -----------------------------------------------------------

cdef inline void *_vptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef object _typed_input(object a, str name, object dtype, int ndim, str layout):
    """Like _input, for any dtype; ndim < 0 accepts every number of dimensions."""
    dtype = np.dtype(dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {dtype}, got {type(a).__name__}")
    arr = a
    if arr.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {arr.dtype}")
    if ndim >= 0 and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        arr = np.ascontiguousarray(arr)
    return arr


cdef object _typed_output(object out, tuple shape, object dtype, tuple inputs, bint any_shape=False):
    """Like _output, for any dtype. any_shape: out may have any shape holding prod(shape) elements."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray of {dtype}, got {type(out).__name__}")
    arr = out
    if arr.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {arr.dtype}")
    if any_shape:
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"out must hold {int(np.prod(shape))} elements, got shape {arr.shape}")
    elif arr.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {arr.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        raise ValueError("out must be C-contiguous")
    if not arr.flags.writeable:
        raise ValueError("out must be writeable")
    for a in inputs:
        if a is not None and np.may_share_memory(arr, a):
            raise ValueError("out must not overlap an input array")
    return arr


cdef int _int_arg(object v, str name, int64_t lo, int64_t hi) except? -1:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < lo or v > hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return int(v)


cdef float _scale_arg(object scale) except? -1:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    cdef float s = <float>float(scale)
    if not (s > 0) or s == float("inf"):
        raise ValueError(f"scale must be finite and > 0 (as float32), got {scale!r}")
    return s


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
    with nogil:
        st = pt_quantize(count, px, s, b, pq)
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
    with nogil:
        st = pt_dequantize(count, pq, s, px)
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
    with nogil:
        st = pt_pack_bits(count, pq, b, pp)
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
    with nogil:
        st = pt_unpack_bits(c, pp, b, pq)
    _check(st, "unpack_bits")
    return Q
