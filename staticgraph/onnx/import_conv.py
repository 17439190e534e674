"""Converters of the convolutional-network ops: Conv, ConvTranspose, MaxPool, AveragePool,
GlobalAveragePool, GlobalMaxPool, Col2Im and BatchNormalization.

ONNX places windows with attributes (kernel_shape, strides, dilations, auto_pad, ceil_mode,
and pads as all begins then all ends, which may differ before and after); each converter
turns them into one ``Windows`` of ``staticgraph.ops.conv`` and applies the primitive with
it, as torch's arguments (and so ``functional``'s) cannot say asymmetric padding. Windows
span two spatial axes: 1-D and 3-D convolutions and pools are refused.
"""

from __future__ import annotations

import numpy as np

from ..graph import Node, constant
from ..ops import P, functional
from ..ops.conv import Pair, Windows, avg_pool_divisor
from .errors import ONNXError
from .shapes import Converter

_AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def _image(x: Node, op: str) -> None:
    if x.ndim != 4:
        raise ONNXError(f"{op} of an input of rank {x.ndim}: only 2-D {op} is supported "
                        "(inputs N x C x H x W)")


def _pair(attrs: dict, name: str, default: int = 1) -> Pair:
    value = attrs.get(name, [default] * 2)
    if len(value) != 2:
        raise ONNXError(f"{name} {list(value)}: one value per spatial axis (2) is expected")
    return int(value[0]), int(value[1])


def _kernel(attrs: dict, weight: Node) -> Pair:
    """The weight's kernel size, which kernel_shape (when given) must agree with."""
    if weight.ndim != 4 or None in weight.shape[2:]:
        raise ONNXError(f"a weight of shape {weight.shape}: 4-D with its kernel size known "
                        "when importing is needed")
    kernel = weight.shape[2:]
    if "kernel_shape" in attrs and _pair(attrs, "kernel_shape") != kernel:
        raise ONNXError(f"kernel_shape {list(attrs['kernel_shape'])} differs from the "
                        f"weight's kernel {list(kernel)}")
    return kernel


def _padding(attrs: dict, size: Pair, kernel: Pair, stride: Pair,
             dilation: Pair) -> tuple[Pair, Pair]:
    """(before, after) per spatial axis: ``pads``, or auto_pad's. SAME keeps ceil(n / stride)
    windows with the odd pixel after (SAME_UPPER) or before (SAME_LOWER)."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PADS:
        raise ONNXError(f"auto_pad {auto_pad!r}: one of {', '.join(_AUTO_PADS)} is expected")
    if auto_pad == "NOTSET":
        pads = attrs.get("pads", [0] * 4)
        if len(pads) != 4 or min(pads) < 0:
            raise ONNXError(f"pads {list(pads)}: 4 values (top, left, bottom, right), none "
                            "negative, are expected")
        return (pads[0], pads[2]), (pads[1], pads[3])
    if auto_pad == "VALID":
        return (0, 0), (0, 0)
    padding = []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
        small, large = total // 2, total - total // 2
        padding.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return tuple(padding)


def _windows(attrs: dict, size: Pair, kernel: Pair, ceil_mode: bool = False) -> Windows:
    """The windows ONNX's attributes place on an image of ``size`` (``Windows.pooling``)."""
    stride, dilation = _pair(attrs, "strides"), _pair(attrs, "dilations")
    return Windows.pooling(size, kernel, stride,
                           tuple(_padding(attrs, size, kernel, stride, dilation)), dilation,
                           ceil_mode)


def _biases(xs: list) -> list[Node]:
    return [xs[2]] if len(xs) > 2 and xs[2] is not None else []


def _conv(b, node, xs, attrs):
    x, w = xs[:2]
    _image(x, "Conv")
    windows = _windows(attrs, x.shape[2:], _kernel(attrs, w))
    biases = _biases(xs)
    return x._apply(P.conv2d, x, w, *biases, windows=windows, groups=attrs.get("group", 1),
                    has_bias=bool(biases))


def _conv_transpose(b, node, xs, attrs):
    """Each input pixel spread over a window of the output. The output's size is what the
    windows reach less pads, output_padding after; an output_shape (SAME: input times
    stride) sets it instead, the padding then split as auto_pad says (the spec's formula),
    and an output larger than the windows reach gets zeros after (as onnx's reference)."""
    x, w = xs[:2]
    _image(x, "ConvTranspose")
    kernel, size = _kernel(attrs, w), x.shape[2:]
    stride, dilation = _pair(attrs, "strides"), _pair(attrs, "dilations")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    wanted = attrs.get("output_shape")
    if wanted is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = [n * s for n, s in zip(size, stride)]
    pads = _padding(attrs, size, kernel, stride, dilation) if wanted is None else None
    padding, out_size = [], []
    for axis, (n, k, s, d, e) in enumerate(zip(size, kernel, stride, dilation,
                                               _pair(attrs, "output_padding", 0))):
        reach = s * (n - 1) + d * (k - 1) + 1
        if wanted is None:
            (before, after), out = pads[axis], reach + e - sum(pads[axis])
        else:
            out = wanted[-2:][axis]
            total = max(reach + e - out, 0)
            small, large = total // 2, total - total // 2
            before, after = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        past = out + before + after - reach
        if not 0 <= past < s:
            raise ONNXError(f"an output of size {out} along spatial axis {axis} reaches {past} "
                            "past the last window (output_padding or output_shape); 0 to "
                            f"stride - 1 ({s - 1}) are supported")
        padding.append((before, after))
        out_size.append(out)
    biases = _biases(xs)
    return x._apply(P.conv_transpose2d, x, w, *biases,
                    windows=Windows(kernel, stride, tuple(padding), dilation),
                    groups=attrs.get("group", 1), has_bias=bool(biases), size=tuple(out_size))


