"""Layers that hold parameters and call the C kernels: a small, PyTorch-shaped module system.

Every tensor is a float32 numpy array, NCHW for images. A module computes ``forward(x) -> y`` and, after it,
``backward(dy) -> dx``: the backward adds the parameter gradients into each ``Parameter.grad`` (PyTorch
semantics: call ``zero_grad()`` between steps) and returns the gradient with respect to the input, or None
when the module's ``needs_input_grad`` is False (the first trainable layer, or the first layer above a
frozen stage: its input-gradient (IG) step is skipped, as on PULP).

Buffers are reused: a layer allocates its output and gradient arrays on the first call and writes into
them on every later call with the same shapes. So the array returned by ``forward`` (or ``backward``) is
overwritten by the next call of the same layer; copy it if you keep it. A layer also keeps a reference to
its forward input until the backward, so the input must not be modified in between.

``state_dict()`` uses PyTorch's names (``blocks.3.1.running_mean``, ``classifier.weight``), so weights move
between the two with ``{k: v.numpy() for k, v in torch_model.state_dict().items()}``; ``save(path)`` and
``load(path)`` store the same mapping as a ``.npz`` file.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Callable, ClassVar, TypeVar, cast, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pulptrain import kernels as K

__all__ = [
    "Parameter",
    "Module",
    "Sequential",
    "Conv2d",
    "DepthwiseConv2d",
    "PointwiseConv2d",
    "Linear",
    "BatchNorm2d",
    "BatchRenorm2d",
    "ReLU",
    "ReLU6",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "MaxPool2d",
    "Flatten",
    "CrossEntropyLoss",
    "MSELoss",
]


_ModuleT = TypeVar("_ModuleT", bound="Module")


class Parameter:
    """A trainable float32 array ``data`` and its gradient ``grad`` (same shape, starts at zero).
    ``requires_grad = False`` freezes it: no gradient is computed and optimizers leave it alone."""

    __slots__ = ("data", "grad", "requires_grad")
    data: NDArray[np.float32]
    grad: NDArray[np.float32]
    requires_grad: bool

    def __init__(self, data: ArrayLike) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)
        self.requires_grad = True

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, requires_grad={self.requires_grad})"


def _default_rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...]) -> NDArray[np.float32]:
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Module:
    """Base class. Subclasses register parameters with ``_param``, buffers (state that is saved but not
    trained, such as running statistics) with ``_buffer`` and sub-modules with ``_child``, in forward order,
    and implement ``forward(x)`` and ``_backward(dy, need_input_grad)``."""

    training: bool  # True: training mode (see train() and eval())
    needs_input_grad: bool  # False: backward() skips the input gradient and returns None

    def __init__(self) -> None:
        self._params: OrderedDict[str, Parameter] = OrderedDict()
        self._buffers: OrderedDict[str, NDArray[Any]] = OrderedDict()
        self._modules: OrderedDict[str, Module] = OrderedDict()
        self._scratch: dict[str, NDArray[np.float32]] = {}
        self.training = True
        self.needs_input_grad = True

    # -- registration -----------------------------------------------------------------------------------
    def _param(self, name: str, data: ArrayLike) -> Parameter:
        p = Parameter(data)
        self._params[name] = p
        setattr(self, name, p)
        return p

    def _buffer(self, name: str, data: NDArray[Any]) -> NDArray[Any]:
        self._buffers[name] = data
        setattr(self, name, data)
        return data

    def _child(self, name: str, module: Module) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"{name} must be a pulptrain.nn.Module, got {type(module).__name__}")
        self._modules[name] = module
        setattr(self, name, module)
        return module

    def _out(self, key: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
        """A float32 scratch array of `shape`, allocated once and reused while the shape stays the same."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != tuple(shape):
            buf = np.empty(shape, dtype=np.float32)
            self._scratch[key] = buf
        return buf

    # -- traversal --------------------------------------------------------------------------------------
    def children(self) -> list[Module]:
        return list(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs in forward order, named as in PyTorch."""
        for name, p in self._params.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        """Every Parameter, in forward order."""
        return [p for _, p in self.named_parameters()]

    def trainable(self) -> bool:
        """True when some parameter of this module (or a sub-module) has requires_grad."""
        return any(p.requires_grad for p in self.parameters())

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, NDArray[Any]]]:
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(prefix + name + ".")

    def train(self: _ModuleT, mode: bool = True) -> _ModuleT:
        """Training mode (BatchNorm uses batch statistics); returns self."""
        self.training = bool(mode)
        for m in self._modules.values():
            m.train(mode)
        return self

    def eval(self: _ModuleT) -> _ModuleT:
        """Evaluation mode (BatchNorm uses its running statistics); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad.fill(0.0)

    def requires_grad_(self: _ModuleT, flag: bool = True) -> _ModuleT:
        """Sets requires_grad of every parameter (False freezes the module); returns self."""
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    # -- state --------------------------------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, NDArray[Any]]]:
        for name, p in self._params.items():
            yield prefix + name, p.data
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m._state_items(prefix + name + ".")

    def state_dict(self) -> OrderedDict[str, NDArray[Any]]:
        """OrderedDict name -> copy of every parameter and buffer, with PyTorch's names and order."""
        return OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_items())

    def load_state_dict(self, state: Mapping[str, ArrayLike], strict: bool = True) -> None:
        """Copies arrays (numpy, or anything np.asarray accepts, e.g. torch tensors) into the parameters and
        buffers. strict: every name must match both ways. Shapes must match exactly."""
        targets = OrderedDict(self._state_items())
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, target in targets.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"{name} must have shape {target.shape}, got {value.shape}")
            np.copyto(target, value, casting="unsafe")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes state_dict() to a .npz file."""
        np.savez(path, **self.state_dict())  # type: ignore[arg-type]  # numpy's stub: a key could be allow_pickle

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> None:
        """Reads a .npz file written by save() (or numpy.savez of a torch state_dict)."""
        with np.load(path) as data:
            self.load_state_dict({k: data[k] for k in data.files}, strict=strict)

    # -- compute --------------------------------------------------------------------------------------------
    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.forward(x)

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        raise NotImplementedError

    def backward(self, dy: NDArray[np.float32]) -> NDArray[np.float32] | None:
        """Gradient step after forward(): accumulates parameter gradients and returns dL/dx (None when
        needs_input_grad is False)."""
        return self._backward(dy, self.needs_input_grad)

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order; ``seq[i]`` is the i-th module and ``seq[a:b]`` a Sequential sharing them.

    The backward stops at the first module with trainable parameters when no input gradient is needed, so
    modules below a frozen boundary are never visited."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> Sequential:
        self._child(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        return mods[index]

    def __setitem__(self, index: int, module: Module) -> None:
        """Replaces the module at an int index (the name, and so the state_dict key, stays the same)."""
        name = list(self._modules)[index]
        self._child(name, module)

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        for m in self._modules.values():
            x = m.forward(x)
        return x

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        mods = list(self._modules.values())
        first = 0
        if not need_input_grad:
            first = next((i for i, m in enumerate(mods) if m.trainable()), len(mods))
        grad: NDArray[np.float32] | None = dy
        for i in range(len(mods) - 1, first - 1, -1):
            # every module above `first` was asked for its input gradient, so grad is an array here
            grad = mods[i]._backward(cast("NDArray[np.float32]", grad), need_input_grad or i > first)
        return grad if need_input_grad else None


# ---- trainable layers -------------------------------------------------------------------------------------


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    # tuple(v) keeps whatever length v has: the kernels name the argument when it is not a pair
    return (v, v) if isinstance(v, (int, np.integer)) else cast("tuple[int, int]", tuple(v))


def _image_shape(x: object, what: str) -> tuple[int, ...]:
    """x's shape, after checking x is a 4-D numpy array (the kernels check dtype and the rest)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} input must be a numpy.ndarray of float32, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what} input must be 4-D (N, C, H, W), got shape {x.shape}")
    return x.shape


