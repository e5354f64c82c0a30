"""Every kernel operation of pulptrain, named once.

One row of ``OPS`` per operation: its canonical name, its C entry point and C file, the Cython file that
binds it, the Python function in ``pulptrain.kernels`` / ``pulptrain.quant``, how to call it (``run``) on
example arguments built for a size spec (``example``), its float64 reference in ``pulptrain.reference`` when
there is one, its tier (the kernels it can run on: matmul variants or INT8 microkernels), its C operands in
the order of the C signature, and its test file. Everything else looks ops up here by name:

- ``tools/riscv/gen_golden.py``  golden data for every row (``make -C tools/riscv test`` runs them on rv32/rv64);
- ``tools/riscv/kernel_step.c``  the C call of every row, in a table keyed by the same names (a test checks it);
- ``tests/test_threads.py``      thread invariance of every row; ``pulptrain/selfcheck.py`` and
  ``benchmarks/cases.py``        call the layer ops through ``run``.

A size spec is a dict whose keys are the fields of the RISC-V driver's ``rv_kernel_step`` (``batch``, ``c_in``,
``h``, ``w``, ``c_out``, ``kh``, ``kw``, ``stride_h``, ``stride_w``, ``pad_h``, ``pad_w``, ``m``, ``n``, ``k``,
``count``, ``bits``, ``scale``); ``example(rng, size)`` returns ``(arrays, params)``: named numpy arrays and
the keyword arguments of the Python function; ``run(arrays, params)`` calls it and returns the named results
(arrays updated in place, such as an optimizer's parameters, are results too).

    python -m pulptrain.ops               # the table
    python -m pulptrain.ops conv2d.forward   # where one op lives: C, binding, test, benchmark
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from pulptrain import kernels as K
from pulptrain import quant as Q
from pulptrain import reference as R


@dataclass(frozen=True)
class Op:
    name: str  # canonical name: "<family>.<step>" or one word for single-step ops
    c_entry: str  # C function (csrc/core/pulptrain.h)
    c_file: str  # the C file that implements it, under csrc/
    binding: str  # the Cython file that binds it, under pulptrain/
    function: Callable  # the Python function
    example: Callable  # (rng, size) -> (arrays, params)
    run: Callable  # (arrays, params) -> {result name: array}
    c_args: tuple  # C operands in signature order: (name, "in" | "out" | "inout")
    test: str  # the test file of its Python binding, under tests/
    sizes: tuple = ()  # small size specs with several work units (thread-invariance test)
    reference: Optional[Callable] = None  # float64 (arrays, params) -> {result name: array}
    tier: Optional[str] = None  # "matmul": every matmul variant; "int8_gemm": every INT8 microkernel;
    # "depthwise": every depthwise tier
    notes: str = field(default="", compare=False)


def tiers(op):
    """The kernel variants op runs on: matmul variant names, INT8 microkernel names, depthwise tier names, or
    (None,)."""
    if op.tier == "matmul":
        return tuple(K.matmul_variants())
    if op.tier == "int8_gemm":
        return tuple(Q.int8_microkernels())
    if op.tier == "depthwise":
        return tuple(K.depthwise_tiers())
    return (None,)


def use_tier(op, variant):
    """Select a variant of op's tier (None: the automatic choice)."""
    if op.tier == "matmul":
        K.set_matmul_variant(variant)
    elif op.tier == "int8_gemm":
        Q.set_int8_microkernel(variant or "auto")
    elif op.tier == "depthwise":
        K.set_depthwise_tier(variant)


# ---- example arguments -----------------------------------------------------------------------------------


