"""The ONNX backend's table, keyed by primitive (onnx-chainer's per-function converters): how
each primitive is written as ONNX operators, for the opset being exported.

A converter is a small function ``converter(ctx) -> str``: it reads the node through ``ctx``
(params, input shapes and dtypes, the opset), adds ONNX nodes and constants with
``ctx.emit`` / ``ctx.const``, and returns the name of the value that holds the node's
result, in the node's dtype. ``ctx.input(i)`` is input ``i`` cast to the node's dtype: ONNX
operators want inputs of one type where torch's promotion mixes them. ``ctx.require(opset,
what)`` refuses an opset too old for what the converter needs; ``ctx.decomposed()`` writes a
composite as its decomposition (where the opset has no operator for it).

``NOT_EXPORTABLE`` names, with the reason, any primitive ONNX cannot express;
``tests/test_onnx_export.py`` fails naming any primitive that is in neither table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from onnx import helper, numpy_helper

from ..ops import P, Primitive, dtypes
from ..ops.elementwise import clamp_bounds
from ..ops.shapes import Shape, broadcast_shapes, sum_to_axes

if TYPE_CHECKING:
    from .export import Context

Converter = Callable[["Context"], str]

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def onnx_type(dtype: np.dtype) -> int:
    """TensorProto's element type for a numpy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


# -- helpers shared by converters --------------------------------------------------------------

def _op(op_type: str, dtype: np.dtype | None = None) -> Converter:
    """An ONNX operator of the same meaning, on inputs cast to ``dtype`` (the node's own by
    default)."""
    def convert(ctx: Context) -> str:
        return ctx.emit(op_type, *(ctx.input(i, dtype) for i in range(len(ctx.node.inputs))))
    convert.__name__ = f"convert_{op_type}"
    return convert


def _compare(op_type: str, negate: bool = False) -> Converter:
    """A comparison: both sides in their promoted dtype (the node's own is bool)."""
    def convert(ctx: Context) -> str:
        dtype = dtypes.result_type(*ctx.node.inputs)
        if dtype == dtypes.bool_ and op_type != "Equal":  # ONNX orders numbers, not bools
            dtype = dtypes.uint8
        out = ctx.emit(op_type, ctx.input(0, dtype), ctx.input(1, dtype))
        return ctx.emit("Not", out) if negate else out
    convert.__name__ = f"convert_{op_type}"
    return convert


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


def _unknown_size_shape(shape: Shape) -> tuple[int, ...] | None:
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


# -- elementwise -----------------------------------------------------------------------------

def convert_softplus(ctx: Context) -> str:
    """torch's softplus(x, beta, threshold): Softplus(beta x) / beta, and x itself where
    beta x > threshold."""
    beta, threshold = ctx.params["beta"], ctx.params["threshold"]
    x = ctx.input(0)
    scaled = x if beta == 1 else ctx.emit("Mul", x, ctx.scalar(beta))
    soft = ctx.emit("Softplus", scaled)
    if beta != 1:
        soft = ctx.emit("Div", soft, ctx.scalar(beta))
    linear = ctx.emit("Greater", scaled, ctx.scalar(threshold))
    return ctx.emit("Where", linear, x, soft)


def convert_clamp(ctx: Context) -> str:
    """Clip where the bounds are 0-d; Max and Min where they are tensors that broadcast
    (Clip's are scalars)."""
    low, high = clamp_bounds(tuple(range(1, len(ctx.node.inputs))), ctx.params["has_min"],
                             ctx.params["has_max"])
    if all(not ctx.shape(k) for k in (low, high) if k is not None):
        return ctx.emit("Clip", ctx.input(0), "" if low is None else ctx.input(low),
                        *([] if high is None else [ctx.input(high)]))
    out = ctx.input(0)
    if low is not None:
        out = ctx.emit("Max", out, ctx.input(low))
    if high is not None:
        out = ctx.emit("Min", out, ctx.input(high))
    return out


def convert_threshold_backward(ctx: Context) -> str:
    """g where x > threshold, else 0 (a NaN x passes g on: it is not <= threshold)."""
    x = ctx.input(1, ctx.dtype(1))
    below = ctx.emit("LessOrEqual", x, ctx.const(np.array(ctx.params["threshold"], ctx.dtype(1))))
    return ctx.emit("Where", below, ctx.scalar(0), ctx.input(0))


def convert_where(ctx: Context) -> str:
    return ctx.emit("Where", ctx.input(0, dtypes.bool_), ctx.input(1), ctx.input(2))


def convert_cast(ctx: Context) -> str:
    return ctx.input(0)  # ctx.input casts to the node's dtype


def convert_fill(ctx: Context) -> str:
    """A value of x's shape filled with ``value``: ConstantOfShape of Shape(x), which is a
    constant where the shape is known."""
    value = numpy_helper.from_array(np.array([ctx.params["value"]], ctx.node.dtype))
    return ctx.emit("ConstantOfShape", ctx.shape_of(0), value=value)


def convert_stop_gradient(ctx: Context) -> str:
    """Gradients are already built, so it is its input."""
    return ctx.input(0)


