"""The converters: one function per ONNX op type, in ``CONVERTERS``.

Each takes (builder, node, inputs, attributes) and returns a Node or a list of them (one per
output). They build with the shared surface and ``functional`` (and, for windows ONNX pads
unequally, the convolution primitives themselves), so an imported model differentiates,
trains and compiles like a graph built by hand, and composites that become primitives keep
working. What a converter must know while importing (axes, a ratio) it reads from the
builder at the two probe points (``shapes.py``). This module holds the arithmetic,
reductions and neural-network ops; ``import_movement.py`` the ops that compute shapes, move
data or index; ``import_conv.py`` convolutions, pooling and batch normalization.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ..graph import Node
from ..ops import dtypes, functional
from .errors import ONNXError
from .import_conv import CONV_CONVERTERS
from .import_movement import MOVEMENT_CONVERTERS
from .loading import onnx_dtype
from .shapes import Converter, axis_index, product

# Inputs a converter reads while importing (shapes, axes, slice bounds, split sizes): a model
# that feeds them from its own graph inputs can be imported only once their values are known
# (the backend binds them to the values it is run with).
IMPORT_TIME_INPUTS = {"Reshape": (1,), "Expand": (1,), "Slice": (1, 2, 3, 4), "Split": (1,),
                      "CumSum": (1,),
                      "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,),
                      "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
                      "ConstantOfShape": (0,), "Range": (0, 1, 2), "Dropout": (1, 2),
                      "Trilu": (1,), "Pad": (1, 3), "Col2Im": (1, 2)}


def _method(name: str) -> Converter:
    """The surface method of that name, on the node's inputs."""
    def convert(b, node, xs, attrs):
        return getattr(xs[0], name)(*xs[1:])
    convert.__name__ = f"_{name}"
    return convert


def _ceil(b, node, xs, attrs):
    """ceil(x) = -floor(-x): no primitive of its own for what one identity gives."""
    return -((-xs[0]).floor())


def _div(b, node, xs, attrs):
    x, y = xs
    if x.dtype.kind == "f":
        return x / y
    # Integer division truncates toward zero (C's): floor division, one more where it
    # rounded a negative quotient down.
    floor = x // y
    return floor + ((x % y != 0) & ((x < 0) != (y < 0))).to(floor.dtype)


def _mod(b, node, xs, attrs):
    x, y = xs
    remainder = x % y  # the sign of y (Python's, numpy's, torch's)
    if not attrs.get("fmod", 0):
        return remainder
    # C's fmod: the sign of x
    return remainder.where((remainder == 0) | ((remainder < 0) == (x < 0)), remainder - y)


def _pow(b, node, xs, attrs):
    x, y = xs
    return (x ** y).to(x.dtype)  # the base's type, whatever the exponent's