def _f32(rng, *shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


def _geometry(size):
    return dict(stride=(size["stride_h"], size["stride_w"]), padding=(size["pad_h"], size["pad_w"]))


def _out_hw(size):
    return (
        (size["h"] + 2 * size["pad_h"] - size["kh"]) // size["stride_h"] + 1,
        (size["w"] + 2 * size["pad_w"] - size["kw"]) // size["stride_w"] + 1,
    )


def _x_shape(size):
    return (size["batch"], size["c_in"], size["h"], size["w"])


def _conv_example(depthwise):
    def example(rng, size):
        n, ci = size["batch"], size["c_in"]
        co = ci if depthwise else size["c_out"]
        ho, wo = _out_hw(size)
        arrays = dict(
            x=_f32(rng, *_x_shape(size)),
            w=_f32(rng, co, 1 if depthwise else ci, size["kh"], size["kw"]),
            bias=_f32(rng, co),
            dy=_f32(rng, n, co, ho, wo),
        )
        return arrays, _geometry(size)

    return example


def _dense_example(pointwise):
    def example(rng, size):
        n, ci, co = size["batch"], size["c_in"], size["c_out"]
        px = (size["h"], size["w"]) if pointwise else ()
        arrays = dict(
            x=_f32(rng, n, ci, *px),
            w=_f32(rng, co, ci, *((1, 1) if pointwise else ())),
            bias=_f32(rng, co),
            dy=_f32(rng, n, co, *px),
        )
        return arrays, {}

    return example


def _matmul_example(rng, size):
    return dict(a=_f32(rng, size["m"], size["k"]), b=_f32(rng, size["k"], size["n"])), {}


def _bias_example(rng, size):
    return dict(dy=_f32(rng, size["batch"], size["c_out"], size["h"], size["w"])), {}


def _flat_example(rng, size):
    """relu / relu6 (y is a ReLU output with zeros and clipped values), mse: count elements."""
    x = _f32(rng, size["count"], low=-2.0, high=8.0)
    return dict(x=x, y=np.clip(x, 0.0, 6.0), dy=_f32(rng, size["count"]), target=_f32(rng, size["count"])), {}


def _pool_example(rng, size):
    ho, wo = _out_hw(size)
    arrays = dict(x=_f32(rng, *_x_shape(size)), dy=_f32(rng, size["batch"], size["c_in"], ho, wo))
    return arrays, dict(kernel_size=(size["kh"], size["kw"]), **_geometry(size))


def _global_pool_example(rng, size):
    return dict(x=_f32(rng, *_x_shape(size)), dy=_f32(rng, size["batch"], size["c_in"], 1, 1)), {}


def _batchnorm_example(renorm=False, eval_mode=False):
    def example(rng, size):
        c = size["c_in"]
        arrays = dict(
            x=_f32(rng, *_x_shape(size), low=-2.0, high=3.0),
            gamma=_f32(rng, c, low=0.5, high=1.5),
            beta=_f32(rng, c),
            running_mean=_f32(rng, c, low=-0.5, high=0.5),
            running_var=_f32(rng, c, low=0.5, high=2.0),
            dy=_f32(rng, *_x_shape(size)),
        )
        if eval_mode:
            return arrays, dict(eps=1e-5)
        return arrays, dict(eps=1e-5, momentum=0.1, **(dict(r_max=1.25, d_max=0.5) if renorm else {}))

    return example


def _saved(arrays, batch_stats):
    """The (4, C) saved statistics of the matching forward (the backward's input)."""
    forward = K.batchnorm2d_forward_train if batch_stats else K.batchnorm2d_forward_eval
    state = dict(running_mean=arrays["running_mean"].copy(), running_var=arrays["running_var"].copy())
    return forward(arrays["x"], arrays["gamma"], arrays["beta"], state["running_mean"], state["running_var"])[1]


def _batchnorm_backward_example(batch_stats):
    def example(rng, size):
        arrays, _ = _batchnorm_example()(rng, size)
        arrays["saved"] = _saved(arrays, batch_stats)
        return arrays, dict(batch_stats=batch_stats)

    return example


def _cross_entropy_example(rng, size):
    n, classes = size["batch"], size["c_out"]
    return dict(
        logits=_f32(rng, n, classes, low=-4.0, high=4.0), labels=rng.integers(0, classes, n).astype(np.int64)
    ), {}


def _optimizer_example(adam):
    def example(rng, size):
        n = size["count"]
        arrays = dict(param=_f32(rng, n), grad=_f32(rng, n))
        if adam:
            arrays.update(exp_avg=_f32(rng, n, low=-0.1, high=0.1), exp_avg_sq=_f32(rng, n, low=0.0, high=0.1))
            return arrays, dict(step=3, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, decoupled=True)
        arrays["momentum_buffer"] = _f32(rng, n)
        return arrays, dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=5e-4, nesterov=True)

    return example


