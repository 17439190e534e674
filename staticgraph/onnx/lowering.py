"""What the ONNX converters share: the converter type, ONNX's element types, and small
lowerings several converters use (reshape, reduce, count)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from onnx import helper

from ..ops.shapes import Shape

if TYPE_CHECKING:
    from .export import Context

Converter = Callable[["Context"], str]

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def onnx_type(dtype: np.dtype) -> int:
    """TensorProto's element type for a numpy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def reduce(ctx: Context, op_type: str, x: str, axes: tuple[int, ...], keepdims: bool) -> str:
    """A Reduce* operator: axes are an input from opset 13 for ReduceSum, 18 for the others.
    No axes reduce nothing here (numpy), everything in ONNX: then there is nothing to do."""
    if not axes:
        return x
    if ctx.opset >= (13 if op_type == "ReduceSum" else 18):
        return ctx.emit(op_type, x, ctx.ints(axes), keepdims=int(keepdims))
    return ctx.emit(op_type, x, axes=list(axes), keepdims=int(keepdims))


def reshape(ctx: Context, x: str, shape: Shape | str) -> str:
    """Reshape to static sizes (-1 for at most one unknown) or to a shape value computed at
    run time (its name). A 0 here is a size, never ONNX's "copy this dimension": from opset
    14 allowzero says so (a run-time 0, an empty batch, is misread before 14)."""
    if not isinstance(shape, str):
        if 0 in shape:
            ctx.require(14, "reshape to a zero-size dimension (Reshape allowzero)")
        shape = ctx.ints(shape)
    return ctx.emit("Reshape", x, shape, **({"allowzero": 1} if ctx.opset >= 14 else {}))


def unknown_size_shape(shape: Shape) -> tuple[int, ...] | None:
    """``shape`` as Reshape's target when at most one size is unknown (-1), else None."""
    if sum(d is None for d in shape) > 1:
        return None
    return tuple(-1 if d is None else d for d in shape)


def count(ctx: Context, k: int, keepdims: bool) -> str:
    """Input ``k``'s number of elements, int64, as a scalar (Range's) or a 1-element vector
    (ConstantOfShape's): a constant where the shape is known."""
    shape = ctx.shape(k)
    if None in shape:
        return ctx.emit("ReduceProd", ctx.shape_of(k), keepdims=int(keepdims))
    n = np.array(np.prod(shape, dtype=np.int64))
    return ctx.const(n.reshape(1) if keepdims else n)