# -- reductions --------------------------------------------------------------------------------

def _reduction(op_type: str) -> Converter:
    def convert(ctx: Context) -> str:
        return reduce(ctx, op_type, ctx.input(0), ctx.params["axes"], ctx.params["keepdims"])
    convert.__name__ = f"convert_{op_type}"
    return convert


def _arg_reduction(op_type: str) -> Converter:
    """ArgMax/ArgMin (the first of equal values, as numpy); axis None flattens first."""
    def convert(ctx: Context) -> str:
        axis, keepdims = ctx.params["axis"], ctx.params["keepdims"]
        x = ctx.input(0, dtypes.uint8 if ctx.dtype(0) == dtypes.bool_ else ctx.dtype(0))
        if axis is not None:
            return ctx.emit(op_type, x, axis=axis, keepdims=int(keepdims))
        index = ctx.emit(op_type, reshape(ctx, x, (-1,)), axis=0, keepdims=int(keepdims))
        return reshape(ctx, index, ctx.node.shape) if keepdims else index
    convert.__name__ = f"convert_{op_type}"
    return convert


def convert_sum_to(ctx: Context) -> str:
    """Sum back to the shape of ``like``: the leading axes away, its size-1 axes kept. An
    axis whose size ``like`` does not know is not summed: the graph's shape rules took it
    to be equal to x's."""
    kept, lead = sum_to_axes(ctx.shape(0), ctx.shape(1))
    x = ctx.input(0)
    if not kept:
        return reduce(ctx, "ReduceSum", x, tuple(range(lead)), keepdims=False)
    summed = reduce(ctx, "ReduceSum", x, tuple(range(lead)) + kept, keepdims=True)
    return ctx.emit("Squeeze", summed, ctx.ints(range(lead))) if lead else summed


def convert_size_of(ctx: Context) -> str:
    """The number of elements over ``axes``: the known sizes multiplied now, the unknown
    ones read with Shape at run time."""
    shape, axes = ctx.shape(0), ctx.params["axes"]
    known = int(np.prod([shape[a] for a in axes if shape[a] is not None], dtype=np.int64))
    unknown = [a for a in axes if shape[a] is None]
    if not unknown:
        return ctx.const(np.array(known, ctx.node.dtype))
    sizes = ctx.emit("Gather", ctx.shape_of(0), ctx.ints(unknown))
    size = ctx.emit("Cast", ctx.emit("ReduceProd", sizes, keepdims=0),
                    to=onnx_type(ctx.node.dtype))
    return size if known == 1 else ctx.emit("Mul", size, ctx.scalar(known))


# -- movement ----------------------------------------------------------------------------------

def convert_reshape(ctx: Context) -> str:
    return reshape(ctx, ctx.input(0), ctx.params["shape"])


def convert_reshape_as(ctx: Context) -> str:
    target = _unknown_size_shape(ctx.shape(1))
    return reshape(ctx, ctx.input(0), ctx.shape_of(1) if target is None else target)


def convert_transpose(ctx: Context) -> str:
    return ctx.emit("Transpose", ctx.input(0), perm=list(ctx.params["perm"]))


def convert_expand_dims(ctx: Context) -> str:
    return ctx.emit("Unsqueeze", ctx.input(0), ctx.ints(ctx.params["axes"]))


def convert_squeeze(ctx: Context) -> str:
    axes = ctx.params["axes"]
    return ctx.emit("Squeeze", ctx.input(0), ctx.ints(axes)) if axes else ctx.input(0)


def convert_broadcast_to(ctx: Context) -> str:
    """torch's expand: -1 keeps a size, which is Expand's 1 (it broadcasts both ways)."""
    shape = [1 if d == -1 else d for d in ctx.params["shape"]]
    return ctx.emit("Expand", ctx.input(0), ctx.ints(shape))


def convert_expand_as(ctx: Context) -> str:
    return ctx.emit("Expand", ctx.input(0), ctx.shape_of(1))


def convert_concat(ctx: Context) -> str:
    return ctx.emit("Concat", *(ctx.input(i) for i in range(len(ctx.node.inputs))),
                    axis=ctx.params["axis"])


# -- indexing ----------------------------------------------------------------------------------

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


def convert_decomposed(ctx: Context) -> str:
    """A composite written as the simpler primitives of its decomposition."""
    return ctx.decomposed()


def _softmax(op_type: str) -> Converter:
    """Softmax / LogSoftmax over one axis (opset 13's meaning); a 0-d value is its own row."""
    def convert(ctx: Context) -> str:
        if not ctx.node.ndim:
            return ctx.decomposed()
        return ctx.emit(op_type, ctx.input(0), axis=ctx.params["axis"])
    convert.__name__ = f"convert_{op_type}"
    return convert


def convert_gelu(ctx: Context) -> str:
    """Gelu from opset 20; before, its decomposition (Erf or Tanh)."""
    if ctx.opset < 20:
        return ctx.decomposed()
    return ctx.emit("Gelu", ctx.input(0), approximate=ctx.params["approximate"])


