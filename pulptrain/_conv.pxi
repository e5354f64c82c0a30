# conv2d and depthwise conv2d bindings (included by _C.pyx).

def conv2d_forward(x, w, bias=None, *, stride=1, padding=0, out=None):
    """2-D convolution, as torch.nn.functional.conv2d (groups=1).

    x (N, C_in, H, W), w (C_out, C_in, kh, kw), bias (C_out,) or None; stride and padding are an int or an
    (h, w) pair. Returns y (N, C_out, H_out, W_out), H_out = (H + 2*pad_h - kh) // stride_h + 1.
    """
    X = _input(x, "x", 4, "(N, C_in, H, W)")
    W = _input(w, "w", 4, "(C_out, C_in, kh, kw)")
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"w must have shape (C_out, {X.shape[1]}, kh, kw) to match x {X.shape}, got {W.shape}")
    B = _bias(bias, "bias", W.shape[0])
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], W.shape[0], W.shape[2],
                                        W.shape[3], stride, padding)
    Y = _output(out, (g.n, g.c_out, g.h_out, g.w_out), (X, W, B))
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_conv2d_forward_workspace_floats(&team, &g)
    cdef float *ws = _workspace(wsf)
    cdef const float *bp = _optr(B)
    cdef float *pX = _ptr(X)
    cdef float *pW = _ptr(W)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    with nogil:
        st = pt_conv2d_forward(&team, &g, pX, pW, bp, pY, ws, wsf)
    _check(st, "conv2d_forward")
    return Y


def conv2d_grad_input(dy, w, input_shape, *, stride=1, padding=0, out=None, accumulate=False):
    """Gradient of conv2d_forward with respect to x, as torch.nn.grad.conv2d_input.

    dy (N, C_out, H_out, W_out), w (C_out, C_in, kh, kw), input_shape = (N, C_in, H, W).
    Returns dx of input_shape (added into out when accumulate=True).
    """
    DY = _input(dy, "dy", 4, "(N, C_out, H_out, W_out)")
    W = _input(w, "w", 4, "(C_out, C_in, kh, kw)")
    n, c_in, h, wd = _shape4(input_shape, "input_shape")
    if W.shape[1] != c_in:
        raise ValueError(f"w must have shape (C_out, {c_in}, kh, kw) to match input_shape, got {W.shape}")
    cdef pt_conv_geometry g = _geometry(n, c_in, h, wd, W.shape[0], W.shape[2], W.shape[3], stride, padding)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DX = _output(out, (g.n, g.c_in, g.h_in, g.w_in), (DY, W), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_conv2d_grad_input_workspace_floats(&team, &g)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pW = _ptr(W)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    with nogil:
        st = pt_conv2d_grad_input(&team, &g, pDY, pW, pDX, acc, ws, wsf)
    _check(st, "conv2d_grad_input")
    return DX


def conv2d_grad_weight(dy, x, weight_shape, *, stride=1, padding=0, out=None, accumulate=False):
    """Gradient of conv2d_forward with respect to w, as torch.nn.grad.conv2d_weight.

    dy (N, C_out, H_out, W_out), x (N, C_in, H, W), weight_shape = (C_out, C_in, kh, kw).
    Returns dw of weight_shape, summed over the batch (added into out when accumulate=True).
    """
    DY = _input(dy, "dy", 4, "(N, C_out, H_out, W_out)")
    X = _input(x, "x", 4, "(N, C_in, H, W)")
    c_out, c_in, kh, kw = _shape4(weight_shape, "weight_shape")
    if c_in != X.shape[1]:
        raise ValueError(f"weight_shape must be (C_out, {X.shape[1]}, kh, kw) to match x {X.shape}, "
                         f"got {tuple(weight_shape)}")
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], c_out, kh, kw,
                                        stride, padding)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DW = _output(out, (c_out, c_in, kh, kw), (DY, X), accumulate)
    cdef pt_team team = pt_team_default()
    cdef int64_t wsf = pt_conv2d_grad_weight_workspace_floats(&team, &g)
    cdef float *ws = _workspace(wsf)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pX = _ptr(X)
    cdef float *pDW = _ptr(DW)
    cdef pt_status st
    with nogil:
        st = pt_conv2d_grad_weight(&team, &g, pDY, pX, pDW, acc, ws, wsf)
    _check(st, "conv2d_grad_weight")
    return DW


def depthwise_tiers():
    """Names of the depthwise tiers in this build, most general first: 'generic', 'plane', and on SIMD hosts
    'channel-blocks' (see set_depthwise_tier)."""
    names = []
    while pt_depthwise_tier_name(len(names)) != NULL:
        names.append(pt_depthwise_tier_name(len(names)).decode())
    return names