def _int8_example(kind):
    """uint8 x, int8 w, int32 bias and a requantization that spreads the outputs over the uint8 range."""

    def example(rng, size):
        n, ci = size["batch"], size["c_in"]
        co = ci if kind == "depthwise" else size["c_out"]
        x_shape = (n, ci) if kind == "linear" else _x_shape(size)
        window = (size.get("kh", 1), size.get("kw", 1))
        w_shape = {
            "conv": (co, ci, *window),
            "depthwise": (co, 1, *window),
            "pointwise": (co, ci, 1, 1),
            "linear": (co, ci),
        }[kind]
        taps = int(np.prod(w_shape[1:]))
        real = rng.uniform(0.5, 2.0, co) / (taps * 128.0 * 64.0) * 255.0
        multiplier, shift = Q.quantize_multiplier(real)
        arrays = dict(
            x=rng.integers(0, 256, x_shape, dtype=np.uint8),
            w=rng.integers(-127, 128, w_shape, dtype=np.int8),
            bias=rng.integers(-(2**12), 2**12, co).astype(np.int32),
            multiplier=multiplier,
            shift=shift,
        )
        params = dict(clip_min=0, clip_max=255)
        if kind in ("conv", "depthwise"):
            params.update(_geometry(size))
        return arrays, params

    return example


def _int8_pool_example(rng, size):
    params = dict(kernel_size=(size["kh"], size["kw"]), stride=(size["stride_h"], size["stride_w"]))
    return dict(x=rng.integers(0, 256, _x_shape(size), dtype=np.uint8)), params


def _codes_example(rng, size):
    count, bits, scale = size["count"], size["bits"], size["scale"]
    top = (1 << bits) - 1
    codes = rng.integers(0, top + 1, count, dtype=np.uint8)
    x = (rng.integers(-4, 4 * top + 8, count) / 2.0 * scale).astype(np.float32)
    return dict(x=x, codes=codes, packed=Q.pack_bits(codes, bits)), dict(bits=bits, scale=scale)


# ---- float64 references (pulptrain.reference) ----------------------------------------------------------


def _conv_reference(step, depthwise):
    def reference(a, p):
        s, pad = p["stride"], p["padding"]
        if step == "forward":
            return dict(y=R.conv2d(a["x"], a["w"], a["bias"], s, pad, depthwise))
        if step == "grad_input":
            return dict(dx=R.conv2d_grad_input(a["dy"], a["w"], a["x"].shape, s, pad, depthwise))
        return dict(dw=R.conv2d_grad_weight(a["dy"], a["x"], a["w"].shape, s, pad, depthwise))

    return reference


def _pointwise_reference(step):
    def reference(a, p):
        return _conv_reference(step, False)(a, dict(stride=1, padding=0))

    return reference


_LINEAR_REFERENCE = {
    "forward": lambda a, p: dict(y=R.linear(a["x"], a["w"], a["bias"])),
    "grad_input": lambda a, p: dict(dx=a["dy"].astype(np.float64) @ a["w"]),
    "grad_weight": lambda a, p: dict(dw=a["dy"].astype(np.float64).T @ a["x"]),
}


# The table keeps its tabular layout (one op per row or two), not the formatter's one argument per line.
# fmt: off
# ---- the table -------------------------------------------------------------------------------------------