def _variadic(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        result = xs[0]
        for x in xs[1:]:
            result = getattr(result, method)(x)
        return result
    convert.__name__ = f"_variadic_{method}"
    return convert


def _identity(b, node, xs, attrs):
    return xs[0]


def _reciprocal(b, node, xs, attrs):
    return 1 / xs[0]


def _cast(b, node, xs, attrs):
    return xs[0].to(onnx_dtype(attrs["to"], "Cast's target"))


def _cast_like(b, node, xs, attrs):
    return xs[0].to(xs[1].dtype)


def _softmax(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        axis = axis_index(attrs.get("axis", -1 if b.opset >= 13 else 1), x.ndim)
        if b.opset >= 13 or axis == x.ndim - 1:
            return getattr(x, method)(axis)
        # Before opset 13 the input is coerced to 2-D: rows of everything from `axis` on.
        dims = b.shape(x)
        flat = b.reshape(x, [product(dims[:axis]), product(dims[axis:])])
        return getattr(flat, method)(1).reshape_as(x)
    convert.__name__ = f"_{method}"
    return convert


def _gelu(b, node, xs, attrs):
    return functional.gelu(xs[0], attrs.get("approximate", "none"))


def _softplus(b, node, xs, attrs):
    return functional.softplus(xs[0])


def _leaky_relu(b, node, xs, attrs):
    return functional.leaky_relu(xs[0], attrs.get("alpha", 0.01))


def _elu(b, node, xs, attrs):
    return functional.elu(xs[0], attrs.get("alpha", 1.0))


def _hard_sigmoid(b, node, xs, attrs):
    return (xs[0] * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5)).clamp(0, 1)


def _clip(b, node, xs, attrs):
    x = xs[0]
    if b.opset >= 11:
        low, high = (xs + [None, None])[1:3]
    else:
        low, high = (x._lift(attrs[k], x.dtype) if k in attrs else None for k in ("min", "max"))
    return x if low is None and high is None else x.clamp(low, high)


def _where(b, node, xs, attrs):
    return functional.where(*xs)


def _gemm(b, node, xs, attrs):
    a, w = xs[:2]
    c = xs[2] if len(xs) > 2 else None
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        a = a.t()
    if attrs.get("transB", 0) and alpha == 1.0 and beta == 1.0:
        return functional.linear(a, w, c)  # torch's nn.Linear, exported
    y = a @ (w.t() if attrs.get("transB", 0) else w)
    y = y if alpha == 1.0 else y * alpha
    if c is None:
        return y
    return y + (c if beta == 1.0 else c * beta)


def _layer_normalization(b, node, xs, attrs):
    x, scale = xs[:2]
    bias = xs[2] if len(xs) > 2 else None
    axis, eps = axis_index(attrs.get("axis", -1), x.ndim), attrs.get("epsilon", 1e-5)
    normalized = x.shape[axis:]
    if None in normalized:
        raise ONNXError(f"the normalized sizes {normalized} must be known when importing")
    scale, bias = (v if v is None or v.shape == normalized else v.expand(normalized)
                   for v in (scale, bias))
    y = functional.layer_norm(x, normalized, scale, bias, eps)
    if not any(node.output[1:]):  # Mean and InvStdDev are not wanted
        return y
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axes, keepdim=True)
    centered = x - mean
    inv_std = 1 / ((centered * centered).mean(axes, keepdim=True) + eps).sqrt()
    stash = onnx_dtype(attrs.get("stash_type", TensorProto.FLOAT),
                       "LayerNormalization's stash_type")
    return [y, mean.to(stash), inv_std.to(stash)]


def _reduce(method: str, axes_input_since: int) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        if b.opset >= axes_input_since:
            axes = b.static_ints(xs[1] if len(xs) > 1 else None, f"{node.op_type}'s axes")
        else:
            axes = attrs.get("axes")
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return x
        axes = tuple(sorted({axis_index(a, x.ndim) for a in axes or range(x.ndim)}))
        keep = bool(attrs.get("keepdims", 1))
        return _reduced(x, method, axes, keep)
    convert.__name__ = f"_reduce_{method}"
    return convert


_EMPTY_REDUCTION = {"amax": -np.inf, "amin": np.inf}  # ONNX's result over no elements


def _reduced(x: Node, method: str, axes: tuple[int, ...], keep: bool) -> Node:
    if method in _EMPTY_REDUCTION and any(x.shape[a] == 0 for a in axes):
        value = _EMPTY_REDUCTION[method]
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            value = info.min if value < 0 else info.max
        elif x.dtype.kind == "b":
            value = value > 0
        return x.sum(axes, keepdim=keep).to(x.dtype)._fill(value)
    if method == "mean" and x.dtype.kind != "f":
        return x.double().mean(axes, keepdim=keep).to(x.dtype)
    return getattr(x, method)(axes, keepdim=keep).to(x.dtype)  # ints sum to int64 in torch


def _arg(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        axis, keep = axis_index(attrs.get("axis", 0), x.ndim), bool(attrs.get("keepdims", 1))
        if not attrs.get("select_last_index", 0):
            return getattr(x, method)(axis, keep)
        flipped = x[(slice(None),) * axis + (slice(None, None, -1),)]
        last = b.shape_node(x, axis, axis + 1).reshape(()) - 1
        return last - getattr(flipped, method)(axis, keep)
    convert.__name__ = f"_{method}"
    return convert


def _matmul(b, node, xs, attrs):
    return xs[0] @ xs[1]


def _negative_log_likelihood_loss(b, node, xs, attrs):
    """torch's nll_loss: log-probabilities (N, C) with targets (N,); (N, C, d1, ...) with
    (N, d1, ...) as rows of C, the per-element losses shaped back like the targets."""
    if len(xs) > 2 and xs[2] is not None:
        raise ONNXError("class weights are not supported")
    x, target = xs[0], xs[1].long()
    if x.ndim < 2 or x.shape[1] is None:
        raise ONNXError(f"log-probabilities of shape {x.shape}: (N, C, ...) with the number "
                        "of classes C known when importing is needed")
    reduction = attrs.get("reduction", "mean")
    # (ONNX has no default ignore_index: without one no class is ignored)
    ignore_index = attrs.get("ignore_index", np.iinfo(np.int64).min)
    if x.ndim == 2:
        return functional.nll_loss(x, target, reduction, ignore_index=ignore_index)
    rows = x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])
    loss = functional.nll_loss(rows, target.reshape(-1), reduction, ignore_index=ignore_index)
    return loss.reshape_as(target) if reduction == "none" else loss


