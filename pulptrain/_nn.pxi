# Activation, pooling, BatchNorm, loss and optimizer bindings (included by _C.pyx).

# ---- ReLU / ReLU6 ---------------------------------------------------------------------------------------

def relu_forward(x, *, upper=None, out=None):
    """ReLU (upper=None) or clipped ReLU y = min(max(x, 0), upper) (upper=6.0 gives ReLU6), elementwise on
    a float32 array of any shape. Returns y of x's shape."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray of float32, got {type(x).__name__}")
    X = _input(x, "x", x.ndim, "array")
    cdef float up = _upper(upper)
    Y = _output(out, X.shape, (X,))
    cdef int64_t count = X.size
    cdef float *pX = _ptr(X)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_relu_forward(&team, count, pX, pY, up)
    _check(st, "relu_forward")
    return Y


def relu_grad_input(y, dy, *, upper=None, out=None, accumulate=False):
    """Gradient of relu_forward: dx = dy where 0 < y < upper (y = the forward *output*), else 0."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y must be a numpy.ndarray of float32, got {type(y).__name__}")
    Y = _input(y, "y", y.ndim, "array")
    DY = _input(dy, "dy", Y.ndim, f"array of shape {Y.shape}")
    _expect_shape(DY, "dy", Y.shape)
    cdef float up = _upper(upper)
    DX = _output(out, Y.shape, (Y, DY), accumulate)
    cdef int64_t count = Y.size
    cdef int acc = 1 if accumulate else 0
    cdef float *pY = _ptr(Y)
    cdef float *pDY = _ptr(DY)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_relu_grad_input(&team, count, pY, pDY, pDX, up, acc)
    _check(st, "relu_grad_input")
    return DX


# ---- pooling --------------------------------------------------------------------------------------------

cdef pt_conv_geometry _pool_geometry(tuple input_shape, object kernel_size, object stride,
                                     object padding) except *:
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    if stride is None:
        stride = (kh, kw)
    n, c, h, w = input_shape
    return _geometry(n, c, h, w, c, kh, kw, stride, padding)


def avg_pool2d_forward(x, kernel_size, *, stride=None, padding=0, out=None):
    """Average pooling, as torch.nn.functional.avg_pool2d (count_include_pad=True). x (N, C, H, W);
    kernel_size, stride (default: kernel_size) and padding (at most kernel_size / 2) are an int or an (h, w)
    pair.
    Returns y (N, C, H_out, W_out)."""
    X = _input(x, "x", 4, "(N, C, H, W)")
    cdef pt_conv_geometry g = _pool_geometry(X.shape, kernel_size, stride, padding)
    _pool_padding(&g)
    Y = _output(out, (g.n, g.c_out, g.h_out, g.w_out), (X,))
    cdef float *pX = _ptr(X)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_avg_pool2d_forward(&team, &g, pX, pY)
    _check(st, "avg_pool2d_forward")
    return Y