CONV_SIZES = (dict(batch=3, c_in=20, h=23, w=19, c_out=13, kh=3, kw=3, stride_h=2, stride_w=1, pad_h=1, pad_w=1),
              dict(batch=1, c_in=20, h=23, w=19, c_out=11, kh=3, kw=2, stride_h=1, stride_w=1, pad_h=1, pad_w=0))
DEPTHWISE_SIZES = (dict(batch=3, c_in=20, h=23, w=19, c_out=20, kh=3, kw=3, stride_h=2, stride_w=2, pad_h=1, pad_w=1),
                   dict(batch=1, c_in=45, h=8, w=8, c_out=45, kh=3, kw=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1))
POINTWISE_SIZES = (dict(batch=3, c_in=20, h=23, w=19, c_out=37), dict(batch=1, c_in=300, h=4, w=4, c_out=70))
LINEAR_SIZES = (dict(batch=15, c_in=300, c_out=50), dict(batch=1, c_in=1000, c_out=50))
POOL_SIZES = (dict(batch=3, c_in=20, h=23, w=19, kh=3, kw=3, stride_h=2, stride_w=2, pad_h=1, pad_w=1),
              dict(batch=1, c_in=300, h=4, w=4, kh=2, kw=2, stride_h=2, stride_w=2, pad_h=0, pad_w=0))
PLANE_SIZES = (dict(batch=3, c_in=40, h=7, w=9),)
FLAT_SIZES = (dict(count=70001),)
INT8_SIZES = (dict(batch=2, c_in=20, h=23, w=19, c_out=13, kh=3, kw=3, stride_h=2, stride_w=1, pad_h=1, pad_w=1),)
CODE_SIZES = (dict(count=20003, bits=3, scale=0.25), dict(count=20003, bits=8, scale=0.0371))


def _layer_ops(family, c_file, binding, test, example, sizes, reference, tier, calls, c_args):
    """forward, grad_input and grad_weight of a weight layer."""
    return [Op(f"{family}.{step}", f"pt_{family}_{step}", c_file, binding, getattr(K, f"{family}_{step}"),
               example, calls[step], c_args[step], test, sizes, reference(step), tier)
            for step in ("forward", "grad_input", "grad_weight")]


def _conv_calls(family):
    fw, gi, gw = (getattr(K, f"{family}_{s}") for s in ("forward", "grad_input", "grad_weight"))
    return {"forward": lambda a, p: dict(y=fw(a["x"], a["w"], a["bias"], **p)),
            "grad_input": lambda a, p: dict(dx=gi(a["dy"], a["w"], a["x"].shape, **p)),
            "grad_weight": lambda a, p: dict(dw=gw(a["dy"], a["x"], a["w"].shape, **p))}


def _dense_calls(family):
    fw, gi, gw = (getattr(K, f"{family}_{s}") for s in ("forward", "grad_input", "grad_weight"))
    return {"forward": lambda a, p: dict(y=fw(a["x"], a["w"], a["bias"])),
            "grad_input": lambda a, p: dict(dx=gi(a["dy"], a["w"])),
            "grad_weight": lambda a, p: dict(dw=gw(a["dy"], a["x"]))}


LAYER_C_ARGS = {"forward": (("x", "in"), ("w", "in"), ("bias", "in"), ("y", "out")),
                "grad_input": (("dy", "in"), ("w", "in"), ("dx", "out")),
                "grad_weight": (("dy", "in"), ("x", "in"), ("dw", "out"))}


