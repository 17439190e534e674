"""Composites written once on the operator surface: they run on eager Tensors and graph
Nodes alike, and their gradients come from the primitives they are made of. Arguments follow
``torch.nn.functional``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes
from .primitives import P
from .shapes import ShapeError


def _stable_shift(x, dim: int):
    # Subtracting the max changes nothing mathematically, so it needs no gradient.
    return x - x.amax(dim, keepdim=True).detach()


def softmax(x, dim: int = -1):
    e = _stable_shift(x, dim).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(x, dim: int = -1):
    shifted = _stable_shift(x, dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu(x, approximate: str = "none"):
    if approximate == "none":
        return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())
    if approximate == "tanh":
        return 0.5 * x * (1 + (_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))).tanh())
    raise x._error("gelu", ValueError, "approximate argument must be either none or tanh, got "
                   f"{approximate!r}")


def relu(x):
    return x.relu()


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    return x._apply(P.softplus, x, beta=float(beta), threshold=float(threshold))


def layer_norm(x, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise x._error("layer_norm", ShapeError,
                       f"Given normalized_shape={list(shape)}, expected input with shape "
                       f"[*, {', '.join(map(str, shape))}], but got input of size "
                       f"{list(x.shape)}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(axes, keepdim=True)
    variance = (centered * centered).mean(axes, keepdim=True)
    y = centered / (variance + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _reduce_loss(loss, reduction: str):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise loss._error("loss", ValueError, f"{reduction} is not a valid value for reduction")


def cross_entropy(input, target, reduction: str = "mean"):
    """Logits ``(N, C)`` or ``(C,)``; target class indices ``(N,)``/``()`` or probabilities."""
    if input.ndim not in (1, 2):
        raise input._error("cross_entropy", ShapeError, "expects logits of shape (N, C) or "
                           f"(C,), got {tuple(input.shape)}")
    class_dim = input.ndim - 1
    log_p = log_softmax(input, class_dim)
    if dtypes.is_floating(target.dtype):
        return _reduce_loss(-(log_p * target).sum(class_dim), reduction)
    classes = input.shape[class_dim]
    if classes is None:
        raise input._error("cross_entropy", ShapeError, "needs the number of classes (the last "
                           "dimension of the logits) to be known")
    # The one-hot mask is an elementwise comparison, so the whole loss fuses into one kernel.
    target = target._apply(P.check_index, target, high=classes)
    one_hot = target.unsqueeze(-1) == input._lift(np.arange(classes))
    picked = (log_p * one_hot.to(log_p.dtype)).sum(class_dim)
    return _reduce_loss(-picked, reduction)


def mse_loss(input, target, reduction: str = "mean"):
    diff = input - target
    return _reduce_loss(diff * diff, reduction)


def linear(input, weight, bias: Any = None):
    y = input @ weight.t()
    return y if bias is None else y + bias


def cat(tensors: Sequence[Any], dim: int = 0):
    first = tensors[0]
    values = [first._operand(t) for t in tensors]
    return first._apply(P.concat, *values, axis=first._axis(dim))


def stack(tensors: Sequence[Any], dim: int = 0):
    first = tensors[0]
    axis = first._axis(dim, first.ndim + 1)
    return cat([first._operand(t).unsqueeze(axis) for t in tensors], axis)


def where(condition, input, other):
    """Elementwise ``input if condition else other``; either value may be a Python number."""
    anchor = next(v for v in (input, other, condition) if hasattr(v, "_apply"))
    dtype = dtypes.result_type(*(v for v in (input, other)))
    values = [anchor._lift(v, dtype) if isinstance(v, (bool, int, float)) else anchor._operand(v)
              for v in (input, other)]
    return values[0].where(anchor._operand(condition), values[1])