def set_depthwise_tier(name):
    """Cap the tier of the depthwise kernels: a tier name from depthwise_tiers() (a shape that tier does not
    support runs the next one down, 'generic' runs every shape) or None for the fastest tier per shape.
    Results agree to float rounding across tiers; within a tier they are bitwise thread-invariant."""
    cdef int tier = PT_DEPTHWISE_AUTO
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        if name not in depthwise_tiers():
            raise ValueError(f"name must be None or one of {depthwise_tiers()}, got {name!r}")
        tier = depthwise_tiers().index(name)
    _check(pt_depthwise_set_default_tier(tier), "set_depthwise_tier")


def get_depthwise_tier():
    """The forced depthwise tier, or None when each shape runs its fastest tier."""
    cdef int tier = pt_depthwise_get_default_tier()
    return None if tier == PT_DEPTHWISE_AUTO else pt_depthwise_tier_name(tier).decode()


cdef int _depthwise_weight(tuple shape, str name, int64_t channels) except -1:
    if shape[0] != channels or shape[1] != 1:
        raise ValueError(f"{name} must have shape ({channels}, 1, kh, kw), got {shape}")
    return 0


def depthwise_conv2d_forward(x, w, bias=None, *, stride=1, padding=0, out=None):
    """Depthwise 2-D convolution, as torch.nn.functional.conv2d(..., groups=C).

    x (N, C, H, W), w (C, 1, kh, kw), bias (C,) or None. Returns y (N, C, H_out, W_out).
    """
    X = _input(x, "x", 4, "(N, C, H, W)")
    W = _input(w, "w", 4, "(C, 1, kh, kw)")
    _depthwise_weight(W.shape[:4], "w", X.shape[1])
    B = _bias(bias, "bias", X.shape[1])
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], X.shape[1], W.shape[2],
                                        W.shape[3], stride, padding)
    Y = _output(out, (g.n, g.c_out, g.h_out, g.w_out), (X, W, B))
    cdef const float *bp = _optr(B)
    cdef float *pX = _ptr(X)
    cdef float *pW = _ptr(W)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_depthwise_conv2d_forward(&team, &g, pX, pW, bp, pY)
    _check(st, "depthwise_conv2d_forward")
    return Y


def depthwise_conv2d_grad_input(dy, w, input_shape, *, stride=1, padding=0, out=None, accumulate=False):
    """Gradient of depthwise_conv2d_forward with respect to x.

    dy (N, C, H_out, W_out), w (C, 1, kh, kw), input_shape = (N, C, H, W). Returns dx of input_shape.
    """
    DY = _input(dy, "dy", 4, "(N, C, H_out, W_out)")
    W = _input(w, "w", 4, "(C, 1, kh, kw)")
    n, c, h, wd = _shape4(input_shape, "input_shape")
    _depthwise_weight(W.shape[:4], "w", c)
    cdef pt_conv_geometry g = _geometry(n, c, h, wd, c, W.shape[2], W.shape[3], stride, padding)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DX = _output(out, (g.n, g.c_in, g.h_in, g.w_in), (DY, W), accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pW = _ptr(W)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_depthwise_conv2d_grad_input(&team, &g, pDY, pW, pDX, acc)
    _check(st, "depthwise_conv2d_grad_input")
    return DX


def depthwise_conv2d_grad_weight(dy, x, weight_shape, *, stride=1, padding=0, out=None, accumulate=False):
    """Gradient of depthwise_conv2d_forward with respect to w.

    dy (N, C, H_out, W_out), x (N, C, H, W), weight_shape = (C, 1, kh, kw). Returns dw of weight_shape.
    """
    DY = _input(dy, "dy", 4, "(N, C, H_out, W_out)")
    X = _input(x, "x", 4, "(N, C, H, W)")
    ws_shape = _shape4(weight_shape, "weight_shape")
    _depthwise_weight(ws_shape, "weight_shape", X.shape[1])
    cdef pt_conv_geometry g = _geometry(X.shape[0], X.shape[1], X.shape[2], X.shape[3], X.shape[1], ws_shape[2],
                                        ws_shape[3], stride, padding)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DW = _output(out, ws_shape, (DY, X), accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pX = _ptr(X)
    cdef float *pDW = _ptr(DW)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_depthwise_conv2d_grad_weight(&team, &g, pDY, pX, pDW, acc)
    _check(st, "depthwise_conv2d_grad_weight")
    return DW
