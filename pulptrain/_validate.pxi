# Argument validation and pointer helpers shared by every binding (included first by _C.pyx): each checks one
# argument and raises TypeError / ValueError naming it, before anything is allocated or any kernel runs.

# ---- validation helpers ---------------------------------------------------------------------------------

cdef inline float *_ptr(object a):
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline const float *_optr(object a):
    if a is None:
        return NULL
    return <const float *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef object _typed_input(object a, str name, object dtype, int ndim, str layout):
    """An input array of `dtype` and `ndim` dimensions (ndim < 0: any), C-contiguous (copied if not)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {np.dtype(dtype)}, got {type(a).__name__}")
    arr = a
    if arr.dtype is not dtype and arr.dtype != dtype:
        if arr.dtype.newbyteorder("=") != dtype:
            raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
        arr = arr.astype(dtype)  # the same type in the other byte order: read through a native copy
    if ndim >= 0 and cnp.PyArray_NDIM(<cnp.ndarray>arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {arr.shape}")
    if cnp.PyArray_SIZE(<cnp.ndarray>arr) == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        arr = np.ascontiguousarray(arr)
    return arr


cdef int _written_dtype(object arr, str name, object dtype) except -1:
    """An array the kernel writes must have exactly `dtype`, in native byte order (no copy is made)."""
    if arr.dtype is not dtype and arr.dtype != dtype:
        if arr.dtype.newbyteorder("=") == dtype:
            raise TypeError(f"{name} must have dtype {np.dtype(dtype)} in native byte order (it is written in "
                            f"place), got {arr.dtype.str}")
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
    return 0


cdef object _typed_output(object out, tuple shape, object dtype, tuple inputs, bint any_shape=False,
                          str name="out"):
    """The result array: a new one, or `out` checked (dtype and native byte order, shape, C order,
    writeable, no overlap with an input). any_shape: out may have any shape holding prod(shape) elements.
    name: the argument that passed `out`, for error messages."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {np.dtype(dtype)}, got {type(out).__name__}")
    arr = out
    _written_dtype(arr, name, dtype)
    if any_shape:
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{name} must hold {int(np.prod(shape))} elements, got shape {arr.shape}")
    elif arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        raise ValueError(f"{name} must be C-contiguous")
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>arr):
        raise ValueError(f"{name} must be writeable")
    for a in inputs:
        if a is not None and _may_overlap(arr, a):
            raise ValueError(f"{name} must not overlap an input array")
    return arr


cdef bint _may_overlap(object a, object b):
    """Whether the byte ranges spanned by two arrays intersect (the bounds test of np.may_share_memory,
    without its per-call overhead of about a microsecond)."""
    cdef char *a_lo
    cdef char *a_hi
    cdef char *b_lo
    cdef char *b_hi
    _byte_extent(<cnp.ndarray>a, &a_lo, &a_hi)
    _byte_extent(<cnp.ndarray>b, &b_lo, &b_hi)
    return a_lo < b_hi and b_lo < a_hi


cdef void _byte_extent(cnp.ndarray a, char **lo, char **hi):
    """[lo, hi): the bytes an array's elements can touch, for any strides (negative ones included)."""
    cdef char *start = <char *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t low = 0, high = cnp.PyArray_ITEMSIZE(a), step
    cdef int d
    if cnp.PyArray_SIZE(a) == 0:
        lo[0] = hi[0] = start
        return
    for d in range(cnp.PyArray_NDIM(a)):
        step = cnp.PyArray_STRIDE(a, d) * (cnp.PyArray_DIM(a, d) - 1)
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = start + low
    hi[0] = start + high


cdef inline object _input(object a, str name, int ndim, str layout):
    return _typed_input(a, name, _F32, ndim, layout)


cdef object _bias(object b, str name, int64_t channels):
    if b is None:
        return None
    arr = _input(b, name, 1, f"({channels},)")
    if arr.shape[0] != channels:
        raise ValueError(f"{name} must have shape ({channels},), got {arr.shape}")
    return arr


cdef inline object _output(object out, tuple shape, tuple inputs, bint required=False, str name="out"):
    if out is None and required:
        raise ValueError(f"accumulate=True needs {name}= (the array to add into)")
    return _typed_output(out, shape, _F32, inputs, False, name)


