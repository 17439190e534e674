"""The ``sg.`` functions: numpy/TF names and arguments (``axis``, ``keepdims``, ``perm``)
over the shared surface; neural-net functions take ``torch.nn.functional``'s arguments.
Each accepts nodes or plain values (which become constants of the default graph)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


exp, log, sqrt, tanh, sigmoid, relu, abs, erf, sign, negative = map(
    _unary, ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf", "sign", "neg"])


def add(x: Any, y: Any) -> Node: return as_node(x) + y
def subtract(x: Any, y: Any) -> Node: return as_node(x) - y
def multiply(x: Any, y: Any) -> Node: return as_node(x) * y
def divide(x: Any, y: Any) -> Node: return as_node(x) / y
def pow(x: Any, y: Any) -> Node: return as_node(x) ** y
def maximum(x: Any, y: Any) -> Node: return as_node(x).maximum(y)
def minimum(x: Any, y: Any) -> Node: return as_node(x).minimum(y)
def matmul(a: Any, b: Any) -> Node: return as_node(a).matmul(b)


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
           "negative", "add", "subtract", "multiply", "divide", "pow", "maximum", "minimum",
           "matmul", "sum", "mean", "prod", "max", "min", "argmax", "reshape", "transpose",
           "expand_dims", "squeeze", "broadcast_to", "cast", "stop_gradient", "where", "concat",
           "stack", "softmax", "log_softmax", "gelu", "softplus", "layer_norm", "cross_entropy",
           "mse_loss", "linear", "float32", "float64", "int32", "int64", "bool_"]
