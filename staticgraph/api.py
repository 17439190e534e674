"""The ``sg.`` functions: numpy/TF names and arguments (``axis``, ``keepdims``, ``perm``)
over the shared surface; neural-net functions take ``torch.nn.functional``'s arguments.
Each accepts nodes or plain values (which become constants of the default graph)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from .graph import Node, constant
from .ops import dtypes, functional


def as_node(value: Any) -> Node:
    """A node as it is; anything else (numbers, lists, arrays) as a constant."""
    return value if isinstance(value, Node) else constant(value)


def _unary(method: str):
    def function(x: Any) -> Node:
        return getattr(as_node(x), method)()
    function.__name__ = method
    function.__doc__ = f"Elementwise ``{method}``."
    return function


exp, log, sqrt, tanh, sigmoid, relu, abs, erf, sign, negative, sin, cos, floor = map(
    _unary, ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf", "sign", "neg",
             "sin", "cos", "floor"])


def floordiv(x: Any, y: Any) -> Node:
    """Division rounded down (Python's ``//``, tf.math.floordiv); it has no gradient."""
    return as_node(x) // y


def floormod(x: Any, y: Any) -> Node:
    """The remainder with the divisor's sign (Python's ``%``, tf.math.floormod)."""
    return as_node(x) % y


def cumsum(x: Any, axis: int = 0) -> Node:
    return as_node(x).cumsum(axis)


def add(x: Any, y: Any) -> Node: return as_node(x) + y
def subtract(x: Any, y: Any) -> Node: return as_node(x) - y
def multiply(x: Any, y: Any) -> Node: return as_node(x) * y
def divide(x: Any, y: Any) -> Node: return as_node(x) / y
def pow(x: Any, y: Any) -> Node: return as_node(x) ** y
def maximum(x: Any, y: Any) -> Node: return as_node(x).maximum(y)
def minimum(x: Any, y: Any) -> Node: return as_node(x).minimum(y)
def square(x: Any) -> Node:
    x = as_node(x)
    return x * x


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False) -> Node:
    """``a @ b``, each transposed (its last two dimensions) first if asked, as TF's."""
    a = as_node(a)
    b = a._operand(b)
    return (a.mT if transpose_a else a).matmul(b.mT if transpose_b else b)


def zeros(shape: Sequence[int], dtype: Any = dtypes.float32, name: str | None = None) -> Node:
    return constant(np.zeros(shape, dtypes.as_dtype(dtype)), name=name)


def ones(shape: Sequence[int], dtype: Any = dtypes.float32, name: str | None = None) -> Node:
    return constant(np.ones(shape, dtypes.as_dtype(dtype)), name=name)


def zeros_like(x: Any, dtype: Any = None) -> Node:
    """Zeros of ``x``'s shape (known when the graph runs) and dtype (or ``dtype``)."""
    x = as_node(x)
    return x._fill(0).to(x.dtype if dtype is None else dtype)


def ones_like(x: Any, dtype: Any = None) -> Node:
    x = as_node(x)
    return x._fill(1).to(x.dtype if dtype is None else dtype)