def convert_layer_norm(ctx: Context) -> str:
    """LayerNormalization from opset 17, over trailing axes; its Scale is required (ones
    stand in for a missing weight, as torch exports it)."""
    axes = ctx.params["axes"]
    if ctx.opset < 17:
        return ctx.decomposed()
    has_weight, has_bias = ctx.params["has_weight"], ctx.params["has_bias"]
    normalized = tuple(ctx.shape(0)[a] for a in axes)
    if None in normalized:
        return ctx.decomposed()
    scale = ctx.input(1) if has_weight else ctx.const(np.ones(normalized, ctx.node.dtype))
    inputs = [ctx.input(0), scale] + ([ctx.input(1 + has_weight)] if has_bias else [])
    return ctx.emit("LayerNormalization", *inputs, axis=axes[0], epsilon=ctx.params["eps"])


def convert_nll_loss(ctx: Context) -> str:
    """NegativeLogLikelihoodLoss takes (N, C) and (N,): a single row is made a batch of one."""
    log_p, target = ctx.input(0), ctx.input(1, np.int64)
    if len(ctx.shape(0)) == 1:
        log_p = ctx.emit("Unsqueeze", log_p, ctx.ints([0]))
        target = ctx.emit("Unsqueeze", target, ctx.ints([0]))
    loss = ctx.emit("NegativeLogLikelihoodLoss", log_p, target,
                    reduction=ctx.params["reduction"])
    if len(ctx.shape(0)) == 1 and ctx.params["reduction"] == "none":
        loss = ctx.emit("Squeeze", loss, ctx.ints([0]))
    return loss


def convert_arange_like(ctx: Context) -> str:
    """Range(0, n, 1) with n the size of the input's axis (a constant where it is known)."""
    axis = ctx.params["axis"]
    size = ctx.shape(0)[axis]
    n = ctx.const(np.array(size, np.int64)) if size is not None else \
        ctx.emit("Squeeze", ctx.emit("Gather", ctx.shape_of(0), ctx.ints([axis])), ctx.ints([0]))
    return ctx.emit("Range", ctx.const(np.array(0, np.int64)), n,
                    ctx.const(np.array(1, np.int64)))


CONVERTERS: dict[Primitive, Converter] = {
    # elementwise
    P.add: _op("Add"), P.sub: _op("Sub"), P.mul: _op("Mul"), P.div: _op("Div"),
    P.pow: _op("Pow"), P.maximum: _op("Max"), P.minimum: _op("Min"), P.neg: _op("Neg"),
    P.exp: _op("Exp"), P.log: _op("Log"), P.sqrt: _op("Sqrt"), P.tanh: _op("Tanh"),
    P.sigmoid: _op("Sigmoid"), P.relu: _op("Relu"),
    P.threshold_backward: convert_threshold_backward, P.abs: _op("Abs"), P.sign: _op("Sign"),
    P.erf: _op("Erf"), P.softplus: convert_softplus, P.clamp: convert_clamp,
    P.where: convert_where, P.cast: convert_cast, P.fill: convert_fill,
    P.stop_gradient: convert_stop_gradient,
    P.eq: _compare("Equal"), P.ne: _compare("Equal", negate=True), P.lt: _compare("Less"),
    P.le: _compare("LessOrEqual"), P.gt: _compare("Greater"), P.ge: _compare("GreaterOrEqual"),
    P.logical_and: _op("And", dtypes.bool_), P.logical_or: _op("Or", dtypes.bool_),
    P.logical_not: _op("Not", dtypes.bool_),
    # reductions
    P.sum: _reduction("ReduceSum"), P.mean: _reduction("ReduceMean"),
    P.prod: _reduction("ReduceProd"), P.max: _reduction("ReduceMax"),
    P.min: _reduction("ReduceMin"), P.argmax: _arg_reduction("ArgMax"),
    P.argmin: _arg_reduction("ArgMin"), P.sum_to: convert_sum_to, P.size_of: convert_size_of,
    # movement
    P.reshape: convert_reshape, P.reshape_as: convert_reshape_as,
    P.transpose: convert_transpose, P.expand_dims: convert_expand_dims,
    P.squeeze: convert_squeeze, P.broadcast_to: convert_broadcast_to,
    P.expand_as: convert_expand_as, P.concat: convert_concat,
    # indexing
    P.getitem: convert_getitem, P.scatter_add: convert_scatter_add,
    P.index_put: convert_index_put, P.check_index: convert_check_index,
    P.arange_like: convert_arange_like, P.nonzero: convert_nonzero,
    # linear algebra: ONNX's MatMul is numpy's (1-D operands, batches, broadcasting)
    P.matmul: _op("MatMul"),
    # composites: their decompositions until they have converters of their own
    P.softmax: _softmax("Softmax"), P.log_softmax: _softmax("LogSoftmax"),
    P.gelu: convert_gelu, P.layer_norm: convert_layer_norm, P.nll_loss: convert_nll_loss,
    P.mse_loss: convert_decomposed,  # ONNX has no squared-error loss operator
}

# Primitives ONNX cannot express, with the reason export gives. Every current primitive has
# a converter; a new one goes either above or here.
NOT_EXPORTABLE: dict[Primitive, str] = {}
