"""Optimizers over pulptrain.nn Parameters; every update runs in the C kernels (csrc/fp32/optim.c).

PyTorch semantics: ``step()`` applies one update from the accumulated ``.grad`` of every parameter with
``requires_grad``; ``zero_grad()`` clears the gradients. ``lr`` (and the other hyper-parameters) are plain
attributes and may be changed between steps (learning-rate schedules).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import numpy as np
from numpy.typing import NDArray

from pulptrain import kernels as K
from pulptrain.nn import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    params: list[Parameter]
    lr: float  # may change between steps (a learning-rate schedule)
    steps: int  # updates applied so far

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one Parameter")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"params must be pulptrain.nn.Parameter objects, got {type(p).__name__}")
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = lr
        self.steps = 0  # updates applied so far

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad.fill(0.0)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.requires_grad:
                self._update(i, p)
        self.steps += 1

    def _update(self, index: int, p: Parameter) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: momentum (the buffer starts as the first gradient), dampening, weight decay (L2,
    added to the gradient) and optional Nesterov momentum."""

    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov
        self._buffers: list[NDArray[np.float32] | None] = (
            [np.zeros_like(p.data) for p in self.params] if momentum else [None] * len(self.params)
        )
        self._started = [False] * len(self.params)

    def _update(self, index: int, p: Parameter) -> None:
        K.sgd_step(
            p.data,
            p.grad,
            self._buffers[index],
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            first_step=not self._started[index],
        )
        self._started[index] = True


class Adam(Optimizer):
    """torch.optim.Adam (weight decay added to the gradient), or AdamW with decoupled=True."""

    betas: tuple[float, float]
    eps: float
    weight_decay: float
    decoupled: bool

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(params, lr)
        # tuple() keeps the length: adam_step rejects betas that are not a pair
        self.betas = cast("tuple[float, float]", tuple(betas))
        self.eps, self.weight_decay, self.decoupled = eps, weight_decay, decoupled
        self._exp_avg = [np.zeros_like(p.data) for p in self.params]
        self._exp_avg_sq = [np.zeros_like(p.data) for p in self.params]
        self._counts = [0] * len(self.params)

    def _update(self, index: int, p: Parameter) -> None:
        self._counts[index] += 1
        K.adam_step(
            p.data,
            p.grad,
            self._exp_avg[index],
            self._exp_avg_sq[index],
            step=self._counts[index],
            lr=self.lr,
            betas=self.betas,
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled=self.decoupled,
        )