def one_hot(indices: Any, depth: int, on_value: Any = 1, off_value: Any = 0,
            dtype: Any = dtypes.float32) -> Node:
    """A new last axis of size ``depth``: ``on_value`` at each index, ``off_value`` elsewhere
    (everywhere for an index outside [0, depth), as TF's)."""
    indices = as_node(indices)
    if indices.dtype.kind not in "iu":
        raise indices._error("one_hot", TypeError, "indices must be integers, got "
                             f"{indices.dtype.name}")
    hot = indices.unsqueeze(-1) == indices._lift(np.arange(depth))
    dtype = dtypes.as_dtype(dtype)
    return hot._lift(on_value, dtype).where(hot, hot._lift(off_value, dtype))


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Node:
    return as_node(x).sum(axis, keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Node:
    return as_node(x).mean(axis, keepdims)


def prod(x: Any, axis: int | None = None, keepdims: bool = False) -> Node:
    return as_node(x).prod(axis, keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Node:
    return as_node(x).amax(axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Node:
    return as_node(x).amin(axis, keepdims)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Node:
    return as_node(x).argmax(axis, keepdims)


def reshape(x: Any, shape: Sequence[int]) -> Node:
    return as_node(x).reshape(tuple(shape))


def transpose(x: Any, perm: Sequence[int] | None = None) -> Node:
    x = as_node(x)
    return x.permute(*(perm if perm is not None else reversed(range(x.ndim))))


def expand_dims(x: Any, axis: int) -> Node:
    return as_node(x).unsqueeze(axis)


def squeeze(x: Any, axis: Any = None) -> Node:
    return as_node(x).squeeze(axis)


def broadcast_to(x: Any, shape: Sequence[int]) -> Node:
    return as_node(x).expand(tuple(shape))


def cast(x: Any, dtype: Any) -> Node:
    return as_node(x).to(dtype)


def stop_gradient(x: Any) -> Node:
    return as_node(x).detach()


def where(condition: Any, x: Any, y: Any) -> Node:
    anchor = next((v for v in (condition, x, y) if isinstance(v, Node)), None)
    if anchor is None:
        condition = as_node(condition)
    return functional.where(condition, x, y)


def concat(values: Sequence[Any], axis: int = 0) -> Node:
    return functional.cat([as_node(v) for v in values], axis)


def stack(values: Sequence[Any], axis: int = 0) -> Node:
    return functional.stack([as_node(v) for v in values], axis)


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None) -> Node:
    """``t`` scaled down to an L2 norm (over ``axes``, default all) of at most ``clip_norm``."""
    t = as_node(t)
    return t * clip_norm / t.norm(2, axes, keepdim=True).maximum(clip_norm)


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None
                        ) -> tuple[list[Node | None], Node]:
    """Every tensor of ``t_list`` scaled by one factor so that their joint L2 norm is at most
    ``clip_norm``; returns them (``None`` entries stay ``None``) and the joint norm. A norm
    that is not finite makes every value nan, as TF's."""
    present = [as_node(t) for t in t_list if t is not None]
    if not present:
        raise ValueError("clip_by_global_norm needs at least one tensor that is not None")
    if use_norm is None:
        use_norm = builtins.sum((t * t).sum() for t in present).sqrt()
    use_norm = present[0]._operand(use_norm)
    scale = clip_norm / use_norm.maximum(clip_norm) + (use_norm - use_norm)  # (+ nan if inf)
    return [None if t is None else as_node(t) * scale for t in t_list], use_norm


def softmax(x: Any, axis: int = -1) -> Node:
    return functional.softmax(as_node(x), axis)


def log_softmax(x: Any, axis: int = -1) -> Node:
    return functional.log_softmax(as_node(x), axis)


def gelu(x: Any, approximate: str = "none") -> Node:
    return functional.gelu(as_node(x), approximate)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Node:
    return functional.softplus(as_node(x), beta, threshold)


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Node:
    return functional.layer_norm(as_node(x), normalized_shape, weight, bias, eps)


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Node:
    logits = as_node(logits)
    return functional.cross_entropy(logits, logits._operand(labels), reduction)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Node:
    input = as_node(input)
    return functional.mse_loss(input, input._operand(target), reduction)


def linear(x: Any, weight: Any, bias: Any = None) -> Node:
    x = as_node(x)
    return functional.linear(x, x._operand(weight), None if bias is None else x._operand(bias))


float32, float64, int32, int64, bool_ = (dtypes.float32, dtypes.float64, dtypes.int32,
                                         dtypes.int64, dtypes.bool_)

__all__ = ["as_node", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf", "sign",
           "negative", "sin", "cos", "floor", "floordiv", "floormod", "cumsum", "square", "add",
           "subtract", "multiply", "divide", "pow", "maximum", "minimum", "matmul", "zeros",
           "ones", "zeros_like", "ones_like", "one_hot", "sum", "mean", "prod", "max", "min",
           "argmax", "reshape", "transpose", "expand_dims", "squeeze", "broadcast_to", "cast",
           "stop_gradient", "where", "concat", "stack", "clip_by_norm", "clip_by_global_norm",
           "softmax", "log_softmax", "gelu", "softplus", "layer_norm", "cross_entropy",
           "mse_loss", "linear", "float32", "float64", "int32", "int64", "bool_"]
