"""Optimizer updates written once on the operator surface: pure functions that take the
parameter, its gradient and the optimizer state, and return the new values (nothing is
written in place), so eager's ``optim`` and the graph's run the same formulas.

They follow torch.optim's default single-tensor CPU path operation by operation, including
the order of each multiply and add, so that eager agrees with torch to the last bits.
"""

from __future__ import annotations

from typing import TypeVar

from .surface import Surface

T = TypeVar("T", bound=Surface)


def _lerp(start: T, end: T, weight: float) -> T:
    """torch.lerp's formula, which picks the form that is exact at its nearer end."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def sgd_step(param: T, grad: T, momentum_buffer: T | None, *, lr: float, momentum: float = 0.0,
             dampening: float = 0.0, weight_decay: float = 0.0,
             nesterov: bool = False) -> tuple[T, T | None]:
    """One torch.optim.SGD step; returns ``(new_param, new_momentum_buffer)``.

    g = grad + weight_decay * param
    buf = g on the first step (``momentum_buffer`` None), else momentum * buf + (1 - dampening) * g
    d = g + momentum * buf if nesterov else buf      (d = g when momentum is 0; buf stays None)
    param = param - lr * d

    The first buffer *is* ``g``; a caller that later mutates ``grad`` in place must copy it.
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if momentum_buffer is None:
            momentum_buffer = grad
        else:
            momentum_buffer = momentum_buffer * momentum + (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    return param - lr * grad, momentum_buffer


def adam_step(param: T, grad: T, exp_avg: T, exp_avg_sq: T, step: int | T, *,
              lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0, max_exp_avg_sq: T | None = None,
              decoupled_weight_decay: bool = False) -> tuple[T, T, T, T | None]:
    """One torch.optim.Adam step, ``step`` counting from 1 (an int, or a graph value); returns
    ``(new_param, new_exp_avg, new_exp_avg_sq, new_max_exp_avg_sq)``. Passing
    ``max_exp_avg_sq`` (zeros at first) turns on AMSGrad; without it the last result is None.
    ``decoupled_weight_decay`` is AdamW's: the parameter shrinks, the gradient is left alone.

    g = grad + weight_decay * param                 (AdamW: param = param * (1 - lr * wd))
    m = lerp(m, g, 1 - beta1)                       = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v)                           (AMSGrad: v_max replaces v below)
    denom = sqrt(v) / sqrt(1 - beta2 ** step) + eps
    param = param - lr / (1 - beta1 ** step) * m / denom
    """
    if weight_decay != 0 and decoupled_weight_decay:
        param = param * (1 - lr * weight_decay)
    elif weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg = _lerp(exp_avg, grad, 1 - beta1)
    exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    second_moment = exp_avg_sq
    if max_exp_avg_sq is not None:
        max_exp_avg_sq = second_moment = max_exp_avg_sq.maximum(exp_avg_sq)
    step_size = lr / (1 - beta1 ** step)
    denom = second_moment.sqrt() / (1 - beta2 ** step) ** 0.5 + eps
    return param - step_size * exp_avg / denom, exp_avg, exp_avg_sq, max_exp_avg_sq


def rmsprop_step(param: T, grad: T, square_avg: T, grad_avg: T | None,
                 momentum_buffer: T | None, *, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0) -> tuple[T, T, T | None, T | None]:
    """One torch.optim.RMSprop step; ``grad_avg`` (zeros at first) makes it centered, and
    ``momentum_buffer`` (zeros at first) is used when ``momentum`` > 0. Returns
    ``(new_param, new_square_avg, new_grad_avg, new_momentum_buffer)``.

    g = grad + weight_decay * param
    v = alpha * v + (1 - alpha) * g * g
    avg = sqrt(v - mean_g * mean_g) + eps, mean_g = lerp(mean_g, g, 1 - alpha)  (centered)
          sqrt(v) + eps                                                        (otherwise)
    buf = momentum * buf + g / avg; param = param - lr * buf      (momentum)
    param = param - lr * g / avg                                  (otherwise)
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg = square_avg * alpha + (1 - alpha) * grad * grad
    if grad_avg is not None:
        grad_avg = _lerp(grad_avg, grad, 1 - alpha)
        avg = (square_avg - grad_avg * grad_avg).sqrt() + eps
    else:
        avg = square_avg.sqrt() + eps
    if momentum > 0:
        momentum_buffer = momentum_buffer * momentum + grad / avg
        return param - lr * momentum_buffer, square_avg, grad_avg, momentum_buffer
    return param - lr * (grad / avg), square_avg, grad_avg, momentum_buffer


def adagrad_step(param: T, grad: T, state_sum: T, step: int | T, *, lr: float = 1e-2,
                 lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10) -> tuple[T, T]:
    """One torch.optim.Adagrad step, ``step`` counting from 1; returns
    ``(new_param, new_state_sum)``.

    g = grad + weight_decay * param
    s = s + g * g
    param = param - lr / (1 + (step - 1) * lr_decay) * g / (sqrt(s) + eps)
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param
    step_size = lr / (1 + (step - 1) * lr_decay)
    state_sum = state_sum + grad * grad
    return param - step_size * (grad / (state_sum.sqrt() + eps)), state_sum
