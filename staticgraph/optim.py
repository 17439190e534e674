"""Optimizers for graphs: ``opt.minimize(loss)`` builds the gradient nodes and one update op
to fetch (``compute_gradients`` then ``apply_gradients``, as TF1 splits it). The update
formulas are ``staticgraph.ops.optimizers``, the same code eager's ``optim`` runs; slots
(momentum, Adam's moments) are non-trainable Variables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .gradients import gradients
from .graph import Node, Variable, assign, group
from .ops import optimizers


class Optimizer:
    def minimize(self, loss: Node, var_list: Sequence[Node] | None = None) -> Node:
        """An op that, when run, moves every variable one step down ``loss``'s gradient:
        ``apply_gradients(compute_gradients(loss, var_list))``."""
        grads_and_vars = self.compute_gradients(loss, var_list)
        if all(g is None for g, _ in grads_and_vars):
            raise ValueError(f"{loss.name!r} does not depend on any of the variables "
                             f"{[v.name for _, v in grads_and_vars]}")
        return self.apply_gradients(grads_and_vars)

    def compute_gradients(self, loss: Node, var_list: Sequence[Node] | None = None
                          ) -> list[tuple[Node | None, Node]]:
        """``(gradient, variable)`` for each of ``var_list`` (default: the graph's trainable
        Variables); the gradient is ``None`` where ``loss`` does not depend on the variable."""
        variables = list(var_list) if var_list is not None else loss.graph.trainable_variables
        if not variables:
            raise ValueError(f"no trainable variables to minimize {loss.name!r} over")
        with loss.graph.as_default():
            return list(zip(gradients(loss, variables), variables))

    def apply_gradients(self, grads_and_vars: Sequence[tuple[Node | None, Node]]) -> Node:
        """An op that, when run, updates each variable with its gradient (the pairs of
        ``compute_gradients``, maybe changed: clipped, scaled); ``None`` gradients are
        skipped."""
        pairs = [(v, g) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError(f"No gradients provided for any variable: "
                             f"{[v.name for _, v in grads_and_vars]}")
        with pairs[0][0].graph.as_default():
            return group(*self._updates(pairs), name="minimize")

    def _updates(self, pairs: list[tuple[Node, Node]]) -> list[Node]:
        raise NotImplementedError


def _slot(variable: Node, name: str) -> Node:
    return Variable(np.zeros(variable.shape, variable.dtype), name=f"{variable.name}/{name}",
                    trainable=False)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, weight decay and Nesterov
    (torch.optim.SGD)."""

    def __init__(self, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, dampening: float = 0.0) -> None:
        self.lr, self.momentum, self.weight_decay, self.nesterov, self.dampening = (
            lr, momentum, weight_decay, nesterov, dampening)

    def _step(self, v: Node, g: Node, buffer: Node | None):
        return optimizers.sgd_step(v, g, buffer, lr=self.lr, momentum=self.momentum,
                                   dampening=self.dampening, weight_decay=self.weight_decay,
                                   nesterov=self.nesterov)

    def _updates(self, pairs):
        ops = []
        # torch's first step sets the buffer to the gradient. Without dampening, a zero
        # buffer gives exactly that (0*m + 1*g); with it, the first step is chosen by a flag.
        first = None
        if self.momentum and self.dampening:
            started = Variable(np.array(False), name="sgd/started", trainable=False)
            first = ~started
            ops.append(assign(started, started | True))
        for v, g in pairs:
            buffer = _slot(v, "momentum") if self.momentum else None
            new_v, new_buffer = self._step(v, g, buffer)
            if first is not None:
                first_v, first_buffer = self._step(v, g, None)
                new_v, new_buffer = new_v.where(~first, first_v), \
                    new_buffer.where(~first, first_buffer)
            ops.append(assign(v, new_v))
            if buffer is not None:
                ops.append(assign(buffer, new_buffer))
        return ops


class Adam(Optimizer):
    """Adam (torch.optim.Adam); the step count is a Variable of the parameters' dtype."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False) -> None:
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.amsgrad, self.decoupled_weight_decay = amsgrad, decoupled_weight_decay

    def _updates(self, pairs):
        # In the parameters' dtype, as eager's Python int meets them (float32 counts exactly
        # up to 2**24 steps).
        step = Variable(np.zeros((), pairs[0][0].dtype), name="adam/step", trainable=False)
        t = step + 1
        ops = [assign(step, t)]
        for v, g in pairs:
            m, s = _slot(v, "exp_avg"), _slot(v, "exp_avg_sq")
            top = _slot(v, "max_exp_avg_sq") if self.amsgrad else None
            new_v, new_m, new_s, new_top = optimizers.adam_step(
                v, g, m, s, t, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                eps=self.eps, weight_decay=self.weight_decay, max_exp_avg_sq=top,
                decoupled_weight_decay=self.decoupled_weight_decay)
            ops += [assign(v, new_v), assign(m, new_m), assign(s, new_s)]
            if top is not None:
                ops.append(assign(top, new_top))
        return ops


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; its default decay is 0.01)."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (torch.optim.RMSprop)."""

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        self.lr, self.alpha, self.eps, self.weight_decay = lr, alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered

    def _updates(self, pairs):
        ops = []
        for v, g in pairs:
            square = _slot(v, "square_avg")
            mean = _slot(v, "grad_avg") if self.centered else None
            buffer = _slot(v, "momentum_buffer") if self.momentum > 0 else None
            new_v, new_square, new_mean, new_buffer = optimizers.rmsprop_step(
                v, g, square, mean, buffer, lr=self.lr, alpha=self.alpha, eps=self.eps,
                weight_decay=self.weight_decay, momentum=self.momentum)
            ops += [assign(v, new_v), assign(square, new_square)]
            ops += [assign(s, new) for s, new in ((mean, new_mean), (buffer, new_buffer))
                    if s is not None]
        return ops


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad); the step count is a Variable of the parameters' dtype."""

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        self.lr, self.lr_decay, self.weight_decay, self.eps = lr, lr_decay, weight_decay, eps
        self.initial_accumulator_value = initial_accumulator_value

    def _updates(self, pairs):
        step = Variable(np.zeros((), pairs[0][0].dtype), name="adagrad/step", trainable=False)
        t = step + 1
        ops = [assign(step, t)]
        for v, g in pairs:
            total = Variable(np.full(v.shape, self.initial_accumulator_value, v.dtype),
                             name=f"{v.name}/sum", trainable=False)
            new_v, new_total = optimizers.adagrad_step(
                v, g, total, t, lr=self.lr, lr_decay=self.lr_decay,
                weight_decay=self.weight_decay, eps=self.eps)
            ops += [assign(v, new_v), assign(total, new_total)]
        return ops
