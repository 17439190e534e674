"""Tensor functions in the ``torch`` namespace: the shared composites and a few primitives
that read better as functions."""

from __future__ import annotations

from typing import Any

from staticgraph.ops.functional import cat, stack, where

from .tensor import Tensor

__all__ = ["cat", "concat", "stack", "where", "matmul", "exp", "log", "sqrt", "tanh",
           "sigmoid", "relu", "abs", "erf", "maximum", "minimum", "sum", "mean", "prod", "max",
           "min",
           "softmax", "log_softmax", "reshape", "transpose", "permute", "clamp", "flatten",
           "unsqueeze", "squeeze", "argmax", "nonzero", "floor", "sin", "cos", "floor_divide",
           "remainder", "cumsum", "gather", "var", "std", "norm", "any", "all", "masked_fill",
           "chunk", "split"]

concat = cat


def _method(name: str):
    def call(input: Tensor, *args: Any, **kwargs: Any):
        return getattr(input, name)(*args, **kwargs)
    call.__name__ = name
    call.__doc__ = f"``input.{name}(...)``, as ``torch.{name}``."
    return call


matmul, exp, log, sqrt, tanh, sigmoid, relu, abs, erf = map(
    _method, ["matmul", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "erf"])
maximum, minimum, sum, mean, prod, max, min, softmax, log_softmax = map(
    _method, ["maximum", "minimum", "sum", "mean", "prod", "max", "min", "softmax",
              "log_softmax"])
reshape, transpose, permute, clamp, flatten, unsqueeze, squeeze, argmax, nonzero = map(
    _method, ["reshape", "transpose", "permute", "clamp", "flatten", "unsqueeze", "squeeze",
              "argmax", "nonzero"])
floor, sin, cos, floor_divide, remainder, cumsum, gather, var, std, norm = map(
    _method, ["floor", "sin", "cos", "floor_divide", "remainder", "cumsum", "gather", "var", "std",
              "norm"])
any, all, masked_fill, chunk, split = map(
    _method, ["any", "all", "masked_fill", "chunk", "split"])
