# pointwise conv2d, linear and bias-gradient bindings (included by _C.pyx).

cdef int _pointwise_weight(object W, str name) except -1:
    if W.shape[2] != 1 or W.shape[3] != 1:
        raise ValueError(f"{name} must have shape (C_out, C_in, 1, 1), got {W.shape}")
    return 0


def pointwise_conv2d_forward(x, w, bias=None, *, out=None):
    """1x1 convolution (stride 1, no padding). x (N, C_in, H, W), w (C_out, C_in, 1, 1), bias (C_out,) or
    None. Returns y (N, C_out, H, W)."""
    X = _input(x, "x", 4, "(N, C_in, H, W)")
    W = _input(w, "w", 4, "(C_out, C_in, 1, 1)")
    _pointwise_weight(W, "w")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (C_out, {X.shape[1]}, 1, 1) to match x {X.shape}, got {W.shape}")
    B = _bias(bias, "bias", W.shape[0])
    cdef int64_t n = X.shape[0], ci = X.shape[1], co = W.shape[0], hw = X.shape[2] * X.shape[3]
    Y = _output(out, (n, co, X.shape[2], X.shape[3]), (X, W, B))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_pointwise_conv2d_forward_workspace_floats(&team, n, ci, co, hw)
    cdef float *ws = _workspace(wsf)
    cdef const float *bp = _optr(B)
    cdef float *pX = _ptr(X)
    cdef float *pW = _ptr(W)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_pointwise_conv2d_forward(&team, n, ci, co, hw, pX, pW, bp, pY, ws, wsf)
    _check(st, "pointwise_conv2d_forward")
    return Y