def _relu_ops(name, upper):
    """relu (upper None) and relu6 (upper 6.0): y = min(max(x, 0), upper)."""
    def example(rng, size):
        return _flat_example(rng, size)[0], dict(upper=upper)
    return [
        Op(f"{name}.forward", "pt_relu_forward", "fp32/activation.c", "_nn.pxi", K.relu_forward, example,
           lambda a, p: dict(y=K.relu_forward(a["x"], **p)), (("x", "in"), ("y", "out")), "test_nn_kernels.py",
           FLAT_SIZES),
        Op(f"{name}.grad_input", "pt_relu_grad_input", "fp32/activation.c", "_nn.pxi", K.relu_grad_input, example,
           lambda a, p: dict(dx=K.relu_grad_input(a["y"], a["dy"], **p)),
           (("y", "in"), ("dy", "in"), ("dx", "out")), "test_nn_kernels.py", FLAT_SIZES),
    ]


def _bn_forward(train):
    def run(a, p):
        mean, var = a["running_mean"].copy(), a["running_var"].copy()
        forward = K.batchnorm2d_forward_train if train else K.batchnorm2d_forward_eval
        y, saved = forward(a["x"], a["gamma"], a["beta"], mean, var, **p)
        return dict(y=y, saved=saved, running_mean=mean, running_var=var)
    return run


def _bn_backward(a, p):
    dx, dgamma, dbeta = K.batchnorm2d_backward(a["dy"], a["x"], a["gamma"], a["saved"], **p)
    return dict(dx=dx, dgamma=dgamma, dbeta=dbeta)


def _sgd(a, p):
    param, buf = a["param"].copy(), a["momentum_buffer"].copy()
    K.sgd_step(param, a["grad"], buf, **p)
    return dict(param=param, momentum_buffer=buf)


def _adam(a, p):
    param, m, v = a["param"].copy(), a["exp_avg"].copy(), a["exp_avg_sq"].copy()
    K.adam_step(param, a["grad"], m, v, **p)
    return dict(param=param, exp_avg=m, exp_avg_sq=v)


def _int8_call(fn):
    return lambda a, p: dict(y=fn(a["x"], a["w"], a["bias"], a["multiplier"], a["shift"], **p))


INT8_C_ARGS = (("x", "in"), ("w", "in"), ("bias", "in"), ("multiplier", "in"), ("shift", "in"), ("y", "out"))
BN_BACKWARD_C_ARGS = (("x", "in"), ("dy", "in"), ("gamma", "in"), ("saved", "in"), ("dx", "out"), ("dgamma", "out"),
                      ("dbeta", "out"))
BN_FORWARD_C_ARGS = (("x", "in"), ("gamma", "in"), ("beta", "in"), ("running_mean", "inout"),
                     ("running_var", "inout"), ("saved", "out"), ("y", "out"))