def avg_pool2d_grad_input(dy, input_shape, kernel_size, *, stride=None, padding=0, out=None, accumulate=False):
    """Gradient of avg_pool2d_forward. dy (N, C, H_out, W_out), input_shape = (N, C, H, W).
    Returns dx of input_shape."""
    DY = _input(dy, "dy", 4, "(N, C, H_out, W_out)")
    cdef pt_conv_geometry g = _pool_geometry(_shape4(input_shape, "input_shape"), kernel_size, stride, padding)
    _pool_padding(&g)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DX = _output(out, (g.n, g.c_in, g.h_in, g.w_in), (DY,), accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_avg_pool2d_grad_input(&team, &g, pDY, pDX, acc)
    _check(st, "avg_pool2d_grad_input")
    return DX


def global_avg_pool2d_forward(x, *, out=None):
    """Global average pooling: y[n, c, 0, 0] = mean of x[n, c]. x (N, C, H, W); returns y (N, C, 1, 1)."""
    X = _input(x, "x", 4, "(N, C, H, W)")
    return avg_pool2d_forward(X, (X.shape[2], X.shape[3]), out=out)


def global_avg_pool2d_grad_input(dy, input_shape, *, out=None, accumulate=False):
    """Gradient of global_avg_pool2d_forward. dy (N, C, 1, 1); returns dx of input_shape (N, C, H, W)."""
    shape = _shape4(input_shape, "input_shape")
    return avg_pool2d_grad_input(dy, shape, (shape[2], shape[3]), out=out, accumulate=accumulate)


cdef int _pool_padding(pt_conv_geometry *g) except -1:
    """PyTorch's limit for average and max pooling: padding at most half the kernel size."""
    if 2 * g.pad_h > g.kh or 2 * g.pad_w > g.kw:
        raise ValueError(f"padding must be at most half the kernel size, got padding ({g.pad_h}, {g.pad_w}) "
                         f"for kernel ({g.kh}, {g.kw})")
    return 0


def max_pool2d_forward(x, kernel_size, *, stride=None, padding=0, out=None):
    """Max pooling, as torch.nn.functional.max_pool2d (dilation 1, padding <= kernel_size / 2).
    x (N, C, H, W); returns y (N, C, H_out, W_out)."""
    X = _input(x, "x", 4, "(N, C, H, W)")
    cdef pt_conv_geometry g = _pool_geometry(X.shape, kernel_size, stride, padding)
    _pool_padding(&g)
    Y = _output(out, (g.n, g.c_out, g.h_out, g.w_out), (X,))
    cdef float *pX = _ptr(X)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_max_pool2d_forward(&team, &g, pX, pY)
    _check(st, "max_pool2d_forward")
    return Y


def max_pool2d_grad_input(dy, x, kernel_size, *, stride=None, padding=0, out=None, accumulate=False):
    """Gradient of max_pool2d_forward: each dy goes to its window's first maximum in x (the forward input).
    dy (N, C, H_out, W_out), x (N, C, H, W); returns dx of x's shape."""
    DY = _input(dy, "dy", 4, "(N, C, H_out, W_out)")
    X = _input(x, "x", 4, "(N, C, H, W)")
    cdef pt_conv_geometry g = _pool_geometry(X.shape, kernel_size, stride, padding)
    _pool_padding(&g)
    _expect_shape(DY, "dy", (g.n, g.c_out, g.h_out, g.w_out))
    DX = _output(out, X.shape, (DY, X), accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef float *pDY = _ptr(DY)
    cdef float *pX = _ptr(X)
    cdef float *pDX = _ptr(DX)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_max_pool2d_grad_input(&team, &g, pDY, pX, pDX, acc)
    _check(st, "max_pool2d_grad_input")
    return DX


# ---- BatchNorm2d ----------------------------------------------------------------------------------------

def batchnorm2d_forward_train(x, gamma, beta, running_mean, running_var, *, eps=1e-5, momentum=0.1,
                              r_max=None, d_max=None, out=None, saved=None):
    """BatchNorm2d in training mode (batch statistics), as torch.nn.functional.batch_norm(training=True).

    x (N, C, H, W); gamma, beta (C,); running_mean and running_var (C,) are updated in place
    (momentum in [0, 1], unbiased batch variance). r_max (>= 1) and d_max (>= 0) together turn on Batch
    Renormalization. Returns (y, saved): y of x's shape and saved (4, C) = the batch mean, 1/sigma, r and
    d that batchnorm2d_backward needs.
    """
    X = _input(x, "x", 4, "(N, C, H, W)")
    cdef int64_t n = X.shape[0], c = X.shape[1], hw = X.shape[2] * X.shape[3]
    if n * hw < 2:
        raise ValueError(f"x must have more than 1 value per channel when training (N * H * W >= 2), got shape "
                         f"{X.shape}")
    G = _bias(gamma, "gamma", c)
    B = _bias(beta, "beta", c)
    RM = _state(running_mean, "running_mean", (c,))
    RV = _state(running_var, "running_var", (c,))
    cdef pt_batchnorm_config cfg
    cfg.eps = _real(eps, "eps", 0.0, 1.0, True)
    cfg.momentum = _real(momentum, "momentum", 0.0, 1.0)
    if (r_max is None) != (d_max is None):
        raise ValueError("r_max and d_max must be given together (Batch Renormalization) or both be None")
    cfg.r_max = 0.0 if r_max is None else _real(r_max, "r_max", 1.0, 3.0e38)
    cfg.d_max = 0.0 if d_max is None else _real(d_max, "d_max", 0.0, 3.0e38)
    Y = _output(out, X.shape, (X, G, B, RM, RV))
    S = _output(saved, (4, c), (X, G, B, RM, RV, Y), False, "saved")
    _no_overlap((RM, RV, X, G, B), ("running_mean", "running_var", "x", "gamma", "beta"))
    cdef float *pX = _ptr(X)
    cdef float *pG = _ptr(G)
    cdef float *pB = _ptr(B)
    cdef float *pRM = _ptr(RM)
    cdef float *pRV = _ptr(RV)
    cdef float *pS = _ptr(S)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_batchnorm2d_forward_train(&team, n, c, hw, pX, pG, pB, &cfg, pRM, pRV, pS, pY)
    _check(st, "batchnorm2d_forward_train")
    return Y, S


def batchnorm2d_forward_eval(x, gamma, beta, running_mean, running_var, *, eps=1e-5, out=None, saved=None):
    """BatchNorm2d in evaluation mode: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
    x (N, C, H, W), the others (C,). Returns (y, saved) with saved (4, C) for batchnorm2d_backward
    (batch_stats=False)."""
    X = _input(x, "x", 4, "(N, C, H, W)")
    cdef int64_t n = X.shape[0], c = X.shape[1], hw = X.shape[2] * X.shape[3]
    G = _bias(gamma, "gamma", c)
    B = _bias(beta, "beta", c)
    RM = _bias(running_mean, "running_mean", c)
    RV = _bias(running_var, "running_var", c)
    cdef float e = _real(eps, "eps", 0.0, 1.0, True)
    Y = _output(out, X.shape, (X, G, B, RM, RV))
    S = _output(saved, (4, c), (X, G, B, RM, RV, Y), False, "saved")
    cdef float *pX = _ptr(X)
    cdef float *pG = _ptr(G)
    cdef float *pB = _ptr(B)
    cdef float *pRM = _ptr(RM)
    cdef float *pRV = _ptr(RV)
    cdef float *pS = _ptr(S)
    cdef float *pY = _ptr(Y)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_batchnorm2d_forward_eval(&team, n, c, hw, pX, pG, pB, e, pRM, pRV, pS, pY)
    _check(st, "batchnorm2d_forward_eval")
    return Y, S


def batchnorm2d_backward(dy, x, gamma, saved, *, batch_stats=True, input_grad=True, out=None,
                         dgamma_out=None, dbeta_out=None, accumulate_params=False):
    """Backward of BatchNorm2d. dy, x (N, C, H, W) (x = the forward input), gamma (C,), saved (4, C) from the
    forward. batch_stats=True differentiates the training forward, False the evaluation forward (fixed
    statistics). Returns (dx or None when input_grad=False, dgamma (C,), dbeta (C,)); dgamma and dbeta are
    added into dgamma_out / dbeta_out when accumulate_params=True."""
    X = _input(x, "x", 4, "(N, C, H, W)")
    DY = _input(dy, "dy", 4, "(N, C, H, W)")
    _expect_shape(DY, "dy", X.shape)
    cdef int64_t n = X.shape[0], c = X.shape[1], hw = X.shape[2] * X.shape[3]
    G = _bias(gamma, "gamma", c)
    S = _input(saved, "saved", 2, f"(4, {c})")
    _expect_shape(S, "saved", (4, c))
    DX = _output(out, X.shape, (X, DY, G, S)) if input_grad else None
    DG = _output(dgamma_out, (c,), (X, DY, G, S, DX), accumulate_params, "dgamma_out")
    DB = _output(dbeta_out, (c,), (X, DY, G, S, DX, DG), accumulate_params, "dbeta_out")
    cdef int bs = 1 if batch_stats else 0
    cdef int acc = 1 if accumulate_params else 0
    cdef float *pX = _ptr(X)
    cdef float *pDY = _ptr(DY)
    cdef float *pG = _ptr(G)
    cdef float *pS = _ptr(S)
    cdef float *pDX = _optr_mut(DX)
    cdef float *pDG = _ptr(DG)
    cdef float *pDB = _ptr(DB)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_batchnorm2d_backward(&team, n, c, hw, pX, pDY, pG, pS, bs, pDX, pDG, pDB, acc)
    _check(st, "batchnorm2d_backward")
    return DX, DG, DB


# ---- losses ---------------------------------------------------------------------------------------------

def cross_entropy(logits, labels, *, grad=True, out=None):
    """Softmax cross-entropy, mean over the batch (torch.nn.functional.cross_entropy).
    logits (N, K) float32, labels (N,) integers in [0, K). Returns (loss as a Python float, dlogits (N, K)
    or None when grad=False)."""
    Z = _input(logits, "logits", 2, "(N, K)")
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be a numpy.ndarray of integers, got "
                        f"{labels.dtype if isinstance(labels, np.ndarray) else type(labels).__name__}")
    cdef int64_t n = Z.shape[0], k = Z.shape[1]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match logits {Z.shape}, got {labels.shape}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be in [0, {k}), got values in [{labels.min()}, {labels.max()}]")
    L = np.ascontiguousarray(labels, dtype=np.int64)
    DZ = _output(out, (n, k), (Z,)) if grad else None
    cdef int64_t wsf = pt_cross_entropy_workspace_floats(n)
    cdef float *ws = _workspace(wsf)
    cdef float loss = 0.0
    cdef float *pZ = _ptr(Z)
    cdef const int64_t *pL = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>L)
    cdef float *pDZ = _optr_mut(DZ)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_cross_entropy(&team, n, k, pZ, pL, &loss, pDZ, ws, wsf)
    _check(st, "cross_entropy")
    return float(loss), DZ