cdef float *_workspace(int64_t floats) except? NULL:
    """Per-thread scratch buffer, grown on demand and reused (no allocation on the hot path)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape[0] < floats:
        buf = np.empty(max(floats, 1), dtype=np.float32)
        _local.buf = buf
    return _ptr(buf)


cdef int _check(pt_status st, str what) except -1:
    if st != PT_OK:
        _local.buf = None  # a failed call keeps no scratch buffer (it may have been grown for it)
        raise RuntimeError(f"{what} failed in C: {pt_status_str(st).decode()}")
    return 0


cdef inline bint _is_int(object v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


cdef int64_t _int_arg(object v, str name, int64_t lo, int64_t hi) except? -1:
    """An int argument checked against [lo, hi] (as a Python int, so any size gets the message)."""
    if not _is_int(v):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < lo or v > hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return int(v)


cdef tuple _pair(object v, str name, int64_t minimum, int64_t maximum=PT_CONV_MAX_EXTENT):
    """An int or a pair of ints, each in [minimum, maximum]; returns the pair as Python ints."""
    if _is_int(v):
        a = b = int(v)
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v):
        a, b = int(v[0]), int(v[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if a < minimum or b < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    if a > maximum or b > maximum:
        raise ValueError(f"{name} must be >= {minimum} and <= {maximum}, got {v!r}")
    return a, b


cdef tuple _shape4(object s, str name):
    if not isinstance(s, (tuple, list)) or len(s) != 4 or not all(_is_int(e) for e in s):
        raise TypeError(f"{name} must be a tuple of 4 ints, got {s!r}")
    t = tuple(int(e) for e in s)
    if min(t) < 1:
        raise ValueError(f"{name} must have every size >= 1, got {t}")
    if max(t) > PT_CONV_MAX_EXTENT:
        raise ValueError(f"{name} must have every size <= {PT_CONV_MAX_EXTENT}, got {t}")
    if t[0] * t[1] * t[2] * t[3] > PT_CONV_MAX_ELEMENTS:
        raise ValueError(f"{name} must describe at most 2**60 elements, got {t}")
    return t


cdef pt_conv_geometry _geometry(object n, object c_in, object h, object w, object c_out, object kh, object kw,
                                object stride, object padding) except *:
    """The checked geometry of a convolution or pooling: every bound of pt_conv_geometry_init is tested here
    first (on Python ints, so nothing overflows) to name the argument at fault."""
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    sizes = (n, c_in, h, w, c_out, kh, kw)
    if max(sizes) > PT_CONV_MAX_EXTENT:
        raise ValueError(f"every array size must be <= {PT_CONV_MAX_EXTENT}, got input (N, C_in, H, W) = "
                         f"{(n, c_in, h, w)}, C_out = {c_out}, kernel {kh}x{kw}")
    h_pad, w_pad = h + 2 * ph, w + 2 * pw
    if h_pad < kh or w_pad < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {h_pad}x{w_pad}: "
                         f"the output size would be <= 0")
    h_out, w_out = (h_pad - kh) // sh + 1, (w_pad - kw) // sw + 1
    for what, count in (("the output (N, C_out, H_out, W_out)", n * c_out * h_out * w_out),
                        ("the padded input plane (H + 2*pad_h) x (W + 2*pad_w)", h_pad * w_pad),
                        ("the patch matrix (C_in*kh*kw) x (H_out*W_out)", c_in * kh * kw * h_out * w_out),
                        ("the weight (C_out, C_in, kh, kw)", c_out * c_in * kh * kw),
                        ("the input (N, C_in, H, W)", n * c_in * h * w)):
        if count > PT_CONV_MAX_ELEMENTS:
            raise ValueError(f"{what} would hold {count} elements, more than 2**60: the sizes, padding "
                             f"{padding!r} or stride {stride!r} are too large")
    cdef pt_conv_geometry g
    _check(pt_conv_geometry_init(&g, n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw), "conv geometry")
    return g


cdef int _expect_shape(object a, str name, tuple shape) except -1:
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return 0


# ---- arrays updated in place, real-valued arguments -----------------------------------------------------

cdef inline float *_optr_mut(object a):
    return NULL if a is None else <float *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef object _state(object a, str name, tuple shape):
    """An array the kernel updates in place: float32 in native byte order, C-contiguous, writeable, exactly
    `shape` (no copy)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(a).__name__}")
    _written_dtype(a, name, _F32)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{name} must be C-contiguous and writeable (it is updated in place)")
    return a


cdef int _no_overlap(tuple arrays, tuple names) except -1:
    cdef int i, j
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            if arrays[i] is not None and arrays[j] is not None and _may_overlap(arrays[i], arrays[j]):
                raise ValueError(f"{names[i]} and {names[j]} must not overlap")
    return 0


cdef float _real(object v, str name, double low, double high, bint low_open=False) except? -1:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    cdef double d = float(v)
    if not (d >= low and d <= high) or (low_open and d == low):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}], got {v!r}")
    return <float>d


cdef float _upper(object upper) except? -2:
    if upper is None:
        return PT_RELU_NO_CLIP
    return _real(upper, "upper", 0.0, 3.0e38, True)


# ---- non-float32 arrays, scales -------------------------------------------------------------------------

cdef inline void *_vptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef float _scale_arg(object scale) except? -1:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    cdef float s = <float>float(scale)
    if not (s > 0) or s == float("inf"):
        raise ValueError(f"scale must be finite and > 0 (as float32), got {scale!r}")
    return s