def _window_out_shape(
    x: object,
    what: str,
    channels: int | None,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int, int, int]:
    """(N, channels, H_out, W_out) of a sliding-window layer (channels None: as the input); ValueError when
    the window does not fit."""
    n, c, h, w = _image_shape(x, what)
    channels = c if channels is None else channels
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    shape = (n, channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"{what}: kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw}")
    return shape


class _WeightLayer(Module):
    """Shared set-up of the convolution and linear layers: weight of `weight_shape`, optional bias,
    PyTorch's default initialisation (uniform in +-1/sqrt(fan_in))."""

    weight: Parameter
    bias: Parameter | None
    _x: NDArray[np.float32] | None  # the forward input, kept for the backward

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int, bias: bool, rng: np.random.Generator | None) -> None:
        super().__init__()
        rng = _default_rng(rng)
        bound = 1.0 / math.sqrt(fan_in)
        self._param("weight", _uniform(rng, bound, weight_shape))
        self.bias = None
        if bias:
            self._param("bias", _uniform(rng, bound, (weight_shape[0],)))
        self._x = None

    def _bias_data(self) -> NDArray[np.float32] | None:
        return None if self.bias is None else self.bias.data

    def _saved_input(self) -> NDArray[np.float32]:
        """The input of the last forward (None, typed as an array, when backward() comes before any forward())."""
        return cast("NDArray[np.float32]", self._x)

    def _bias_grad(self, dy: NDArray[np.float32]) -> None:
        if self.bias is not None and self.bias.requires_grad:
            K.bias_grad(dy, out=self.bias.grad, accumulate=True)


