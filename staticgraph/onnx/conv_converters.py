"""ONNX converters of the convolutional-network primitives: Conv, ConvTranspose, MaxPool and
AveragePool with explicit pads (pooling's ceil_mode is padding after), the windows their
gradients use (im2col as Pad and one strided Slice per kernel position, col2im as Col2Im),
and the activations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ops import P
from ..ops.conv import Windows, avg_pool_divisor
from .lowering import reshape

if TYPE_CHECKING:
    from .export import Context


def _geometry(windows: Windows) -> dict:
    """ONNX's attributes of a window layout: pads are the begins of each axis, then ends."""
    (pt, pb), (pl, pr) = windows.padding
    return dict(kernel_shape=list(windows.kernel), strides=list(windows.stride),
                pads=[pt, pl, pb, pr], dilations=list(windows.dilation))


def _inputs(ctx: Context) -> list[str]:
    return [ctx.input(i) for i in range(len(ctx.node.inputs))]


def convert_im2col(ctx: Context) -> str:
    """x padded, then for each kernel position (p, q) the strided slice of the pixels that
    position sees in every window: stacked, the (N, C, kh, kw, Ho, Wo) columns."""
    windows = ctx.params["windows"]
    (pt, pb), (pl, pr) = windows.padding
    x = ctx.input(0)
    if pt or pb or pl or pr:
        x = ctx.emit("Pad", x, ctx.ints([0, 0, pt, pl, 0, 0, pb, pr]),
                     ctx.scalar(ctx.params["pad_value"]))
    ho, wo = ctx.node.shape[4:]
    (dh, dw), (sh, sw) = windows.dilation, windows.stride
    positions = [ctx.emit("Unsqueeze", ctx.emit(
        "Slice", x, ctx.ints([p * dh, q * dw]),
        ctx.ints([p * dh + sh * (ho - 1) + 1, q * dw + sw * (wo - 1) + 1]), ctx.ints([2, 3]),
        ctx.ints([sh, sw])), ctx.ints([2]))
        for p in range(windows.kernel[0]) for q in range(windows.kernel[1])]
    stacked = ctx.emit("Concat", *positions, axis=2)       # (N, C, kh * kw, Ho, Wo)
    return reshape(ctx, stacked, (-1, *ctx.node.shape[1:]))


def convert_col2im(ctx: Context) -> str:
    """Col2Im (opset 18) on the columns as (N, C * kh * kw, Ho * Wo)."""
    ctx.require(18, "col2im (a convolution's gradient) as Col2Im")
    windows, size = ctx.params["windows"], ctx.params["size"]
    _, channels, kh, kw, ho, wo = ctx.shape(0)
    cols = reshape(ctx, ctx.input(0), (-1, channels * kh * kw, ho * wo))
    geometry = _geometry(windows)
    del geometry["kernel_shape"]
    return ctx.emit("Col2Im", cols, ctx.ints(size), ctx.ints(windows.kernel), **geometry)


def convert_conv2d(ctx: Context) -> str:
    return ctx.emit("Conv", *_inputs(ctx), group=ctx.params["groups"],
                    **_geometry(ctx.params["windows"]))


def convert_conv_transpose2d(ctx: Context) -> str:
    """ConvTranspose with its output_padding: the rows and columns the output has beyond
    what its input's windows cover."""
    windows, size = ctx.params["windows"], ctx.params["size"]
    covered = [(n - 1) * s - sum(p) + d * (k - 1) + 1 for n, s, p, d, k in
               zip(ctx.shape(0)[2:], windows.stride, windows.padding, windows.dilation,
                   windows.kernel)]
    return ctx.emit("ConvTranspose", *_inputs(ctx), group=ctx.params["groups"],
                    output_padding=[n - c for n, c in zip(size, covered)],
                    **_geometry(windows))


def convert_max_pool2d(ctx: Context) -> str:
    return ctx.emit("MaxPool", ctx.input(0), **_geometry(ctx.params["windows"]))


def convert_avg_pool2d(ctx: Context) -> str:
    """AveragePool. Where ONNX's divisor is not torch's (ceil_mode's extra padding after,
    which torch never counts even with count_include_pad; a divisor_override), the average
    of the elements in the image is rescaled by a constant per window: the elements in the
    image over torch's divisor."""
    windows, include = ctx.params["windows"], ctx.params["count_include_pad"]
    override = ctx.params.get("divisor_override")
    geometry = _geometry(windows)
    del geometry["dilations"]  # (AveragePool has them only from opset 19; they are all 1)
    extra = any(after > before for before, after in windows.padding)
    exact = override is None and not (include and extra)
    pooled = ctx.emit("AveragePool", ctx.input(0), count_include_pad=int(include and exact),
                      **geometry)
    if exact:
        return pooled
    size = ctx.shape(0)[2:]
    ratio = avg_pool_divisor(windows, size, False) / \
        avg_pool_divisor(windows, size, include, override)
    return ctx.emit("Mul", pooled, ctx.const(ratio.astype(ctx.node.dtype)))


# onnxruntime runs LeakyRelu and Elu in float32 only: other dtypes get their formulas.

def convert_leaky_relu(ctx: Context) -> str:
    x, slope = ctx.input(0), ctx.params["negative_slope"]
    if ctx.node.dtype == np.float32:
        return ctx.emit("LeakyRelu", x, alpha=slope)
    positive = ctx.emit("Greater", x, ctx.scalar(0))
    return ctx.emit("Where", positive, x, ctx.emit("Mul", x, ctx.scalar(slope)))


def convert_elu(ctx: Context) -> str:
    x, alpha = ctx.input(0), ctx.params["alpha"]
    if ctx.node.dtype == np.float32:
        return ctx.emit("Elu", x, alpha=alpha)
    below = ctx.emit("Sub", ctx.emit("Exp", ctx.emit("Min", x, ctx.scalar(0))), ctx.scalar(1))
    return ctx.emit("Where", ctx.emit("Greater", x, ctx.scalar(0)), x,
                    ctx.emit("Mul", below, ctx.scalar(alpha)))


def convert_silu(ctx: Context) -> str:
    x = ctx.input(0)
    return ctx.emit("Mul", x, ctx.emit("Sigmoid", x))


def convert_hardtanh(ctx: Context) -> str:
    return ctx.emit("Clip", ctx.input(0), ctx.scalar(ctx.params["min_val"]),
                    ctx.scalar(ctx.params["max_val"]))


CONV_CONVERTERS = {P.conv2d: convert_conv2d, P.conv_transpose2d: convert_conv_transpose2d,
                   P.max_pool2d: convert_max_pool2d, P.avg_pool2d: convert_avg_pool2d,
                   P.leaky_relu: convert_leaky_relu, P.elu: convert_elu, P.silu: convert_silu,
                   P.hardtanh: convert_hardtanh, P.im2col: convert_im2col,
                   P.col2im: convert_col2im}
