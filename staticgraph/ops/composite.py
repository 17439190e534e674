"""Composite primitives: softmax, log_softmax, layer_norm, gelu, nll_loss, mse_loss and
binary_cross_entropy (gather, another, lives with indexing). Each
is one primitive (one numpy kernel and one recorded node in eager, with torch's grad_fn name;
one ONNX operator where the opset has it) and carries a ``decomposition`` into simpler
primitives, written with the shared surface, that the compiler expands before fusion (torch
inductor's decomposition table). Their VJP rules are written with the surface too, so
gradients of gradients work in both modes."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from . import dtypes
from .elementwise import broadcast_shape, check_range, promoted_float, same_shape
from .indexing import check_index
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError

_SQRT_HALF = 1 / math.sqrt(2)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _float_kernel(kernel):
    """Composites compute in the input's float dtype (integers in the default float)."""
    def run(x, *rest, **params):
        if x.dtype.kind != "f":
            x = x.astype(dtypes.DEFAULT_FLOAT)
        with np.errstate(all="ignore"):  # inf and nan as torch gives them, silently
            return kernel(x, *rest, **params)
    run.__name__ = kernel.__name__
    return run


# -- softmax and log_softmax ------------------------------------------------------------------

def _shifted(x: np.ndarray, axis: int | None) -> np.ndarray:
    if x.size == 0:  # nothing to take the max of: the result is empty anyway
        return x.copy()
    return x - x.max(axis, keepdims=True)


def _softmax_kernel(x, axis: int):
    axis = axis if x.ndim else None  # a 0-d value is its own row
    e = np.asarray(np.exp(_shifted(x, axis)))
    return np.divide(e, e.sum(axis, keepdims=True), out=e)


def _log_softmax_kernel(x, axis: int):
    axis = axis if x.ndim else None
    s = np.asarray(_shifted(x, axis))
    return np.subtract(s, np.log(np.exp(s).sum(axis, keepdims=True)), out=s)


def _softmax_decomposition(x, axis: int):
    if 0 in x.shape:  # empty in, empty out: no max to shift by (the compiler knows shapes)
        return x.exp()
    e = (x - x.amax(axis, keepdim=True)).exp()
    return e / e.sum(axis, keepdim=True)


def _log_softmax_decomposition(x, axis: int):
    if 0 in x.shape:
        return x.exp()
    shifted = x - x.amax(axis, keepdim=True)
    return shifted - shifted.exp().sum(axis, keepdim=True).log()


softmax = Primitive(
    name="softmax", kind=Kind.OPAQUE, kernel=_float_kernel(_softmax_kernel),
    shape_rule=same_shape, dtype_rule=promoted_float,
    vjps=(lambda g, out, x, axis: out * (g - (g * out).sum(axis, keepdim=True)),),
    saves=Saves.OUTPUT, grad_name="SoftmaxBackward0", decomposition=_softmax_decomposition)
log_softmax = Primitive(
    name="log_softmax", kind=Kind.OPAQUE, kernel=_float_kernel(_log_softmax_kernel),
    shape_rule=same_shape, dtype_rule=promoted_float,
    vjps=(lambda g, out, x, axis: g - out.exp() * g.sum(axis, keepdim=True),),
    saves=Saves.OUTPUT, grad_name="LogSoftmaxBackward0",
    decomposition=_log_softmax_decomposition)


# -- gelu ----------------------------------------------------------------------------------------

def _gelu_kernel(x, approximate: str):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + np.tanh(inner))
    return 0.5 * x * (1 + special.erf(x * _SQRT_HALF))


def _gelu_decomposition(x, approximate: str):
    if approximate == "tanh":
        return 0.5 * x * (1 + (_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))).tanh())
    return 0.5 * x * (1 + (x * _SQRT_HALF).erf())


