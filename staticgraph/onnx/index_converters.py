"""ONNX converters of the indexing primitives: numpy's basic and advanced indexing as
Slice / Gather / GatherND, their gradients as ScatterElements over flat positions, and the
index vectors whose length the data decides (NonZero, Range)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import numpy_helper

from ..ops import dtypes
from ..ops.shapes import Shape, broadcast_shapes
from .lowering import INT64_MAX, INT64_MIN, count, reshape

if TYPE_CHECKING:
    from .export import Context


def index(ctx: Context, x: str, shape: Shape, first_array: int, spec: tuple) -> str:
    """numpy's ``x[spec]`` in ONNX, for a value ``x`` of ``shape``; index arrays are the
    node's inputs from ``first_array`` on. New axes are inserted first (Unsqueeze), so each
    entry then uses up dimensions of x; slices (and ints, without index arrays) are one
    Slice; index arrays are a Gather (one) or a GatherND over the indexed dimensions moved to
    the front (several, ints among them), with numpy's placement of the result's dimensions."""
    def array_ndim(entry: tuple) -> int:
        k = first_array + entry[1]
        return len(ctx.shape(k)) if ctx.dtype(k) == dtypes.bool_ else 1

    used = sum(array_ndim(e) if e[0] == "array" else e[0] in ("int", "slice") for e in spec)
    at = next((i for i, e in enumerate(spec) if e[0] == "ellipsis"), len(spec))
    entries = spec[:at] + (("slice", None, None, None),) * (len(shape) - used) + spec[at + 1:]
    has_array = any(e[0] == "array" for e in entries)

    entries, new_axes, dim = list(entries), [], 0
    for i, entry in enumerate(entries):
        if entry[0] == "new":  # becomes a size-1 dimension of x, taken whole
            new_axes.append(dim)
            entries[i] = ("slice", None, None, None)
        dim += array_ndim(entry) if entry[0] == "array" else 1
    if new_axes:
        x = ctx.emit("Unsqueeze", x, ctx.ints(new_axes))

    starts, ends, axes, steps, squeezed = [], [], [], [], []
    advanced: list[tuple[int, str, Shape]] = []  # (dimension, int64 indices, their shape)
    dim = 0
    for entry in entries:
        tag = entry[0]
        if tag == "slice" and entry[1:] not in ((None, None, None), (None, None, 1)):
            start, stop, step = entry[1:]
            step = 1 if step is None else step
            starts.append((0 if step > 0 else INT64_MAX) if start is None else start)
            ends.append((INT64_MAX if step > 0 else INT64_MIN) if stop is None else stop)
            axes.append(dim)
            steps.append(step)
        elif tag == "int" and not has_array:
            starts.append(entry[1])
            ends.append(INT64_MAX if entry[1] == -1 else entry[1] + 1)
            axes.append(dim)
            steps.append(1)
            squeezed.append(dim)
        elif tag == "int":  # beside index arrays numpy treats an int as a 0-d index array
            advanced.append((dim, ctx.const(np.array(entry[1], np.int64)), ()))
        elif tag == "array":
            k = first_array + entry[1]
            if ctx.dtype(k) != dtypes.bool_:
                advanced.append((dim, ctx.input(k, dtypes.int64), ctx.shape(k)))
            elif not ctx.shape(k):
                raise ctx.error("a 0-d boolean index has no ONNX equivalent")
            else:  # a mask is the index arrays of its true elements, one per dimension
                rows = ctx.emit("NonZero", ctx.input(k, dtypes.bool_))
                for j in range(len(ctx.shape(k))):
                    row = ctx.emit("Gather", rows, ctx.const(np.array(j, np.int64)), axis=0)
                    advanced.append((dim + j, row, (None,)))
        dim += array_ndim(entry) if tag == "array" else 1
    if axes:
        x = ctx.emit("Slice", x, ctx.ints(starts), ctx.ints(ends), ctx.ints(axes),
                     ctx.ints(steps))
    if squeezed:
        return ctx.emit("Squeeze", x, ctx.ints(squeezed))
    if not advanced:
        return x
    if len(advanced) == 1:
        at, indices, _ = advanced[0]
        return ctx.emit("Gather", x, indices, axis=at)
    return _gather_nd(ctx, x, dim, advanced)


def _gather_nd(ctx: Context, x: str, ndim: int, advanced: list[tuple[int, str, Shape]]) -> str:
    """Several index arrays: broadcast together, stacked, gathered over their dimensions
    moved to the front; numpy puts the result's indexed dimensions where the arrays stood
    when they were adjacent, else first."""
    dims = [d for d, _, _ in advanced]
    rest = [d for d in range(ndim) if d not in dims]
    batch = broadcast_shapes(*(s for _, _, s in advanced))
    if None in batch:  # a mask's count of true elements: broadcast by Shape at run time
        total = advanced[0][1]
        for _, indices, _ in advanced[1:]:
            total = ctx.emit("Add", total, indices)
        target = ctx.emit("Shape", total)
    else:
        target = ctx.ints(batch)
    stacked = ctx.emit("Concat", *(
        ctx.emit("Unsqueeze", ctx.emit("Expand", indices, target), ctx.ints([-1]))
        for _, indices, _ in advanced), axis=-1)
    if dims + rest != list(range(ndim)):
        x = ctx.emit("Transpose", x, perm=dims + rest)
    out = ctx.emit("GatherND", x, stacked)
    first, nb = dims[0], len(batch)
    if dims == list(range(first, first + len(dims))) and first > 0:
        perm = [nb + j for j in range(first)] + list(range(nb)) + \
            [nb + j for j in range(first, len(rest))]
        out = ctx.emit("Transpose", out, perm=perm)
    return out


def _positions(ctx: Context, k: int) -> str:
    """The flat position of every element of input ``k``: an int64 value of its shape."""
    zero, one = ctx.const(np.array(0, np.int64)), ctx.const(np.array(1, np.int64))
    flat = ctx.emit("Range", zero, count(ctx, k, keepdims=False), one)
    return reshape(ctx, flat, ctx.shape_of(k))


def _flat(ctx: Context, x: str) -> str:
    return reshape(ctx, x, (-1,))


def convert_getitem(ctx: Context) -> str:
    return index(ctx, ctx.input(0), ctx.shape(0), 1, ctx.params["spec"])


def convert_scatter_add(ctx: Context) -> str:
    """Zeros of ``like``'s shape with g added at ``like[index]``: the index applied to the
    flat positions of ``like`` says where; ScatterElements adds there (repeated indices
    accumulate: reduction="add", opset 16; basic indexing never repeats one)."""
    picked = index(ctx, _positions(ctx, 1), ctx.shape(1), 2, ctx.params["spec"])
    zero = numpy_helper.from_array(np.zeros(1, ctx.node.dtype))
    zeros = ctx.emit("ConstantOfShape", count(ctx, 1, keepdims=True), value=zero)
    if len(ctx.node.inputs) > 2:
        ctx.require(16, "scatter_add with index arrays (ScatterElements reduction='add')")
    mode = {"reduction": "add"} if ctx.opset >= 16 else {}
    out = ctx.emit("ScatterElements", zeros, _flat(ctx, picked), _flat(ctx, ctx.input(0)),
                   axis=0, **mode)
    return reshape(ctx, out, ctx.shape_of(1))


def convert_index_put(ctx: Context) -> str:
    """x with ``x[index] = value``: the index applied to x's flat positions, value broadcast
    to them, ScatterElements (a repeated index takes the last value, as numpy's does)."""
    picked = index(ctx, _positions(ctx, 0), ctx.shape(0), 2, ctx.params["spec"])
    value = ctx.emit("Expand", ctx.input(1), ctx.emit("Shape", picked))
    out = ctx.emit("ScatterElements", _flat(ctx, ctx.input(0)), _flat(ctx, picked),
                   _flat(ctx, value), axis=0)
    return reshape(ctx, out, ctx.shape_of(0))


def convert_nonzero(ctx: Context) -> str:
    """NonZero gives the positions as (ndim, n), torch (n, ndim): Transpose. A 0-d value is
    made 1-D first (onnxruntime's NonZero of a scalar has one row, ONNX's shapes none) and its
    row dropped."""
    if ctx.shape(0):
        return ctx.emit("Transpose", ctx.emit("NonZero", ctx.input(0, ctx.dtype(0))))
    rows = ctx.emit("NonZero", reshape(ctx, ctx.input(0, ctx.dtype(0)), (1,)))
    none = ctx.emit("Slice", rows, ctx.ints([0]), ctx.ints([0]), ctx.ints([0]))
    return ctx.emit("Transpose", none)


def convert_check_index(ctx: Context) -> str:
    """The labels themselves: ONNX has no assertion, so an out-of-range label is not caught
    (cross_entropy's one-hot then gives that row no target, a loss of 0)."""
    return ctx.input(0)


def convert_arange_like(ctx: Context) -> str:
    """Range(0, n, 1) with n the size of the input's axis (a constant where it is known)."""
    axis = ctx.params["axis"]
    size = ctx.shape(0)[axis]
    n = ctx.const(np.array(size, np.int64)) if size is not None else \
        ctx.emit("Squeeze", ctx.emit("Gather", ctx.shape_of(0), ctx.ints([axis])), ctx.ints([0]))
    return ctx.emit("Range", ctx.const(np.array(0, np.int64)), n,
                    ctx.const(np.array(1, np.int64)))