def pointwise_conv2d_grad_input(dy, w, *, out=None, accumulate=False):
    """Gradient of pointwise_conv2d_forward with respect to x. dy (N, C_out, H, W), w (C_out, C_in, 1, 1).
    Returns dx (N, C_in, H, W)."""
    DY = _input(dy, "dy", 4, "(N, C_out, H, W)")
    W = _input(w, "w", 4, "(C_out, C_in, 1, 1)")
    _pointwise_weight(W, "w")
    if W.shape[0] != DY.shape[1]:
        raise ValueError(f"w must have shape ({DY.shape[1]}, C_in, 1, 1) to match dy {DY.shape}, got {W.shape}")
    cdef int64_t n = DY.shape[0], ci = W.shape[1], co = W.shape[0], hw = DY.shape[2] * DY.shape[3]
    DX = _output(out, (n, ci, DY.shape[2], DY.shape[3]), (DY, W), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_pointwise_conv2d_grad_input_workspace_floats(&team, n, ci, co, hw)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pW = _ptr(W)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    with nogil:
        st = pt_pointwise_conv2d_grad_input(&team, n, ci, co, hw, pDY, pW, pDX, acc, ws, wsf)
    _check(st, "pointwise_conv2d_grad_input")
    return DX


def pointwise_conv2d_grad_weight(dy, x, *, out=None, accumulate=False):
    """Gradient of pointwise_conv2d_forward with respect to w. dy (N, C_out, H, W), x (N, C_in, H, W).
    Returns dw (C_out, C_in, 1, 1), summed over the batch."""
    DY = _input(dy, "dy", 4, "(N, C_out, H, W)")
    X = _input(x, "x", 4, "(N, C_in, H, W)")
    if DY.shape[0] != X.shape[0] or DY.shape[2:4] != X.shape[2:4]:
        raise ValueError(f"dy must have shape ({X.shape[0]}, C_out, {X.shape[2]}, {X.shape[3]}) to match x "
                         f"{X.shape}, got {DY.shape}")
    cdef int64_t n = X.shape[0], ci = X.shape[1], co = DY.shape[1], hw = X.shape[2] * X.shape[3]
    DW = _output(out, (co, ci, 1, 1), (DY, X), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_pointwise_conv2d_grad_weight_workspace_floats(&team, n, ci, co, hw)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pX = _ptr(X)
    cdef float *pDW = _ptr(DW)
    cdef pt_status st
    with nogil:
        st = pt_pointwise_conv2d_grad_weight(&team, n, ci, co, hw, pDY, pX, pDW, acc, ws, wsf)
    _check(st, "pointwise_conv2d_grad_weight")
    return DW


def linear_forward(x, w, bias=None, *, out=None):
    """Fully connected layer, as torch.nn.functional.linear. x (N, in), w (out, in), bias (out,) or None.
    Returns y (N, out) = x @ w.T + bias."""
    X = _input(x, "x", 2, "(N, in_features)")
    W = _input(w, "w", 2, "(out_features, in_features)")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (out_features, {X.shape[1]}) to match x {X.shape}, got {W.shape}")
    B = _bias(bias, "bias", W.shape[0])
    cdef int64_t n = X.shape[0], fi = X.shape[1], fo = W.shape[0]
    Y = _output(out, (n, fo), (X, W, B))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_linear_forward_workspace_floats(&team, n, fi, fo)
    cdef float *ws = _workspace(wsf)
    cdef const float *bp = _optr(B)
    cdef float *pX = _ptr(X)
    cdef float *pW = _ptr(W)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_linear_forward(&team, n, fi, fo, pX, pW, bp, pY, ws, wsf)
    _check(st, "linear_forward")
    return Y


def linear_grad_input(dy, w, *, out=None, accumulate=False):
    """Gradient of linear_forward with respect to x. dy (N, out), w (out, in). Returns dx (N, in) = dy @ w."""
    DY = _input(dy, "dy", 2, "(N, out_features)")
    W = _input(w, "w", 2, "(out_features, in_features)")
    if W.shape[0] != DY.shape[1]:
        raise ValueError(f"w must have shape ({DY.shape[1]}, in_features) to match dy {DY.shape}, got {W.shape}")
    cdef int64_t n = DY.shape[0], fi = W.shape[1], fo = W.shape[0]
    DX = _output(out, (n, fi), (DY, W), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_linear_grad_input_workspace_floats(&team, n, fi, fo)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pW = _ptr(W)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    with nogil:
        st = pt_linear_grad_input(&team, n, fi, fo, pDY, pW, pDX, acc, ws, wsf)
    _check(st, "linear_grad_input")
    return DX


def linear_grad_weight(dy, x, *, out=None, accumulate=False):
    """Gradient of linear_forward with respect to w. dy (N, out), x (N, in). Returns dw (out, in) = dy.T @ x."""
    DY = _input(dy, "dy", 2, "(N, out_features)")
    X = _input(x, "x", 2, "(N, in_features)")
    if DY.shape[0] != X.shape[0]:
        raise ValueError(f"dy must have shape ({X.shape[0]}, out_features) to match x {X.shape}, got {DY.shape}")
    cdef int64_t n = X.shape[0], fi = X.shape[1], fo = DY.shape[1]
    DW = _output(out, (fo, fi), (DY, X), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_linear_grad_weight_workspace_floats(&team, n, fi, fo)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pX = _ptr(X)
    cdef float *pDW = _ptr(DW)
    cdef pt_status st
    with nogil:
        st = pt_linear_grad_weight(&team, n, fi, fo, pDY, pX, pDW, acc, ws, wsf)
    _check(st, "linear_grad_weight")
    return DW


def bias_grad(dy, *, out=None, accumulate=False):
    """Bias gradient: dy (N, C, ...) summed over every axis but 1. Returns db (C,)."""
    if not isinstance(dy, np.ndarray):
        raise TypeError(f"dy must be a numpy.ndarray of float32, got {type(dy).__name__}")
    if dy.ndim < 2:
        raise ValueError(f"dy must have at least 2 dimensions (N, C, ...), got shape {dy.shape}")
    DY = _input(dy, "dy", dy.ndim, "(N, C, ...)")
    cdef int64_t n = DY.shape[0], c = DY.shape[1]
    cdef int64_t inner = DY.size // (n * c) if n * c > 0 else 0
    if n < 1 or c < 1 or inner < 1:
        raise ValueError(f"dy must have every size >= 1, got shape {DY.shape}")
    DB = _output(out, (c,), (DY,), accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pDB = _ptr(DB)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_bias_grad(&team, n, c, inner, pDY, pDB, acc)
    _check(st, "bias_grad")
    return DB
