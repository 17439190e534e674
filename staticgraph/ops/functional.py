"""``torch.nn.functional``'s names and arguments, written once on the operator surface: they
run on eager Tensors and graph Nodes alike. softmax, layer_norm, gelu and the losses apply
the composite primitives (ops/composite.py); the rest are made of the primitives they use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import composite, dtypes
from .callers import warn_user
from .conv import Windows
from .primitives import P
from .shapes import ShapeError
from .surface import Surface

# torch.nn.functional's names: eager.nn.functional and staticgraph.nn.functional are these.
NN_FUNCTIONAL = ["relu", "gelu", "softplus", "sigmoid", "tanh", "leaky_relu", "silu", "elu",
                 "hardtanh", "softmax", "log_softmax", "layer_norm", "batch_norm", "dropout",
                 "linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                 "adaptive_avg_pool2d", "cross_entropy", "nll_loss", "mse_loss",
                 "binary_cross_entropy", "binary_cross_entropy_with_logits"]


def softmax(input, dim: int = -1):
    return input._apply(P.softmax, input, axis=input._axis(dim))


def log_softmax(input, dim: int = -1):
    return input._apply(P.log_softmax, input, axis=input._axis(dim))


def gelu(input, approximate: str = "none"):
    if approximate not in ("none", "tanh"):
        raise input._error("gelu", ValueError, "approximate argument must be either none or "
                           f"tanh, got {approximate!r}")
    return input._apply(P.gelu, input, approximate=approximate)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def relu(input):
    return input.relu()


def leaky_relu(input, negative_slope: float = 0.01):
    return input._apply(P.leaky_relu, input, negative_slope=float(negative_slope))


def silu(input):
    return input._apply(P.silu, input)


def elu(input, alpha: float = 1.0):
    return input._apply(P.elu, input, alpha=float(alpha))


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0):
    if min_val > max_val:
        raise input._error("hardtanh", ValueError, "min_val cannot be greater than max_val")
    return input._apply(P.hardtanh, input, min_val=float(min_val), max_val=float(max_val))


def batch_norm(input, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: Any = False, momentum: float = 0.1, eps: float = 1e-5):
    """Each channel (axis 1) normalized over the batch and spatial axes: with the batch's
    statistics in training, which also move the running ones ``momentum`` of the way
    (the unbiased variance, as torch), else with the running ones. ``training`` may be a
    bool value of the graph (a placeholder): one graph then serves both."""
    if input.ndim < 2:
        raise input._error("batch_norm", ShapeError, "expects an input (N, C, ...), got shape "
                           f"{tuple(input.shape)}")
    axes = (0, *range(2, input.ndim))
    affine = [input._operand(v) for v in (weight, bias) if v is not None]
    options = dict(axes=axes, eps=float(eps), has_weight=weight is not None,
                   has_bias=bias is not None)
    stats = [input._operand(s) for s in (running_mean, running_var) if s is not None]
    if training is not True and len(stats) < 2:
        raise input._error("batch_norm", ValueError,
                           "running_mean and running_var must be defined in evaluation mode")
    if training is False:
        return input._apply(P.batch_norm, input, *stats, *affine, training=False, **options)
    count = [input.shape[a] for a in axes]
    if None not in count and math.prod(count) <= 1:
        raise input._error("batch_norm", ValueError, "Expected more than 1 value per channel "
                           f"when training, got input size {list(input.shape)}")
    out = input._apply(P.batch_norm, input, *affine, training=True, **options)
    if training is not True:  # a bool value: both ways, one chosen when it runs
        training = input._operand(training)
        out = out.where(training, input._apply(P.batch_norm, input, *stats, *affine,
                                               training=False, **options))
    if not stats:
        return out
    batch = input.detach()
    mean = batch.mean(axes)
    var = batch.var(axes)  # (unbiased: Bessel's correction, as torch's running_var)
    updates = []
    for state, value in zip(stats, (mean, var)):
        moved = state * (1 - momentum) + value.to(state.dtype) * momentum
        updates.append((state, moved if training is True else moved.where(training, state)))
    return out._updated(*updates)


def dropout(input, p: Any = 0.5, training: Any = True):
    """Each element zeroed with probability ``p``, the rest scaled by 1 / (1 - p) so the
    expected value is unchanged; the identity when not training. ``training`` and ``p`` may
    be values of the graph (placeholders: TF1's keep_prob), decided at run time."""
    fixed = not isinstance(p, Surface)
    if fixed and not 0.0 <= p <= 1.0:
        raise input._error("dropout", ValueError, "dropout probability has to be between 0 "
                           f"and 1, but got {p}")
    if training is False or (fixed and p == 0):
        return input
    if fixed and p == 1:
        kept = input * 0
    else:
        kept = input * (input._uniform_like() >= p).to(input.dtype) * (1 / (1 - p))
    return kept if training is True else kept.where(input._operand(training), input)


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    return input._apply(P.softplus, input, beta=float(beta), threshold=float(threshold))


def layer_norm(x, normalized_shape: int | Sequence[int], weight: Any = None, bias: Any = None,
               eps: float = 1e-5):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise x._error("layer_norm", ShapeError,
                       f"Given normalized_shape={list(shape)}, expected input with shape "
                       f"[*, {', '.join(map(str, shape))}], but got input of size "
                       f"{list(x.shape)}")
    affine = [x._operand(v) for v in (weight, bias) if v is not None]
    return x._apply(P.layer_norm, x, *affine, axes=tuple(range(x.ndim - len(shape), x.ndim)),
                    eps=float(eps), has_weight=weight is not None, has_bias=bias is not None)


def _check_reduction(x, reduction: str) -> None:
    if reduction not in composite.REDUCTIONS:
        raise x._error("loss", ValueError, f"{reduction} is not a valid value for reduction")


def nll_loss(input, target, reduction: str = "mean", *, ignore_index: int = -100):
    """Log-probabilities ``(N, C)`` or ``(C,)``; class indices ``(N,)`` or ``()``; targets equal
    to ``ignore_index`` count for nothing (nor in the mean's count)."""
    _check_reduction(input, reduction)
    return input._apply(P.nll_loss, input, input._operand(target), reduction=reduction,
                        ignore_index=int(ignore_index))


def cross_entropy(input, target, reduction: str = "mean", *, ignore_index: int = -100,
                  label_smoothing: float = 0.0):
    """Logits ``(N, C)`` or ``(C,)``; target class indices ``(N,)``/``()`` or probabilities.
    ``label_smoothing`` ε mixes the target with the uniform distribution over the C classes:
    (1 - ε) of the loss from the targets, ε from the mean of -log p over classes."""
    if input.ndim not in (1, 2):
        raise input._error("cross_entropy", ShapeError, "expects logits of shape (N, C) or "
                           f"(C,), got {tuple(input.shape)}")
    _check_reduction(input, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise input._error("cross_entropy", ValueError, "label_smoothing must be between 0.0 "
                           f"and 1.0. Got: {label_smoothing}")
    class_dim, classes = input.ndim - 1, input.shape[-1]
    log_p = log_softmax(input, class_dim)
    target = input._operand(target)
    if dtypes.is_floating(target.dtype):
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / classes
        return composite.reduce_loss(-(log_p * target).sum(class_dim), reduction)
    loss = nll_loss(log_p, target, reduction, ignore_index=ignore_index)
    if not label_smoothing:
        return loss
    # torch's: the smoothing term over the rows that are not ignored, reduced alike
    kept = target != ignore_index
    smooth = (-log_p.sum(class_dim)).where(kept, 0)
    smooth = smooth.sum() / kept.to(input.dtype).sum() if reduction == "mean" else \
        composite.reduce_loss(smooth, reduction)
    return (1 - label_smoothing) * loss + label_smoothing / classes * smooth


def binary_cross_entropy(input, target, weight: Any = None, reduction: str = "mean"):
    """Probabilities ``input`` against targets of the same size; each log is clamped at -100
    (torch's), so a certain wrong answer costs 100, not inf."""
    _check_reduction(input, reduction)
    target = input._operand(target)
    _check_same_size(input, target)
    weights = [] if weight is None else [input._operand(weight)]
    return input._apply(P.binary_cross_entropy, input, target, *weights, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None):
    """torch's: (1 - y) x + (1 + (pw - 1) y) softplus(-x), which never takes the log of 0 or
    the exp of a large number (softplus is x itself past its threshold)."""
    _check_reduction(input, reduction)
    target = input._operand(target)
    _check_same_size(input, target)
    scale = 1 if pos_weight is None else 1 + (input._operand(pos_weight) - 1) * target
    loss = (1 - target) * input + scale * softplus(-input)
    return composite.reduce_loss(loss if weight is None else loss * input._operand(weight),
                                 reduction)


def _check_same_size(input, target) -> None:
    if _differ(target.shape, input.shape):
        raise input._error("binary_cross_entropy", ValueError,
                           f"Using a target size ({_torch_size(target.shape)}) that is different "
                           f"to the input size ({_torch_size(input.shape)}) is deprecated. "
                           "Please ensure they have the same size.")


def mse_loss(input, target, reduction: str = "mean"):
    _check_reduction(input, reduction)
    target = input._operand(target)
    if _differ(target.shape, input.shape):  # torch's warning, word for word
        warn_user(f"Using a target size ({_torch_size(target.shape)}) that is different to the "
                  f"input size ({_torch_size(input.shape)}). This will likely lead to incorrect "
                  "results due to broadcasting. Please ensure they have the same size.")
    return input._apply(P.mse_loss, input, target, reduction=reduction)


def _differ(a, b) -> bool:
    """Certainly different shapes (an unknown size, None, may be either)."""
    return len(a) != len(b) or any(x is not None and y is not None and x != y
                                   for x, y in zip(a, b))


def _torch_size(shape) -> str:
    return f"torch.Size([{', '.join('?' if d is None else str(d) for d in shape)}])"


def linear(input, weight, bias: Any = None):
    y = input @ weight.t()
    return y if bias is None else y + bias


def cat(tensors: Sequence[Any], dim: int = 0):
    first = tensors[0]
    values = [first._operand(t) for t in tensors]
    return first._apply(P.concat, *values, axis=first._axis(dim))


def stack(tensors: Sequence[Any], dim: int = 0):
    first = tensors[0]
    axis = first._axis(dim, first.ndim + 1)
    return cat([first._operand(t).unsqueeze(axis) for t in tensors], axis)


def where(condition, input, other):
    """Elementwise ``input if condition else other``; either value may be a Python number."""
    anchor = next(v for v in (input, other, condition) if hasattr(v, "_apply"))
    dtype = dtypes.result_type(*(v for v in (input, other)))
    values = [anchor._lift(v, dtype) if isinstance(v, (bool, int, float)) else anchor._operand(v)
              for v in (input, other)]
    return values[0].where(anchor._operand(condition), values[1])


# -- convolutional networks (NCHW) ---------------------------------------------------------------

def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}")
    return pair


def _conv_padding(x, padding, kernel, stride, dilation) -> tuple:
    """torch's padding: ints, or "valid" (none) or "same" (the output keeps the input's size,
    the odd pixel after, as torch pads it)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise x._error("conv2d", ValueError,
                           "padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((p, p) for p in _pair(padding, "padding"))


def conv2d(input, weight, bias: Any = None, stride=1, padding=0, dilation=1, groups: int = 1):
    weight = input._operand(weight)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    kernel = tuple(weight.shape[2:]) if weight.ndim == 4 else (1, 1)
    windows = Windows(kernel, stride, _conv_padding(input, padding, kernel, stride, dilation),
                      dilation)
    biases = [] if bias is None else [input._operand(bias)]
    return input._apply(P.conv2d, input, weight, *biases, windows=windows, groups=int(groups),
                        has_bias=bias is not None)


def conv_transpose2d(input, weight, bias: Any = None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1):
    """The adjoint of conv2d in its input: each input pixel spreads over a window of the
    output. ``output_padding`` adds rows and columns after, where several sizes map to one."""
    weight = input._operand(weight)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding, extra = _pair(padding, "padding"), _pair(output_padding, "output_padding")
    if weight.ndim != 4 or input.ndim != 4 or None in input.shape[2:]:
        raise input._error("conv_transpose2d", ShapeError, "expects a 4-D input of known "
                           f"height and width and a 4-D weight, got {tuple(input.shape)} and "
                           f"{tuple(weight.shape)}")
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise input._error("conv_transpose2d", ValueError, "output padding must be smaller "
                           "than either stride or dilation, but got output_padding_height: "
                           f"{extra[0]} output_padding_width: {extra[1]} stride_height: "
                           f"{stride[0]} stride_width: {stride[1]} dilation_height: "
                           f"{dilation[0]} dilation_width: {dilation[1]}")
    if any(e >= s for e, s in zip(extra, stride)):  # (rows no input pixel's window reaches)
        raise input._error("conv_transpose2d", NotImplementedError,
                           f"output_padding {extra} must be smaller than the stride {stride}: "
                           "torch also allows it up to the dilation, which is not supported")
    kernel = tuple(weight.shape[2:])
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1 for n, s, p, d, k, e in
                 zip(input.shape[2:], stride, padding, dilation, kernel, extra))
    windows = Windows(kernel, stride, tuple((p, p) for p in padding), dilation)
    biases = [] if bias is None else [input._operand(bias)]
    return input._apply(P.conv_transpose2d, input, weight, *biases, windows=windows,
                        groups=int(groups), has_bias=bias is not None, size=size)


def _pool_windows(x, name: str, kernel_size, stride, padding, dilation, ceil_mode: bool):
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == [] else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    for p, k, d in zip(padding, kernel, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise x._error(name, ValueError, "pad should be at most half of effective kernel "
                           f"size, but got pad={p}, kernel_size={k} and dilation={d}")
    if x.ndim != 4 or None in x.shape[2:]:
        raise x._error(name, ShapeError, f"{name} expects a 4-D input (N, C, H, W) of known "
                       f"height and width, got shape {tuple(x.shape)}")
    return Windows.pooling(x.shape[2:], kernel, stride, tuple((p, p) for p in padding),
                           dilation, ceil_mode)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    windows = _pool_windows(input, "max_pool2d", kernel_size, stride, padding, dilation,
                            ceil_mode)
    return input._apply(P.max_pool2d, input, windows=windows)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None):
    windows = _pool_windows(input, "avg_pool2d", kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        raise input._error("avg_pool2d", ValueError, "divisor must be not zero, got "
                           f"{divisor_override!r}")
    return input._apply(P.avg_pool2d, input, windows=windows,
                        count_include_pad=bool(count_include_pad),
                        divisor_override=divisor_override)


def adaptive_avg_pool2d(input, output_size):
    """The mean over output_size windows that tile the image: output 1 (a global average
    pool) or sizes that divide the input's."""
    out = _pair(output_size, "output_size")
    if input.ndim != 4 or None in input.shape[2:]:
        raise input._error("adaptive_avg_pool2d", ShapeError, "expects a 4-D input of known "
                           f"height and width, got shape {tuple(input.shape)}")
    if out == (1, 1):
        return input.mean((2, 3), keepdim=True)
    if any(n % o for n, o in zip(input.shape[2:], out)):
        raise input._error("adaptive_avg_pool2d", ValueError, f"output size {out} must divide "
                           f"the input's {tuple(input.shape[2:])} (uneven windows are not "
                           "supported)")
    kernel = tuple(n // o for n, o in zip(input.shape[2:], out))
    windows = Windows(kernel, kernel, ((0, 0), (0, 0)))
    return input._apply(P.avg_pool2d, input, windows=windows, count_include_pad=True,
                        grad_name="AdaptiveAvgPool2DBackward0")