def _cumsum(b, node, xs, attrs):
    x = xs[0]
    axis = axis_index(int(b.static(xs[1], "CumSum's axis")), x.ndim)
    flip = (slice(None),) * axis + (slice(None, None, -1),)
    running = x[flip].cumsum(axis)[flip] if attrs.get("reverse", 0) else x.cumsum(axis)
    running = running - x if attrs.get("exclusive", 0) else running
    return running.to(x.dtype)  # ONNX keeps int32 (torch's cumsum sums integers in int64)


def _gather_elements(b, node, xs, attrs):
    x, index = xs
    axis = axis_index(attrs.get("axis", 0), x.ndim)
    if x.shape[axis] is not None:  # ONNX counts negative indices from the end; torch refuses
        index = index.where(index >= 0, index + x.shape[axis])
    return x.gather(axis, index)


def _dropout(b, node, xs, attrs):
    x = xs[0]
    given = xs + [None, None]  # before opset 12 a Dropout is for inference
    training = given[2] is not None and bool(b.static(given[2], "Dropout's training_mode"))
    ratio = float(b.static(given[1], "Dropout's ratio")) if training and given[1] is not None \
        else 0.5
    if training and ratio > 0:
        raise ONNXError("Dropout in training mode is random; only inference is supported")
    return [x, b.fill(b.shape(x), True, dtypes.bool_, "Dropout's mask")]


CONVERTERS: dict[str, Converter] = {
    "Add": _method("add"), "Sub": _method("sub"), "Mul": _method("mul"), "Div": _div, "Mod": _mod,
    "Pow": _pow, "Neg": _method("neg"), "Abs": _method("abs"), "Exp": _method("exp"),
    "Log": _method("log"), "Sqrt": _method("sqrt"), "Tanh": _method("tanh"),
    "Sigmoid": _method("sigmoid"), "Relu": _method("relu"), "Erf": _method("erf"),
    "Floor": _method("floor"), "Ceil": _ceil, "Sin": _method("sin"), "Cos": _method("cos"),
    "CumSum": _cumsum,
    "GatherElements": _gather_elements,
    "Sign": _method("sign"), "Reciprocal": _reciprocal, "Equal": _method("eq"),
    "Less": _method("lt"), "Greater": _method("gt"), "LessOrEqual": _method("le"),
    "GreaterOrEqual": _method("ge"), "Not": _method("__invert__"), "And": _method("__and__"),
    "Or": _method("__or__"), "Max": _variadic("maximum"), "Min": _variadic("minimum"),
    "Sum": _variadic("add"), "Where": _where, "Clip": _clip, "Cast": _cast, "CastLike": _cast_like,
    "Softmax": _softmax("softmax"), "LogSoftmax": _softmax("log_softmax"), "Gelu": _gelu,
    "Softplus": _softplus, "LeakyRelu": _leaky_relu, "Elu": _elu,
    "HardSigmoid": _hard_sigmoid, "LayerNormalization": _layer_normalization, "MatMul": _matmul,
    "Gemm": _gemm, "ReduceSum": _reduce("sum", 13), "ReduceMean": _reduce("mean", 18),
    "ReduceMax": _reduce("amax", 18), "ReduceMin": _reduce("amin", 18),
    "ReduceProd": _reduce("prod", 18), "ArgMax": _arg("argmax"), "ArgMin": _arg("argmin"),
    "Identity": _identity, "Dropout": _dropout,
    "NegativeLogLikelihoodLoss": _negative_log_likelihood_loss,
    **MOVEMENT_CONVERTERS, **CONV_CONVERTERS,
}
