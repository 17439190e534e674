"""``torch.nn.functional``'s names and arguments, written once on the operator surface: they
run on eager Tensors and graph Nodes alike. softmax, layer_norm, gelu and the losses apply
the composite primitives (ops/composite.py); the rest are made of the primitives they use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import composite, dtypes
from .callers import warn_user
from .primitives import P
from .shapes import ShapeError


def softmax(x, dim: int = -1):
    return x._apply(P.softmax, x, axis=x._axis(dim))


def log_softmax(x, dim: int = -1):
    return x._apply(P.log_softmax, x, axis=x._axis(dim))


def gelu(x, approximate: str = "none"):
    if approximate not in ("none", "tanh"):
        raise x._error("gelu", ValueError, "approximate argument must be either none or tanh, "
                       f"got {approximate!r}")
    return x._apply(P.gelu, x, approximate=approximate)


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


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
    affine = [x._operand(v) for v in (weight, bias) if v is not None]
    return x._apply(P.layer_norm, x, *affine, axes=tuple(range(x.ndim - len(shape), x.ndim)),
                    eps=float(eps), has_weight=weight is not None, has_bias=bias is not None)


def _check_reduction(x, reduction: str) -> None:
    if reduction not in composite.REDUCTIONS:
        raise x._error("loss", ValueError, f"{reduction} is not a valid value for reduction")


def nll_loss(input, target, reduction: str = "mean", *, ignore_index: int = -100):
    """Log-probabilities ``(N, C)`` or ``(C,)``; class indices ``(N,)`` or ``()``; targets equal
    to ``ignore_index`` count for nothing (nor in the mean's count)."""
    _check_reduction(input, reduction)
    return input._apply(P.nll_loss, input, input._operand(target), reduction=reduction,
                        ignore_index=int(ignore_index))


def cross_entropy(input, target, reduction: str = "mean", *, ignore_index: int = -100,
                  label_smoothing: float = 0.0):
    """Logits ``(N, C)`` or ``(C,)``; target class indices ``(N,)``/``()`` or probabilities.
    ``label_smoothing`` ε mixes the target with the uniform distribution over the C classes:
    (1 - ε) of the loss from the targets, ε from the mean of -log p over classes."""
    if input.ndim not in (1, 2):
        raise input._error("cross_entropy", ShapeError, "expects logits of shape (N, C) or "
                           f"(C,), got {tuple(input.shape)}")
    _check_reduction(input, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise input._error("cross_entropy", ValueError, "label_smoothing must be between 0.0 "
                           f"and 1.0. Got: {label_smoothing}")
    class_dim, classes = input.ndim - 1, input.shape[-1]
    log_p = log_softmax(input, class_dim)
    target = input._operand(target)
    if dtypes.is_floating(target.dtype):
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / classes
        return composite.reduce_loss(-(log_p * target).sum(class_dim), reduction)
    loss = nll_loss(log_p, target, reduction, ignore_index=ignore_index)
    if not label_smoothing:
        return loss
    # torch's: the smoothing term over the rows that are not ignored, reduced alike
    kept = target != ignore_index
    smooth = (-log_p.sum(class_dim)).where(kept, 0)
    smooth = smooth.sum() / kept.to(input.dtype).sum() if reduction == "mean" else \
        composite.reduce_loss(smooth, reduction)
    return (1 - label_smoothing) * loss + label_smoothing / classes * smooth


def binary_cross_entropy(input, target, weight: Any = None, reduction: str = "mean"):
    """Probabilities ``input`` against targets of the same size; each log is clamped at -100
    (torch's), so a certain wrong answer costs 100, not inf."""
    _check_reduction(input, reduction)
    target = input._operand(target)
    _check_same_size(input, target)
    weights = [] if weight is None else [input._operand(weight)]
    return input._apply(P.binary_cross_entropy, input, target, *weights, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None):
    """torch's: (1 - y) x + (1 + (pw - 1) y) softplus(-x), which never takes the log of 0 or
    the exp of a large number (softplus is x itself past its threshold)."""
    _check_reduction(input, reduction)
    target = input._operand(target)
    _check_same_size(input, target)
    scale = 1 if pos_weight is None else 1 + (input._operand(pos_weight) - 1) * target
    loss = (1 - target) * input + scale * softplus(-input)
    return composite.reduce_loss(loss if weight is None else loss * input._operand(weight),
                                 reduction)


def _check_same_size(input, target) -> None:
    if _differ(target.shape, input.shape):
        raise input._error("binary_cross_entropy", ValueError,
                           f"Using a target size ({_torch_size(target.shape)}) that is different "
                           f"to the input size ({_torch_size(input.shape)}) is deprecated. "
                           "Please ensure they have the same size.")


def mse_loss(input, target, reduction: str = "mean"):
    _check_reduction(input, reduction)
    target = input._operand(target)
    if _differ(target.shape, input.shape):  # torch's warning, word for word
        warn_user(f"Using a target size ({_torch_size(target.shape)}) that is different to the "
                  f"input size ({_torch_size(input.shape)}). This will likely lead to incorrect "
                  "results due to broadcasting. Please ensure they have the same size.")
    return input._apply(P.mse_loss, input, target, reduction=reduction)


def _differ(a, b) -> bool:
    """Certainly different shapes (an unknown size, None, may be either)."""
    return len(a) != len(b) or any(x is not None and y is not None and x != y
                                   for x, y in zip(a, b))


def _torch_size(shape) -> str:
    return f"torch.Size([{', '.join('?' if d is None else str(d) for d in shape)}])"


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
