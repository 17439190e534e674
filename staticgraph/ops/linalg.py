"""Matrix product with numpy's ``matmul`` semantics: 1-D operands, batches, broadcasting."""

from __future__ import annotations

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError, broadcast_shapes


def _matmul_shape(a, b) -> Shape:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("both arguments to matmul need to be at least 1D, but they are "
                         f"{a.ndim}D and {b.ndim}D")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if None not in (k_a, k_b) and k_a != k_b:
        raise ShapeError(_mismatch_message(a.shape, b.shape))
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    rows = a.shape[-2:-1]  # () for a vector
    cols = b.shape[-1:] if b.ndim > 1 else ()
    return batch + rows + cols


def _mismatch_message(sa: Shape, sb: Shape) -> str:
    if len(sa) == 2 and len(sb) == 2:
        a, b = (["?" if d is None else str(d) for d in s] for s in (sa, sb))
        return f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(a)} and {'x'.join(b)})"
    return f"matmul: shapes {tuple(sa)} and {tuple(sb)} cannot be multiplied"


def _a_vjp(g, out, a, b):
    if b.ndim == 1:  # (..., k) @ (k,) -> (...): an outer product with the vector
        return g.unsqueeze(-1) * b
    if a.ndim == 1:  # (k,) @ (..., k, n) -> (..., n); the batch is summed by unbroadcast
        return (b @ g.unsqueeze(-1)).squeeze(-1)
    return g @ b.mT


def _b_vjp(g, out, a, b):
    if a.ndim == 1:
        return g * a if b.ndim == 1 else a.unsqueeze(-1) * g.unsqueeze(-2)
    if b.ndim == 1:
        return (a.mT @ g.unsqueeze(-1)).squeeze(-1)
    return a.mT @ g


_TORCH_NAMES = {"float32": "float", "float64": "double", "int64": "long", "int32": "int",
                "int16": "short", "int8": "signed char", "uint8": "unsigned char",
                "float16": "c10::Half", "bool": "bool"}


def _matmul_dtype(a, b) -> np.dtype:
    """One dtype on both sides, as torch requires (numpy would promote float32 @ float64 to
    float64 silently, doubling the cost of a model fed the wrong dtype)."""
    if a.dtype != b.dtype:
        names = (_TORCH_NAMES.get(d.name, d.name) for d in (a.dtype, b.dtype))
        raise dtypes.DTypeError("expected m1 and m2 to have the same dtype, but got: "
                                + " != ".join(names))
    return a.dtype


matmul = Primitive(name="matmul",
                   kind=Kind.OPAQUE,
                   kernel=np.matmul,
                   shape_rule=_matmul_shape,
                   dtype_rule=_matmul_dtype,
                   vjps=(_a_vjp, _b_vjp),
                   saves=Saves.INPUTS,
                   grad_name="MmBackward0")

PRIMITIVES = (matmul,)