class Conv2d(_WeightLayer):
    """2-D convolution (groups = 1), weight (out_channels, in_channels, kh, kw).
    x (N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        super().__init__(
            (out_channels, in_channels) + self.kernel_size, in_channels * math.prod(self.kernel_size), bias, rng
        )

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"{i}, {o}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        shape = _window_out_shape(x, "Conv2d", self.weight.shape[0], self.kernel_size, self.stride, self.padding)
        self._x = x
        return K.conv2d_forward(
            x, self.weight.data, self._bias_data(), stride=self.stride, padding=self.padding, out=self._out("y", shape)
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        x, w = self._saved_input(), self.weight
        if w.requires_grad:
            K.conv2d_grad_weight(dy, x, w.shape, stride=self.stride, padding=self.padding, out=w.grad, accumulate=True)
        self._bias_grad(dy)
        if not need_input_grad:
            return None
        return K.conv2d_grad_input(
            dy, w.data, x.shape, stride=self.stride, padding=self.padding, out=self._out("dx", x.shape)
        )


class DepthwiseConv2d(_WeightLayer):
    """Depthwise 2-D convolution (groups = channels), weight (channels, 1, kh, kw).
    x (N, channels, H, W) -> (N, channels, H_out, W_out)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        super().__init__((channels, 1) + self.kernel_size, math.prod(self.kernel_size), bias, rng)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        shape = _window_out_shape(
            x, "DepthwiseConv2d", self.weight.shape[0], self.kernel_size, self.stride, self.padding
        )
        self._x = x
        return K.depthwise_conv2d_forward(
            x, self.weight.data, self._bias_data(), stride=self.stride, padding=self.padding, out=self._out("y", shape)
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        x, w = self._saved_input(), self.weight
        if w.requires_grad:
            K.depthwise_conv2d_grad_weight(
                dy, x, w.shape, stride=self.stride, padding=self.padding, out=w.grad, accumulate=True
            )
        self._bias_grad(dy)
        if not need_input_grad:
            return None
        return K.depthwise_conv2d_grad_input(
            dy, w.data, x.shape, stride=self.stride, padding=self.padding, out=self._out("dx", x.shape)
        )


class PointwiseConv2d(_WeightLayer):
    """1x1 convolution, weight (out_channels, in_channels, 1, 1). x (N, in, H, W) -> (N, out, H, W)."""

    def __init__(
        self, in_channels: int, out_channels: int, bias: bool = True, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__((out_channels, in_channels, 1, 1), in_channels, bias, rng)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        n, _, h, w = _image_shape(x, "PointwiseConv2d")
        self._x = x
        return K.pointwise_conv2d_forward(
            x, self.weight.data, self._bias_data(), out=self._out("y", (n, self.weight.shape[0], h, w))
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        x, w = self._saved_input(), self.weight
        if w.requires_grad:
            K.pointwise_conv2d_grad_weight(dy, x, out=w.grad, accumulate=True)
        self._bias_grad(dy)
        if not need_input_grad:
            return None
        return K.pointwise_conv2d_grad_input(dy, w.data, out=self._out("dx", x.shape))


class Linear(_WeightLayer):
    """Fully connected layer, weight (out_features, in_features). x (N, in) -> (N, out)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: np.random.Generator | None = None
    ) -> None:
        super().__init__((out_features, in_features), in_features, bias, rng)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise ValueError(
                f"Linear input must be a 2-D numpy.ndarray (N, in_features), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        self._x = x
        return K.linear_forward(
            x, self.weight.data, self._bias_data(), out=self._out("y", (x.shape[0], self.weight.shape[0]))
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        x, w = self._saved_input(), self.weight
        if w.requires_grad:
            K.linear_grad_weight(dy, x, out=w.grad, accumulate=True)
        self._bias_grad(dy)
        if not need_input_grad:
            return None
        return K.linear_grad_input(dy, w.data, out=self._out("dx", x.shape))


class BatchNorm2d(Module):
    """BatchNorm over the channels of (N, C, H, W), PyTorch semantics: batch statistics and a running-
    statistics update (momentum, unbiased variance) in training mode, the running statistics in eval mode.
    Parameters weight (gamma) and bias (beta); buffers running_mean, running_var, num_batches_tracked.

    r_max and d_max (both or neither) turn it into Batch Renormalization (see BatchRenorm2d). The backward
    differentiates whichever forward ran: in eval mode the statistics are constants, which is how a BN with
    frozen statistics is trained."""

    weight: Parameter  # gamma (C,)
    bias: Parameter  # beta (C,)
    running_mean: NDArray[np.float32]
    running_var: NDArray[np.float32]
    num_batches_tracked: NDArray[np.int64]  # a 0-d counter of training-mode forwards
    eps: float
    momentum: float
    r_max: float | None
    d_max: float | None
    _x: NDArray[np.float32] | None  # the forward input, kept for the backward

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        r_max: float | None = None,
        d_max: float | None = None,
    ) -> None:
        super().__init__()
        self.eps, self.momentum, self.r_max, self.d_max = eps, momentum, r_max, d_max
        self._param("weight", np.ones(num_features, np.float32))
        self._param("bias", np.zeros(num_features, np.float32))
        self._buffer("running_mean", np.zeros(num_features, np.float32))
        self._buffer("running_var", np.ones(num_features, np.float32))
        self._buffer("num_batches_tracked", np.zeros((), np.int64))
        self._x, self._batch_stats = None, True

    def extra_repr(self) -> str:
        renorm = f", r_max={self.r_max}, d_max={self.d_max}" if self.r_max is not None else ""
        return f"{self.weight.shape[0]}, eps={self.eps}, momentum={self.momentum}{renorm}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        shape = _image_shape(x, type(self).__name__)
        self._x, self._batch_stats = x, self.training
        y, saved = self._out("y", shape), self._out("saved", (4, self.weight.shape[0]))
        if self.training:
            K.batchnorm2d_forward_train(
                x,
                self.weight.data,
                self.bias.data,
                self.running_mean,
                self.running_var,
                eps=self.eps,
                momentum=self.momentum,
                r_max=self.r_max,
                d_max=self.d_max,
                out=y,
                saved=saved,
            )
            self.num_batches_tracked += 1
        else:
            K.batchnorm2d_forward_eval(
                x,
                self.weight.data,
                self.bias.data,
                self.running_mean,
                self.running_var,
                eps=self.eps,
                out=y,
                saved=saved,
            )
        return y

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        gamma, beta = self.weight, self.bias
        dgamma = gamma.grad if gamma.requires_grad else self._out("dgamma", gamma.shape)
        dbeta = beta.grad if beta.requires_grad else self._out("dbeta", beta.shape)
        x = cast("NDArray[np.float32]", self._x)  # None only before the first forward
        dx, _, _ = K.batchnorm2d_backward(
            dy,
            x,
            gamma.data,
            self._scratch["saved"],
            batch_stats=self._batch_stats,
            input_grad=need_input_grad,
            out=self._out("dx", x.shape) if need_input_grad else None,
            dgamma_out=dgamma,
            dbeta_out=dbeta,
            accumulate_params=True,
        )
        return dx


class BatchRenorm2d(BatchNorm2d):
    """Batch Renormalization (Ioffe 2017) with the reference CL code's settings (r_max 1.25, d_max 0.5):
    y = gamma * (xhat * r + d) + beta, r and d computed from the running statistics and held constant in
    the backward. Same buffers and names as BatchNorm2d."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.01, r_max: float = 1.25, d_max: float = 0.5
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, r_max=r_max, d_max=d_max)


# ---- parameter-free layers ----------------------------------------------------------------------------------


class ReLU(Module):
    """y = max(x, 0) elementwise (any shape)."""

    upper: ClassVar[float | None] = None  # the clip of ReLU6
    _y: NDArray[np.float32]  # the forward output, kept for the backward

    def extra_repr(self) -> str:
        return "" if self.upper is None else f"upper={self.upper}"

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{type(self).__name__} input must be a numpy.ndarray of float32, got {type(x).__name__}")
        self._y = K.relu_forward(x, upper=self.upper, out=self._out("y", x.shape))
        return self._y

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        if not need_input_grad:
            return None
        return K.relu_grad_input(self._y, dy, upper=self.upper, out=self._out("dx", self._y.shape))


class ReLU6(ReLU):
    """y = min(max(x, 0), 6) elementwise (any shape)."""

    upper: ClassVar[float | None] = 6.0


class _Pool2d(Module):
    """Window settings shared by the pooling layers (stride defaults to the kernel size)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _shape(self, x: object) -> tuple[int, int, int, int]:
        return _window_out_shape(x, type(self).__name__, None, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Average pooling (count_include_pad=True). x (N, C, H, W) -> (N, C, H_out, W_out)."""

    _x_shape: tuple[int, ...]  # the forward input's shape, kept for the backward

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        shape = self._shape(x)
        self._x_shape = x.shape
        return K.avg_pool2d_forward(
            x, self.kernel_size, stride=self.stride, padding=self.padding, out=self._out("y", shape)
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        if not need_input_grad:
            return None
        return K.avg_pool2d_grad_input(
            dy,
            self._x_shape,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            out=self._out("dx", self._x_shape),
        )


class MaxPool2d(_Pool2d):
    """Max pooling (padding <= kernel_size / 2). x (N, C, H, W) -> (N, C, H_out, W_out)."""

    _x: NDArray[np.float32]  # the forward input, kept for the backward

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        shape = self._shape(x)
        self._x = x
        return K.max_pool2d_forward(
            x, self.kernel_size, stride=self.stride, padding=self.padding, out=self._out("y", shape)
        )

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        if not need_input_grad:
            return None
        return K.max_pool2d_grad_input(
            dy, self._x, self.kernel_size, stride=self.stride, padding=self.padding, out=self._out("dx", self._x.shape)
        )


class GlobalAvgPool2d(Module):
    """Mean over each (H, W) plane, like torch.nn.AdaptiveAvgPool2d(1). x (N, C, H, W) -> (N, C, 1, 1)."""

    _x_shape: tuple[int, ...]

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        n, c = _image_shape(x, "GlobalAvgPool2d")[:2]
        self._x_shape = x.shape
        return K.global_avg_pool2d_forward(x, out=self._out("y", (n, c, 1, 1)))

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        if not need_input_grad:
            return None
        return K.global_avg_pool2d_grad_input(dy, self._x_shape, out=self._out("dx", self._x_shape))


class Flatten(Module):
    """(N, ...) -> (N, prod(...)); a reshape (a view when the input is contiguous)."""

    _x_shape: tuple[int, ...]

    def forward(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy: NDArray[np.float32], need_input_grad: bool) -> NDArray[np.float32] | None:
        return dy.reshape(self._x_shape) if need_input_grad else None


# ---- losses -----------------------------------------------------------------------------------------------


class _Loss:
    """``forward(prediction, target) -> float`` keeps the gradient; ``backward()`` returns it (a buffer
    reused while the prediction's shape stays the same)."""

    # the loss kernel of a subclass: (prediction, target, *, out) -> (loss, dprediction)
    kernel: ClassVar[Callable[..., tuple[float, NDArray[np.float32] | None]]]

    def __init__(self) -> None:
        self._grad: NDArray[np.float32] | None = None

    def __call__(self, prediction: NDArray[np.float32], target: ArrayLike) -> float:
        return self.forward(prediction, target)

    def forward(self, prediction: NDArray[np.float32], target: ArrayLike) -> float:
        shape = getattr(prediction, "shape", None)
        out = self._grad if self._grad is not None and self._grad.shape == shape else None
        loss, self._grad = self.kernel(prediction, target, out=out)
        return loss

    def backward(self) -> NDArray[np.float32]:
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward() first")
        return self._grad


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy, mean over the batch: ``forward(logits (N, K), labels (N,) ints) -> float``,
    ``backward() -> dlogits (N, K)``."""

    kernel = staticmethod(K.cross_entropy)


class MSELoss(_Loss):
    """Mean squared error over every element: ``forward(pred, target) -> float``, ``backward() -> dpred``."""

    kernel = staticmethod(K.mse_loss)
