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

from typing import TYPE_CHECKING

import numpy as np
from onnx import numpy_helper

from ..ops import P, Primitive, dtypes
from ..ops.elementwise import clamp_bounds
from ..ops.shapes import sum_to_axes
from .conv_converters import CONV_CONVERTERS
from .index_converters import (convert_arange_like, convert_check_index, convert_getitem,
                               convert_index_put, convert_nonzero, convert_scatter_add)
from .lowering import Converter, onnx_type, reduce, reshape, unknown_size_shape

if TYPE_CHECKING:
    from .export import Context


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


def convert_floor(ctx: Context) -> str:
    return ctx.emit("Floor", ctx.input(0)) if dtypes.is_floating(ctx.node.dtype) else \
        ctx.input(0)


def convert_floor_divide(ctx: Context) -> str:
    """Floats: Floor of Div. Integers: (a - a mod b) / b, exact (ONNX's Div truncates)."""
    a, b = ctx.input(0), ctx.input(1)
    if dtypes.is_floating(ctx.node.dtype):
        return ctx.emit("Floor", ctx.emit("Div", a, b))
    return ctx.emit("Div", ctx.emit("Sub", a, ctx.emit("Mod", a, b)), b)


def convert_remainder(ctx: Context) -> str:
    """Mod with the divisor's sign: integers' Mod is that already; floats' (fmod=1) takes
    the dividend's, so a nonzero result of the other sign moves by b."""
    a, b = ctx.input(0), ctx.input(1)
    if not dtypes.is_floating(ctx.node.dtype):
        return ctx.emit("Mod", a, b)
    m = ctx.emit("Mod", a, b, fmod=1)
    zero = ctx.scalar(0)
    same_sign = ctx.emit("Equal", ctx.emit("Less", m, zero), ctx.emit("Less", b, zero))
    stays = ctx.emit("Or", same_sign, ctx.emit("Equal", m, zero))
    return ctx.emit("Where", stays, m, ctx.emit("Add", m, b))


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


def convert_cumsum(ctx: Context) -> str:
    if not ctx.node.ndim:
        return ctx.input(0)
    return ctx.emit("CumSum", ctx.input(0), ctx.const(np.array(ctx.params["axis"], np.int64)))


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
    target = unknown_size_shape(ctx.shape(1))
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


def convert_gather(ctx: Context) -> str:
    if not ctx.node.ndim:
        return ctx.input(0)
    return ctx.emit("GatherElements", ctx.input(0), ctx.input(1, np.int64),
                    axis=ctx.params["axis"])


def convert_unchecked(ctx: Context) -> str:
    """A value checked when it runs: ONNX has no assertion, so the value itself."""
    return ctx.input(0)


def convert_batch_norm(ctx: Context) -> str:
    """BatchNormalization in inference mode (scale and bias are required: ones and zeros stand
    in); in training, the decomposition (the batch's statistics)."""
    if ctx.params["training"]:
        return ctx.decomposed()
    channels = ctx.shape(0)[1]
    weight = ctx.input(3) if ctx.params["has_weight"] else \
        ctx.const(np.ones(channels, ctx.node.dtype))
    bias = ctx.input(3 + ctx.params["has_weight"]) if ctx.params["has_bias"] else \
        ctx.const(np.zeros(channels, ctx.node.dtype))
    return ctx.emit("BatchNormalization", ctx.input(0), weight, bias, ctx.input(1),
                    ctx.input(2), epsilon=ctx.params["eps"])


def convert_nll_loss(ctx: Context) -> str:
    """NegativeLogLikelihoodLoss takes (N, C) and (N,): a single row is made a batch of one."""
    log_p, target = ctx.input(0), ctx.input(1, np.int64)
    if len(ctx.shape(0)) == 1:
        log_p = ctx.emit("Unsqueeze", log_p, ctx.ints([0]))
        target = ctx.emit("Unsqueeze", target, ctx.ints([0]))
    loss = ctx.emit("NegativeLogLikelihoodLoss", log_p, target,
                    reduction=ctx.params["reduction"], ignore_index=ctx.params["ignore_index"])
    if len(ctx.shape(0)) == 1 and ctx.params["reduction"] == "none":
        loss = ctx.emit("Squeeze", loss, ctx.ints([0]))
    return loss


CONVERTERS: dict[Primitive, Converter] = {
    # elementwise
    P.add: _op("Add"), P.sub: _op("Sub"), P.mul: _op("Mul"), P.div: _op("Div"),
    P.pow: _op("Pow"), P.maximum: _op("Max"), P.minimum: _op("Min"), P.neg: _op("Neg"),
    P.exp: _op("Exp"), P.log: _op("Log"), P.sqrt: _op("Sqrt"), P.tanh: _op("Tanh"),
    P.sigmoid: _op("Sigmoid"), P.relu: _op("Relu"),
    P.threshold_backward: convert_threshold_backward, P.abs: _op("Abs"), P.sign: _op("Sign"),
    P.erf: _op("Erf"), P.floor: convert_floor, P.sin: _op("Sin"), P.cos: _op("Cos"),
    P.floor_divide: convert_floor_divide, P.remainder: convert_remainder,
    P.softplus: convert_softplus, P.clamp: convert_clamp,
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
    P.cumsum: convert_cumsum,
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
    P.gather: convert_gather,
    P.binary_cross_entropy: convert_decomposed,  # ONNX has no binary cross-entropy operator
    P.batch_norm: convert_batch_norm,
    P.check_range: convert_unchecked,
    # convolutional networks
    **CONV_CONVERTERS,
}

_COLLECTIVE = ("ONNX has no collectives across processes: export the model without "
               "sg.distributed's all-reduce (a DistributedOptimizer's update is for training)")

# Primitives ONNX cannot express, with the reason export gives; a new primitive goes either
# above or here.
NOT_EXPORTABLE: dict[Primitive, str] = {
    P.after: "a model file holds no state updates (batch norm's running statistics in "
             "training): export the graph built with training=False",
    P.allreduce: _COLLECTIVE, P.broadcast: _COLLECTIVE, P.allgather: _COLLECTIVE,
    P.allreduce_start: _COLLECTIVE, P.allreduce_wait: _COLLECTIVE,
    P.uniform_like: "random draws (dropout in training) are not exported: export the graph "
                    "built with training=False, where dropout is the identity",
}