def _gelu_vjp(g, out, x, approximate: str):
    if approximate == "tanh":  # d/dx of 0.5 x (1 + tanh(k (x + c x^3)))
        t = (_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))).tanh()
        slope = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * (x * x))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * slope)
    # Phi(x) + x phi(x)
    return g * (0.5 * (1 + (x * _SQRT_HALF).erf()) + x * _INV_SQRT_2PI * (-0.5 * (x * x)).exp())


gelu = Primitive(name="gelu", kind=Kind.OPAQUE, kernel=_float_kernel(_gelu_kernel),
                 shape_rule=same_shape, dtype_rule=promoted_float, vjps=(_gelu_vjp,),
                 saves=Saves.INPUTS, grad_name="GeluBackward0",
                 decomposition=_gelu_decomposition)


# -- layer_norm ----------------------------------------------------------------------------------

def _affine(bounds: tuple, has_weight: bool, has_bias: bool) -> tuple:
    """(weight or None, bias or None) from layer_norm's optional inputs."""
    return (bounds[0] if has_weight else None), (bounds[-1] if has_bias else None)


def _layer_norm_kernel(x, *affine, axes: tuple[int, ...], eps: float, has_weight: bool,
                       has_bias: bool):
    weight, bias = _affine(affine, has_weight, has_bias)
    if x.size == 0:  # nothing to normalize (and numpy would warn of an empty mean)
        return np.empty(x.shape, x.dtype)
    centered = x - x.mean(axes, keepdims=True)
    y = centered / np.sqrt((centered * centered).mean(axes, keepdims=True) + eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def _centered_and_std(x, axes: tuple[int, ...], eps: float):
    """x - mean and sqrt(var + eps) over ``axes``, on the surface."""
    centered = x - x.mean(axes, keepdim=True)
    return centered, ((centered * centered).mean(axes, keepdim=True) + eps).sqrt()


def _layer_norm_decomposition(x, *affine, axes, eps, has_weight, has_bias):
    weight, bias = _affine(affine, has_weight, has_bias)
    centered, std = _centered_and_std(x, axes, eps)
    y = centered / std
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def _layer_norm_vjp(g, out, x, *affine, axes, eps, has_weight, has_bias, index: int):
    if index > 0 and not (index == 1 and has_weight):  # the bias
        return g
    weight, _ = _affine(affine, has_weight, has_bias)
    centered, std = _centered_and_std(x, axes, eps)
    xhat = centered / std
    if index == 0:  # native_layer_norm_backward's formula
        gy = g if weight is None else g * weight
        return (gy - gy.mean(axes, keepdim=True)
                - xhat * (gy * xhat).mean(axes, keepdim=True)) / std
    return g * xhat  # the weight's: autodiff sums it to the weight's shape


def _layer_norm_shape(x, *affine, axes, eps, has_weight, has_bias) -> Shape:
    normalized = tuple(x.shape[a] for a in axes)
    for value in affine:
        if len(value.shape) != len(normalized) or any(
                None not in (a, b) and a != b for a, b in zip(value.shape, normalized)):
            raise ShapeError(f"weight and bias of layer_norm need shape {list(normalized)}, "
                             f"got {list(value.shape)}")
    return x.shape


layer_norm = Primitive(
    name="layer_norm", kind=Kind.OPAQUE, kernel=_float_kernel(_layer_norm_kernel),
    shape_rule=_layer_norm_shape, dtype_rule=promoted_float, vjps=_layer_norm_vjp,
    saves=Saves.INPUTS, grad_name="NativeLayerNormBackward0",
    decomposition=_layer_norm_decomposition)


# -- batch_norm ----------------------------------------------------------------------------------

def _per_channel(value, ndim: int):
    """A (C,) value shaped to broadcast along axis 1 of an (N, C, ...) one."""
    return value.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm_parts(x, stats: tuple, axes, eps: float, training: bool):
    """x - mean and sqrt(var + eps): the batch's own (biased) statistics in training, the
    given running ones in evaluation."""
    if training:
        return _centered_and_std(x, axes, eps)
    mean, var = (_per_channel(s, x.ndim) for s in stats)
    return x - mean, (var + eps).sqrt()


def _split_batch_norm_inputs(rest: tuple, training: bool, has_weight: bool, has_bias: bool):
    stats, affine = (rest[:0], rest) if training else (rest[:2], rest[2:])
    weight, bias = _affine(affine, has_weight, has_bias)
    return stats, weight, bias


def _batch_norm_kernel(x, *rest, axes, eps, training, has_weight, has_bias):
    stats, weight, bias = _split_batch_norm_inputs(rest, training, has_weight, has_bias)
    if training:
        mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    else:
        mean, var = (_per_channel(s, x.ndim) for s in stats)
    y = (x - mean) / np.sqrt(var + eps)
    y = y if weight is None else y * weight.reshape(mean.shape)
    return (y if bias is None else y + bias.reshape(mean.shape)).astype(x.dtype, copy=False)


def _batch_norm_decomposition(x, *rest, axes, eps, training, has_weight, has_bias):
    stats, weight, bias = _split_batch_norm_inputs(rest, training, has_weight, has_bias)
    centered, std = _batch_norm_parts(x, stats, axes, eps, training)
    y = centered / std
    y = y if weight is None else y * _per_channel(weight, x.ndim)
    return y if bias is None else y + _per_channel(bias, x.ndim)


def _batch_norm_vjp(g, out, x, *rest, axes, eps, training, has_weight, has_bias, index: int):
    """native_batch_norm_backward: in training the batch statistics depend on x (layer_norm's
    formula over the batch axes); in evaluation x is only scaled. The running statistics
    get no gradient (torch's buffers)."""
    if not training and index in (1, 2):
        return None
    stats, weight, bias = _split_batch_norm_inputs(rest, training, has_weight, has_bias)
    centered, std = _batch_norm_parts(x, stats, axes, eps, training)
    xhat = centered / std
    if index == 0:
        gy = g if weight is None else g * _per_channel(weight, x.ndim)
        if not training:
            return gy / std
        return (gy - gy.mean(axes, keepdim=True)
                - xhat * (gy * xhat).mean(axes, keepdim=True)) / std
    first_affine = 1 if training else 3
    return (g * xhat).sum(axes) if index == first_affine and has_weight else g.sum(axes)


def _batch_norm_shape(x, *rest, axes, eps, training, has_weight, has_bias) -> Shape:
    if x.ndim < 2:
        raise ShapeError(f"batch_norm expects an input (N, C, ...), got shape {tuple(x.shape)}")
    for value in rest:
        if tuple(value.shape) != (x.shape[1],):
            raise ShapeError(f"running_mean, running_var, weight and bias should contain "
                             f"{x.shape[1]} elements, got shape {tuple(value.shape)}")
    return x.shape


def _batch_norm_dtype(x, *rest, **_) -> np.dtype:
    """torch's CPU rule: the statistics and the affine parameters in the input's dtype
    (which a folded convolution's weights then keep)."""
    dtype = promoted_float(x)
    if any(value.dtype != dtype for value in rest):
        raise dtypes.DTypeError("mixed dtype (CPU): expect parameter to have scalar type of "
                                + dtypes.torch_name(dtype))
    return dtype


def _batch_norm_as_affine(x, *rest, axes, eps, training, has_weight, has_bias):
    """In evaluation, (x - mean) / sqrt(var + eps) * weight + bias is x * scale + shift."""
    if training:
        return None
    (mean, var), weight, bias = _split_batch_norm_inputs(rest, training, has_weight, has_bias)
    scale = (var + eps).sqrt()
    scale = (1 / scale) if weight is None else weight / scale
    shift = -mean * scale
    return scale, shift if bias is None else shift + bias


# Normalize each channel (axis 1) over the batch and spatial axes: with the batch's own
# statistics in training, the running ones (inputs 1 and 2) in evaluation; then the
# channel's affine transform. Updating the running statistics is the caller's
# (functional.batch_norm), not this value's.
batch_norm = Primitive(
    name="batch_norm", kind=Kind.OPAQUE, kernel=_float_kernel(_batch_norm_kernel),
    shape_rule=_batch_norm_shape, dtype_rule=_batch_norm_dtype, vjps=_batch_norm_vjp,
    saves=Saves.INPUTS, grad_name="NativeBatchNormBackward0",
    decomposition=_batch_norm_decomposition, channel_affine=_batch_norm_as_affine)


# -- losses --------------------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "none")


def reduce_loss(loss, reduction: str):
    """A loss per element, reduced as ``reduction`` says (on the surface)."""
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _reduce_loss_array(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        return loss.mean() if loss.size else np.array(np.nan, loss.dtype)
    return loss.sum() if reduction == "sum" else loss


def _nll_loss_kernel(log_p, target, reduction: str, ignore_index: int):
    classes = log_p.shape[-1]
    kept = target != ignore_index
    bad = target[kept & ((target < 0) | (target >= classes))]
    if bad.size:
        raise IndexError(f"Target {bad.flat[0]} is out of bounds.")
    picked = np.take_along_axis(log_p, np.where(kept, target, 0)[..., None], axis=-1)[..., 0]
    loss = np.where(kept, -picked, 0).astype(log_p.dtype, copy=False)
    if reduction != "mean":
        return _reduce_loss_array(loss, reduction)
    with np.errstate(invalid="ignore"):  # every row ignored: 0 / 0, nan as in torch
        return np.asarray(loss.sum() / log_p.dtype.type(kept.sum()))


def _target_mask(log_p, target, ignore_index: int):
    """Where each row's target class is, and no row where the target is ``ignore_index``: an
    elementwise comparison (so a decomposed loss and its gradient fuse into one kernel)."""
    classes = log_p.shape[-1]
    if classes is None:
        raise log_p._error("nll_loss", ShapeError, "needs the number of classes (the last "
                           "dimension of the log-probabilities) to be known")
    kept = target != ignore_index
    checked = target._apply(check_index, target.where(kept, 0), high=classes)
    return (checked.unsqueeze(-1) == log_p._lift(np.arange(classes))) & kept.unsqueeze(-1)


def _kept_count(log_p, target, ignore_index: int):
    """How many targets are not ignored: what a mean divides by (torch's total weight)."""
    return (target != ignore_index).to(log_p.dtype).sum()


def _nll_loss_decomposition(log_p, target, reduction: str, ignore_index: int):
    # where, not a product with a one-hot: -inf * 0 would be nan
    loss = -log_p.where(_target_mask(log_p, target, ignore_index), 0).sum(-1)
    if reduction == "mean":
        return loss.sum() / _kept_count(log_p, target, ignore_index)
    return reduce_loss(loss, reduction)


def _nll_loss_vjp(g, out, log_p, target, reduction: str, ignore_index: int):
    if reduction == "none" and log_p.ndim == 2:
        g = g.unsqueeze(-1)
    elif reduction == "mean":
        g = g / _kept_count(log_p, target, ignore_index)
    # where: 0 off the targets even when every row is ignored (g / 0 is inf)
    return (-g).where(_target_mask(log_p, target, ignore_index), 0)


def _nll_loss_shape(log_p, target, reduction: str, ignore_index: int) -> Shape:
    if log_p.ndim not in (1, 2) or target.ndim != log_p.ndim - 1:
        raise ShapeError(f"nll_loss expects log-probabilities (N, C) with targets (N,), or (C,) "
                         f"with a 0-d target; got {tuple(log_p.shape)} and {tuple(target.shape)}")
    if log_p.ndim == 2 and None not in (log_p.shape[0], target.shape[0]) and \
            log_p.shape[0] != target.shape[0]:
        raise ShapeError(f"Expected input batch_size ({log_p.shape[0]}) to match target "
                         f"batch_size ({target.shape[0]}).")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return tuple(target.shape) if reduction == "none" else ()


def _nll_loss_dtype(log_p, target, reduction: str, ignore_index: int) -> np.dtype:
    if target.dtype != dtypes.int64:
        raise dtypes.DTypeError("expected scalar type Long but found "
                                + dtypes.torch_name(target.dtype))
    return log_p.dtype


# The negative log-likelihood of each row's target class (torch's nll_loss without class
# weights; rows whose target is ``ignore_index`` count for nothing, in the mean too):
# cross_entropy is log_softmax then this, as torch records it.
nll_loss = Primitive(
    name="nll_loss", kind=Kind.OPAQUE, kernel=_nll_loss_kernel, shape_rule=_nll_loss_shape,
    dtype_rule=_nll_loss_dtype, vjps=(_nll_loss_vjp, None), saves=Saves.INPUTS,
    grad_name="NllLossBackward0", decomposition=_nll_loss_decomposition)


def _mse_loss_kernel(x, target, reduction: str):
    diff = x - target
    return _reduce_loss_array(diff * diff, reduction)


def _mse_loss_decomposition(x, target, reduction: str):
    diff = x - target
    return reduce_loss(diff * diff, reduction)


def _mse_loss_vjp(g, out, x, target, reduction: str, index: int):
    diff = x - target
    if reduction == "mean":
        g = g / diff._size_of(tuple(range(diff.ndim)))
    grad = 2 * diff * g
    return grad if index == 0 else -grad


def _mse_loss_shape(x, target, reduction: str) -> Shape:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return broadcast_shape(x, target) if reduction == "none" else ()


mse_loss = Primitive(
    name="mse_loss", kind=Kind.OPAQUE, kernel=_mse_loss_kernel, shape_rule=_mse_loss_shape,
    dtype_rule=promoted_float, vjps=_mse_loss_vjp, saves=Saves.INPUTS,
    grad_name="MseLossBackward0", decomposition=_mse_loss_decomposition)

_NOT_PROBABILITIES = "all elements of input should be between 0 and 1"


def _bce_kernel(x, target, *weight, reduction: str):
    check_range.kernel(x, 0.0, 1.0, _NOT_PROBABILITIES)
    # torch clamps each log at -100, so that a certain wrong answer costs 100, not inf
    loss = -(target * np.maximum(np.log(x), -100) + (1 - target) * np.maximum(np.log1p(-x), -100))
    return _reduce_loss_array(loss * weight[0] if weight else loss, reduction)


def _bce_decomposition(x, target, *weight, reduction: str):
    x = x._apply(check_range, x, low=0.0, high=1.0, message=_NOT_PROBABILITIES)
    loss = -(target * x.log().clamp(min=-100) + (1 - target) * (1 - x).log().clamp(min=-100))
    return reduce_loss(loss * weight[0] if weight else loss, reduction)


def _bce_vjp(g, out, x, target, *weight, reduction: str, index: int):
    """torch's binary_cross_entropy_backward: (x - y) / max(x (1 - x), 1e-12) for the input,
    log(1 - x) - log(x) (unclamped) for the target."""
    if reduction == "mean":
        g = g / x._size_of(tuple(range(x.ndim)))
    if weight:
        g = g * weight[0]
    if index == 0:
        return g * (x - target) / (x * (1 - x)).clamp(min=1e-12)
    return g * ((1 - x).log() - x.log())


def _bce_shape(x, target, *weight, reduction: str) -> Shape:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return x.shape if reduction == "none" else ()


# torch's binary_cross_entropy of probabilities x against targets y (an optional weight per
# element): its own gradient rule, which stays finite where x is 0 or 1.
binary_cross_entropy = Primitive(
    name="binary_cross_entropy", kind=Kind.OPAQUE, kernel=_float_kernel(_bce_kernel),
    shape_rule=_bce_shape, dtype_rule=promoted_float, vjps=_bce_vjp, diff_inputs=(0, 1),
    saves=Saves.INPUTS, grad_name="BinaryCrossEntropyBackward0",
    decomposition=_bce_decomposition)

PRIMITIVES = (softmax, log_softmax, gelu, layer_norm, batch_norm, nll_loss, mse_loss,
              binary_cross_entropy)