OPS = [
    Op("matmul", "pt_matmul", "gemm/matmul.c", "_C.pyx", K.matmul, _matmul_example,
       lambda a, p: dict(c=K.matmul(a["a"], a["b"])), (("a", "in"), ("b", "in"), ("c", "out")),
       "test_dense_kernels.py", (dict(m=70, n=90, k=300),),
       lambda a, p: dict(c=a["a"].astype(np.float64) @ a["b"]), "matmul"),
    *_layer_ops("conv2d", "fp32/conv2d.c", "_conv.pxi", "test_conv_kernels.py", _conv_example(False), CONV_SIZES,
                lambda step: _conv_reference(step, False), "matmul", _conv_calls("conv2d"), LAYER_C_ARGS),
    *_layer_ops("depthwise_conv2d", "fp32/depthwise_conv2d.c", "_conv.pxi", "test_conv_kernels.py", _conv_example(True),
                DEPTHWISE_SIZES, lambda step: _conv_reference(step, True), "depthwise", _conv_calls("depthwise_conv2d"),
                LAYER_C_ARGS),
    *_layer_ops("pointwise_conv2d", "fp32/pointwise_conv2d.c", "_dense.pxi", "test_dense_kernels.py",
                _dense_example(True), POINTWISE_SIZES, _pointwise_reference, "matmul",
                _dense_calls("pointwise_conv2d"), LAYER_C_ARGS),
    *_layer_ops("linear", "fp32/linear.c", "_dense.pxi", "test_dense_kernels.py", _dense_example(False), LINEAR_SIZES,
                _LINEAR_REFERENCE.get, "matmul", _dense_calls("linear"), LAYER_C_ARGS),
    Op("bias_grad", "pt_bias_grad", "fp32/bias.c", "_dense.pxi", K.bias_grad, _bias_example,
       lambda a, p: dict(db=K.bias_grad(a["dy"])), (("dy", "in"), ("db", "out")), "test_dense_kernels.py",
       (dict(batch=3, c_out=13, h=12, w=10),), lambda a, p: dict(db=R.bias_grad(a["dy"]))),
    *_relu_ops("relu", None),
    *_relu_ops("relu6", 6.0),
    Op("avg_pool2d.forward", "pt_avg_pool2d_forward", "fp32/pooling.c", "_nn.pxi", K.avg_pool2d_forward, _pool_example,
       lambda a, p: dict(y=K.avg_pool2d_forward(a["x"], **p)), (("x", "in"), ("y", "out")), "test_nn_kernels.py",
       POOL_SIZES),
    Op("avg_pool2d.grad_input", "pt_avg_pool2d_grad_input", "fp32/pooling.c", "_nn.pxi", K.avg_pool2d_grad_input,
       _pool_example, lambda a, p: dict(dx=K.avg_pool2d_grad_input(a["dy"], a["x"].shape, **p)),
       (("dy", "in"), ("dx", "out")), "test_nn_kernels.py", POOL_SIZES),
    Op("global_avg_pool2d.forward", "pt_avg_pool2d_forward", "fp32/pooling.c", "_nn.pxi", K.global_avg_pool2d_forward,
       _global_pool_example, lambda a, p: dict(y=K.global_avg_pool2d_forward(a["x"])), (("x", "in"), ("y", "out")),
       "test_nn_kernels.py", PLANE_SIZES),
    Op("global_avg_pool2d.grad_input", "pt_avg_pool2d_grad_input", "fp32/pooling.c", "_nn.pxi",
       K.global_avg_pool2d_grad_input, _global_pool_example,
       lambda a, p: dict(dx=K.global_avg_pool2d_grad_input(a["dy"], a["x"].shape)), (("dy", "in"), ("dx", "out")),
       "test_nn_kernels.py", PLANE_SIZES),
    Op("max_pool2d.forward", "pt_max_pool2d_forward", "fp32/pooling.c", "_nn.pxi", K.max_pool2d_forward, _pool_example,
       lambda a, p: dict(y=K.max_pool2d_forward(a["x"], **p)), (("x", "in"), ("y", "out")), "test_nn_kernels.py",
       POOL_SIZES),
    Op("max_pool2d.grad_input", "pt_max_pool2d_grad_input", "fp32/pooling.c", "_nn.pxi", K.max_pool2d_grad_input,
       _pool_example, lambda a, p: dict(dx=K.max_pool2d_grad_input(a["dy"], a["x"], **p)),
       (("dy", "in"), ("x", "in"), ("dx", "out")), "test_nn_kernels.py", POOL_SIZES),
    Op("batchnorm2d.forward_train", "pt_batchnorm2d_forward_train", "fp32/batchnorm.c", "_nn.pxi",
       K.batchnorm2d_forward_train, _batchnorm_example(), _bn_forward(True), BN_FORWARD_C_ARGS,
       "test_nn_kernels.py", PLANE_SIZES),
    Op("batchnorm2d.forward_renorm", "pt_batchnorm2d_forward_train", "fp32/batchnorm.c", "_nn.pxi",
       K.batchnorm2d_forward_train, _batchnorm_example(renorm=True), _bn_forward(True), BN_FORWARD_C_ARGS,
       "test_nn_kernels.py", PLANE_SIZES, notes="Batch Renormalization: forward_train with r_max, d_max"),
    Op("batchnorm2d.forward_eval", "pt_batchnorm2d_forward_eval", "fp32/batchnorm.c", "_nn.pxi",
       K.batchnorm2d_forward_eval, _batchnorm_example(eval_mode=True), _bn_forward(False),
       (("x", "in"), ("gamma", "in"), ("beta", "in"), ("running_mean", "in"), ("running_var", "in"),
        ("saved", "out"), ("y", "out")), "test_nn_kernels.py", PLANE_SIZES),
    Op("batchnorm2d.backward", "pt_batchnorm2d_backward", "fp32/batchnorm.c", "_nn.pxi", K.batchnorm2d_backward,
       _batchnorm_backward_example(True), _bn_backward,
       BN_BACKWARD_C_ARGS, "test_nn_kernels.py", PLANE_SIZES),
    Op("batchnorm2d.backward_eval", "pt_batchnorm2d_backward", "fp32/batchnorm.c", "_nn.pxi", K.batchnorm2d_backward,
       _batchnorm_backward_example(False), _bn_backward,
       BN_BACKWARD_C_ARGS, "test_nn_kernels.py", PLANE_SIZES, notes="backward of forward_eval (batch_stats=False)"),
    Op("cross_entropy", "pt_cross_entropy", "fp32/loss.c", "_nn.pxi", K.cross_entropy, _cross_entropy_example,
       lambda a, p: dict(zip(("loss", "dlogits"), K.cross_entropy(a["logits"], a["labels"]))),
       (("logits", "in"), ("labels", "in"), ("loss", "out"), ("dlogits", "out")), "test_nn_kernels.py",
       (dict(batch=37, c_out=50),)),
    Op("mse_loss", "pt_mse_loss", "fp32/loss.c", "_nn.pxi", K.mse_loss, _flat_example,
       lambda a, p: dict(zip(("loss", "dpred"), K.mse_loss(a["x"], a["target"]))),
       (("x", "in"), ("target", "in"), ("loss", "out"), ("dpred", "out")), "test_nn_kernels.py", FLAT_SIZES),
    Op("sgd_step", "pt_sgd_step", "fp32/optim.c", "_nn.pxi", K.sgd_step, _optimizer_example(False), _sgd,
       (("param", "inout"), ("grad", "in"), ("momentum_buffer", "inout")), "test_nn_kernels.py", FLAT_SIZES),
    Op("adam_step", "pt_adam_step", "fp32/optim.c", "_nn.pxi", K.adam_step, _optimizer_example(True), _adam,
       (("param", "inout"), ("grad", "in"), ("exp_avg", "inout"), ("exp_avg_sq", "inout")), "test_nn_kernels.py",
       FLAT_SIZES, notes="AdamW with decoupled=True"),
    Op("int8_conv2d.forward", "pt_int8_conv2d_forward", "int8/int8_conv2d.c", "_quant.pxi", Q.int8_conv2d_forward,
       _int8_example("conv"), _int8_call(Q.int8_conv2d_forward), INT8_C_ARGS, "test_int8_kernels.py", INT8_SIZES,
       tier="int8_gemm"),
    Op("int8_depthwise_conv2d.forward", "pt_int8_depthwise_conv2d_forward", "int8/int8_depthwise_conv2d.c",
       "_quant.pxi", Q.int8_depthwise_conv2d_forward, _int8_example("depthwise"),
       _int8_call(Q.int8_depthwise_conv2d_forward), INT8_C_ARGS, "test_int8_kernels.py", INT8_SIZES),
    Op("int8_pointwise_conv2d.forward", "pt_int8_pointwise_conv2d_forward", "int8/int8_pointwise_conv2d.c",
       "_quant.pxi", Q.int8_pointwise_conv2d_forward, _int8_example("pointwise"),
       _int8_call(Q.int8_pointwise_conv2d_forward), INT8_C_ARGS, "test_int8_kernels.py", INT8_SIZES, tier="int8_gemm"),
    Op("int8_linear.forward", "pt_int8_linear_forward", "int8/int8_linear.c", "_quant.pxi", Q.int8_linear_forward,
       _int8_example("linear"), _int8_call(Q.int8_linear_forward), INT8_C_ARGS, "test_int8_kernels.py",
       (dict(batch=5, c_in=300, c_out=50),), tier="int8_gemm"),
    Op("int8_avg_pool2d.forward", "pt_int8_avg_pool2d", "int8/int8_pooling.c", "_quant.pxi", Q.int8_avg_pool2d,
       _int8_pool_example, lambda a, p: dict(y=Q.int8_avg_pool2d(a["x"], **p)), (("x", "in"), ("y", "out")),
       "test_int8_kernels.py", POOL_SIZES[1:] + (dict(batch=2, c_in=20, h=23, w=19, kh=3, kw=3, stride_h=2,
                                                      stride_w=2, pad_h=0, pad_w=0),)),
    Op("int8_global_avg_pool2d.forward", "pt_int8_avg_pool2d", "int8/int8_pooling.c", "_quant.pxi",
       Q.int8_global_avg_pool2d, lambda rng, size: (dict(x=rng.integers(0, 256, _x_shape(size), dtype=np.uint8)), {}),
       lambda a, p: dict(y=Q.int8_global_avg_pool2d(a["x"])), (("x", "in"), ("y", "out")), "test_int8_kernels.py",
       PLANE_SIZES),
    Op("quant.quantize", "pt_quantize", "quant/quant.c", "_quant.pxi", Q.quantize, _codes_example,
       lambda a, p: dict(codes=Q.quantize(a["x"], p["scale"], p["bits"])), (("x", "in"), ("codes", "out")),
       "test_quant_codes.py", CODE_SIZES),
    Op("quant.dequantize", "pt_dequantize", "quant/quant.c", "_quant.pxi", Q.dequantize, _codes_example,
       lambda a, p: dict(x=Q.dequantize(a["codes"], p["scale"])), (("codes", "in"), ("x", "out")),
       "test_quant_codes.py", CODE_SIZES),
    Op("quant.pack_bits", "pt_pack_bits", "quant/quant.c", "_quant.pxi", Q.pack_bits, _codes_example,
       lambda a, p: dict(packed=Q.pack_bits(a["codes"], p["bits"])), (("codes", "in"), ("packed", "out")),
       "test_quant_codes.py", CODE_SIZES),
    Op("quant.unpack_bits", "pt_unpack_bits", "quant/quant.c", "_quant.pxi", Q.unpack_bits, _codes_example,
       lambda a, p: dict(codes=Q.unpack_bits(a["packed"], p["bits"], a["codes"].size)),
       (("packed", "in"), ("codes", "out")), "test_quant_codes.py", CODE_SIZES),
]
# fmt: on


BY_NAME = {op.name: op for op in OPS}
assert len(BY_NAME) == len(OPS), "op names must be unique"


def get(name):
    """The op called name (KeyError listing the names otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no op {name!r}; the ops are {sorted(BY_NAME)}") from None


def pointers(op):
    """Where an op lives, relative to the repository root."""
    return {
        "C": f"csrc/{op.c_file} ({op.c_entry})",
        "binding": f"pulptrain/{op.binding} ({op.function.__name__})",
        "test": f"tests/{op.test}, tests/test_threads.py, tools/riscv (golden data: gen_golden.py)",
        "rv32/rv64 call": "tools/riscv/kernel_step.c (rv_ops, same name)",
        "benchmark": f"benchmarks/cases.py (make_op_call({op.name!r}, ...))",
    }


def main(argv=None):
    import sys

    names = (sys.argv[1:] if argv is None else argv) or [op.name for op in OPS]
    for name in names:
        op = get(name)
        if len(names) == 1:
            for key, where in pointers(op).items():
                print(f"{key:15s} {where}")
        else:
            print(f"{op.name:32s} {op.c_entry:34s} csrc/{op.c_file:26s} tier {op.tier or '-'}")


if __name__ == "__main__":
    main()