def _pool(x: Node, attrs: dict, op: str) -> tuple[Windows, tuple[Pair, Pair]]:
    """A pool's windows, and the padding its attributes give (ceil_mode's extra aside)."""
    _image(x, op)
    if "kernel_shape" not in attrs:
        raise ONNXError("kernel_shape is required")
    kernel = _pair(attrs, "kernel_shape")
    windows = _windows(attrs, x.shape[2:], kernel, bool(attrs.get("ceil_mode", 0)))
    padding = _padding(attrs, x.shape[2:], kernel, windows.stride, windows.dilation)
    if any(p >= k for pads, k in zip(padding, kernel) for p in pads):
        raise ONNXError(f"padding {[list(p) for p in padding]} (before, after per axis) must "
                        f"be smaller than the kernel {list(kernel)}")
    return windows, padding


def _max_pool(b, node, xs, attrs):
    if len(node.output) > 1 and node.output[1]:
        raise ONNXError("the Indices output (positions of the maxima) is not supported")
    x = xs[0]
    windows, _ = _pool(x, attrs, "MaxPool")
    return x._apply(P.max_pool2d, x, windows=windows)


def _average_pool(b, node, xs, attrs):
    """The primitive's average, rescaled where ONNX divides by another count: with
    count_include_pad, ONNX counts a window's taps in the padding before and after, which may
    differ (torch's divisor assumes them equal); never those in ceil_mode's extra padding."""
    x = xs[0]
    windows, padding = _pool(x, attrs, "AveragePool")
    include = bool(attrs.get("count_include_pad", 0))
    pooled = x._apply(P.avg_pool2d, x, windows=windows, count_include_pad=include)
    size = x.shape[2:]
    counts = []
    for n, k, s, d, (before, after), out in zip(size, windows.kernel, windows.stride,
                                                 windows.dilation, padding, pooled.shape[2:]):
        taps = (np.arange(out) * s - before)[:, None] + np.arange(k) * d
        low, high = (-before, n + after) if include else (0, n)
        counts.append(((taps >= low) & (taps < high)).sum(1))
    ratio = avg_pool_divisor(windows, size, include) / np.outer(*counts)
    if np.all(ratio == 1):
        return pooled
    return pooled * constant(ratio.astype(x.dtype))


def _global_pool(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        if x.ndim < 3:
            raise ONNXError(f"an input of shape {x.shape}: (N, C, spatial...) is expected")
        return getattr(x, method)(tuple(range(2, x.ndim)), keepdim=True)
    convert.__name__ = f"_global_{method}"
    return convert


def _col2im(b, node, xs, attrs):
    """Each column of (N, C * kh * kw, L) added back to the window of the image it came
    from (the adjoint of a convolution's im2col)."""
    cols = xs[0]
    size = tuple(b.static_ints(xs[1], "Col2Im's image_shape"))
    kernel = tuple(b.static_ints(xs[2], "Col2Im's block_shape"))
    if len(size) != 2 or len(kernel) != 2:
        raise ONNXError(f"an image of shape {list(size)}: only 2-D images are supported")
    windows = _windows(attrs, size, kernel)
    blocks = windows.out_size(size)
    taps = kernel[0] * kernel[1]
    if cols.ndim != 3 or cols.shape[1] is None or cols.shape[1] % taps or min(blocks) <= 0 or \
            cols.shape[2] not in (None, blocks[0] * blocks[1]):
        raise ONNXError(f"an input of shape {cols.shape}: (N, C * {taps}, "
                        f"{blocks[0] * blocks[1]}) is expected for {kernel[0]}x{kernel[1]} "
                        f"blocks over an image of size {list(size)}")
    cols = cols.reshape(-1, cols.shape[1] // taps, *kernel, *blocks)
    return cols._apply(P.col2im, cols, windows=windows, size=size)


def _batch_normalization(b, node, xs, attrs):
    """Inference: the running statistics. Training mode (opset 14): the batch's, and the
    running ones moved toward them (ONNX's momentum is the share kept, as onnx's reference,
    with the biased variance)."""
    x, scale, bias, mean, var = xs
    eps = attrs.get("epsilon", 1e-5)
    if not attrs.get("training_mode", 0):
        if any(node.output[1:]):
            raise ONNXError("running statistics as outputs need training_mode (opset 14)")
        return functional.batch_norm(x, mean, var, scale, bias, False, eps=eps)
    momentum = attrs.get("momentum", 0.9)
    axes = (0, *range(2, x.ndim))
    return [functional.batch_norm(x, None, None, scale, bias, True, eps=eps),
            mean * momentum + x.mean(axes) * (1 - momentum),
            var * momentum + x.var(axes, correction=0) * (1 - momentum)]


CONV_CONVERTERS: dict[str, Converter] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _max_pool,
    "AveragePool": _average_pool, "GlobalAveragePool": _global_pool("mean"),
    "GlobalMaxPool": _global_pool("amax"), "Col2Im": _col2im,
    "BatchNormalization": _batch_normalization,
}