def mse_loss(pred, target, *, grad=True, out=None):
    """Mean squared error, mean over every element (torch.nn.functional.mse_loss). pred and target float32
    of the same shape. Returns (loss as a Python float, dpred of pred's shape or None when grad=False)."""
    if not isinstance(pred, np.ndarray):
        raise TypeError(f"pred must be a numpy.ndarray of float32, got {type(pred).__name__}")
    P = _input(pred, "pred", pred.ndim, "array")
    T = _input(target, "target", P.ndim, f"array of shape {P.shape}")
    _expect_shape(T, "target", P.shape)
    DP = _output(out, P.shape, (P, T)) if grad else None
    cdef int64_t count = P.size
    cdef int64_t wsf = pt_mse_loss_workspace_floats(count)
    cdef float *ws = _workspace(wsf)
    cdef float loss = 0.0
    cdef float *pP = _ptr(P)
    cdef float *pT = _ptr(T)
    cdef float *pDP = _optr_mut(DP)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_mse_loss(&team, count, pP, pT, &loss, pDP, ws, wsf)
    _check(st, "mse_loss")
    return float(loss), DP


# ---- optimizers -----------------------------------------------------------------------------------------

def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False, first_step=False):
    """One SGD update of param in place (torch.optim.SGD semantics). param, grad and momentum_buffer
    (needed when momentum > 0, updated in place) have the same shape; first_step=True initialises the
    buffer with the gradient, as PyTorch does on its first step."""
    P = _state(param, "param", param.shape if isinstance(param, np.ndarray) else ())
    G = _input(grad, "grad", P.ndim, f"array of shape {P.shape}")
    _expect_shape(G, "grad", P.shape)
    cdef pt_sgd_config cfg
    cfg.lr = _real(lr, "lr", 0.0, 3.0e38)
    cfg.momentum = _real(momentum, "momentum", 0.0, 3.0e38)
    cfg.dampening = _real(dampening, "dampening", 0.0, 1.0)
    cfg.weight_decay = _real(weight_decay, "weight_decay", 0.0, 3.0e38)
    cfg.nesterov = 1 if nesterov else 0
    if nesterov and (cfg.momentum == 0.0 or cfg.dampening != 0.0):
        raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
    M = None
    if cfg.momentum != 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum > 0 needs momentum_buffer (an array of param's shape)")
        M = _state(momentum_buffer, "momentum_buffer", P.shape)
    _no_overlap((P, G, M), ("param", "grad", "momentum_buffer"))
    cdef int64_t count = P.size
    cdef int first = 1 if first_step else 0
    cdef float *pP = _ptr(P)
    cdef float *pG = _ptr(G)
    cdef float *pM = _optr_mut(M)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_sgd_step(&team, count, pP, pG, pM, &cfg, first)
    _check(st, "sgd_step")


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=False):
    """One Adam update of param in place (torch.optim.Adam semantics; AdamW when decoupled=True).
    exp_avg and exp_avg_sq (param's shape, zero before the first step) are updated in place; step >= 1
    counts the updates so far including this one."""
    P = _state(param, "param", param.shape if isinstance(param, np.ndarray) else ())
    G = _input(grad, "grad", P.ndim, f"array of shape {P.shape}")
    _expect_shape(G, "grad", P.shape)
    M = _state(exp_avg, "exp_avg", P.shape)
    V = _state(exp_avg_sq, "exp_avg_sq", P.shape)
    _no_overlap((P, G, M, V), ("param", "grad", "exp_avg", "exp_avg_sq"))
    if not _is_int(step) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    if step > 2 ** 63 - 1:
        raise ValueError(f"step must be an int in [1, 2**63 - 1], got {step!r}")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair of floats, got {betas!r}")
    cdef pt_adam_config cfg
    cfg.lr = _real(lr, "lr", 0.0, 3.0e38)
    cfg.beta1 = _real(betas[0], "betas[0]", 0.0, 0.9999999)
    cfg.beta2 = _real(betas[1], "betas[1]", 0.0, 0.9999999)
    cfg.eps = _real(eps, "eps", 0.0, 3.0e38, True)
    cfg.weight_decay = _real(weight_decay, "weight_decay", 0.0, 3.0e38)
    cfg.decoupled = 1 if decoupled else 0
    cdef int64_t count = P.size, t = step
    cdef float *pP = _ptr(P)
    cdef float *pG = _ptr(G)
    cdef float *pM = _ptr(M)
    cdef float *pV = _ptr(V)
    cdef pt_status st
    cdef pt_team team = pt_team_default()
    with nogil:
        st = pt_adam_step(&team, count, pP, pG, pM, pV, &cfg, t)
    _check(st, "adam_step")
