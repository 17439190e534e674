"""Convolutions and pooling over images (NCHW), on two movement primitives.

``im2col`` lays out every sliding window of x side by side (the column matrix of the
classic im2col convolution, shaped N, C, kh, kw, Ho, Wo) and ``col2im`` is its adjoint: it
adds each window back where it came from. Each is the other's gradient, so everything built
on them differentiates to any order:

- ``conv2d`` is im2col then one matmul per group; the gradient of its input is
  ``conv_transpose2d``, which is that matmul's adjoint then col2im, and the other way round;
- ``max_pool2d`` and ``avg_pool2d`` reduce each window.

Each of those four is a composite primitive: one fast kernel and one recorded node in eager
(with torch's grad_fn name), a decomposition into im2col/col2im and the primitives the
compiler already fuses and plans (so an im2col buffer is planned like any other value), and
one ONNX operator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError

Pair = tuple[int, int]


@dataclass(frozen=True)
class Windows:
    """Where the windows of a 2-D sliding operation lie. ``padding`` is (before, after) per
    spatial axis: pooling's ceil_mode pads more after than before."""

    kernel: Pair
    stride: Pair
    padding: tuple[Pair, Pair]
    dilation: Pair = (1, 1)

    def out_size(self, size: tuple) -> tuple:
        """The number of windows along each axis of an input of ``size`` (None: unknown)."""
        return tuple(None if n is None else (n + sum(p) - d * (k - 1) - 1) // s + 1
                     for n, k, s, p, d in zip(size, self.kernel, self.stride, self.padding,
                                              self.dilation))

    def view(self, x: np.ndarray, pad_value: float = 0.0) -> np.ndarray:
        """x's windows, (N, C, kh, kw, Ho, Wo), as a read-only view (of a padded copy where
        there is padding): no element is copied until a kernel reads them."""
        ho, wo = self.out_size(x.shape[2:])
        (pt, pb), (pl, pr) = self.padding
        if pt or pb or pl or pr:
            x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
        sn, sc, sh, sw = x.strides
        (dh, dw), (th, tw) = self.dilation, self.stride
        return np.lib.stride_tricks.as_strided(
            x, (*x.shape[:2], *self.kernel, ho, wo),
            (sn, sc, sh * dh, sw * dw, sh * th, sw * tw), writeable=False)

    def scatter(self, cols: np.ndarray, size: Pair) -> np.ndarray:
        """col2im: every window's values added back where the window lies, padding cut off."""
        (pt, pb), (pl, pr) = self.padding
        (dh, dw), (sh, sw) = self.dilation, self.stride
        ho, wo = cols.shape[4:]
        out = np.zeros((*cols.shape[:2], size[0] + pt + pb, size[1] + pl + pr), cols.dtype)
        for p in range(self.kernel[0]):  # kh * kw strided adds, each over the whole batch
            for q in range(self.kernel[1]):
                out[:, :, p * dh:p * dh + sh * (ho - 1) + 1:sh,
                    q * dw:q * dw + sw * (wo - 1) + 1:sw] += cols[:, :, p, q]
        return np.ascontiguousarray(out[:, :, pt:pt + size[0], pl:pl + size[1]])


def _image(x, what: str) -> tuple[int, int]:
    """The known height and width of a (N, C, H, W) value."""
    if x.ndim != 4:
        raise ShapeError(f"{what} expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if None in x.shape[2:]:
        raise ShapeError(f"{what} needs the height and width of its input to be known, got "
                         f"shape {tuple(x.shape)}")
    return x.shape[2], x.shape[3]


def _windows_shape(x, windows: Windows, what: str) -> Shape:
    size = _image(x, what)
    out = windows.out_size(size)
    if min(out) <= 0:
        padded = tuple(n + sum(p) for n, p in zip(size, windows.padding))
        raise ShapeError(f"Calculated padded input size per channel: ({padded[0]} x "
                         f"{padded[1]}). Kernel size: ({windows.kernel[0]} x "
                         f"{windows.kernel[1]}). Kernel size can't be greater than actual "
                         "input size")
    return (*x.shape[:2], *windows.kernel, *out)


# -- the two movement primitives -----------------------------------------------------------------

def _im2col_kernel(x, windows: Windows, pad_value: float):
    return np.ascontiguousarray(windows.view(x, pad_value))


def _col2im_kernel(cols, windows: Windows, size: Pair):
    return windows.scatter(cols, size)


# x's sliding windows side by side, padded with ``pad_value`` (max pooling pads with -inf).
im2col = Primitive(
    name="im2col", kind=Kind.OPAQUE, kernel=_im2col_kernel,
    shape_rule=lambda x, windows, pad_value: _windows_shape(x, windows, "im2col"),
    dtype_rule=lambda x, windows, pad_value: x.dtype,
    vjps=(lambda g, out, x, windows, pad_value: g._apply(col2im, g, windows=windows,
                                                         size=x.shape[2:]),),
    grad_name="Im2ColBackward0")
# The adjoint: each window's values added back to the (size) image they came from.
col2im = Primitive(
    name="col2im", kind=Kind.OPAQUE, kernel=_col2im_kernel,
    shape_rule=lambda cols, windows, size: (*cols.shape[:2], *size),
    dtype_rule=lambda cols, windows, size: cols.dtype,
    vjps=(lambda g, out, cols, windows, size: g._apply(im2col, g, windows=windows,
                                                       pad_value=0.0),),
    grad_name="Col2ImBackward0")


def _columns(x, windows: Windows, pad_value: float = 0.0):
    return x._apply(im2col, x, windows=windows, pad_value=pad_value)


def _per_group(value, groups: int):
    """(N, C, kh, kw, Ho, Wo) windows, or (N, C, H, W) images, as (N, G, C/G * ..., L)."""
    spatial = value.shape[-2] * value.shape[-1]
    return value.reshape(-1, groups, math.prod(value.shape[1:-2]) // groups, spatial)


# -- conv2d and conv_transpose2d -----------------------------------------------------------------

def _check_same_dtype(x, w) -> np.dtype:
    if x.dtype != w.dtype:
        raise dtypes.DTypeError(f"Input type ({dtypes.torch_name(x.dtype)}) and weight type "
                                f"({dtypes.torch_name(w.dtype)}) should be the same")
    if not dtypes.is_floating(x.dtype):
        raise dtypes.DTypeError("convolutions compute in floating point, got "
                                + dtypes.torch_name(x.dtype))
    return x.dtype


def _conv_shape(x, w, *bias, windows: Windows, groups: int, has_bias: bool) -> Shape:
    _image(x, "conv2d")
    if w.ndim != 4 or None in w.shape:
        raise ShapeError(f"conv2d expects a known 4-D weight (out, in / groups, kh, kw), got "
                         f"{tuple(w.shape)}")
    if x.shape[1] is not None and x.shape[1] != w.shape[1] * groups:
        raise ShapeError(f"Given groups={groups}, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {w.shape[1] * groups} channels, but "
                         f"got {x.shape[1]} channels instead")
    if w.shape[0] % groups:
        raise ShapeError(f"the {w.shape[0]} output channels of conv2d do not divide into "
                         f"{groups} groups")
    if has_bias and tuple(bias[0].shape) != (w.shape[0],):
        raise ShapeError(f"conv2d's bias needs shape ({w.shape[0]},), got {tuple(bias[0].shape)}")
    n, _, *_, ho, wo = _windows_shape(x, windows, "conv2d")
    return n, w.shape[0], ho, wo


def _conv_kernel(x, w, *bias, windows: Windows, groups: int, has_bias: bool):
    cols = windows.view(x)                                     # (N, C, kh, kw, Ho, Wo)
    n, c, kh, kw, ho, wo = cols.shape
    out_channels = w.shape[0]
    # One copy makes the im2col matrix (G, C/G * kh * kw, N * Ho * Wo): one GEMM per group.
    matrix = cols.transpose(1, 2, 3, 0, 4, 5).reshape(groups, c // groups * kh * kw, -1)
    out = np.matmul(w.reshape(groups, out_channels // groups, -1), matrix)
    out = out.reshape(out_channels, n, ho, wo).transpose(1, 0, 2, 3)
    if has_bias:
        out = out + bias[0].reshape(1, -1, 1, 1)
    return np.ascontiguousarray(out)


def _conv_decomposition(x, w, *bias, windows: Windows, groups: int, has_bias: bool):
    cols = _columns(x, windows)
    out_channels = w.shape[0]
    out = w.reshape(groups, out_channels // groups, -1) @ _per_group(cols, groups)
    out = out.reshape(-1, out_channels, *cols.shape[4:])
    return out + bias[0].reshape(1, -1, 1, 1) if has_bias else out


def _weight_gradient(images, grads, windows: Windows, groups: int, weight_shape: tuple):
    """sum over the batch of grads (N, G, Og, L) times the windows of images, transposed:
    the gradient of both convolutions' weights (their roles swapped for the transpose)."""
    cols = _per_group(_columns(images, windows), groups)       # (N, G, K, L)
    return (grads @ cols.transpose(2, 3)).sum(0).reshape(weight_shape)


def _conv_vjp(g, out, x, w, *bias, windows: Windows, groups: int, has_bias: bool, index: int):
    if index == 0:  # the adjoint of conv2d in its input: the transposed convolution
        return g._apply(conv_transpose2d, g, w, windows=windows, groups=groups,
                        has_bias=False, size=x.shape[2:])
    if index == 1:
        return _weight_gradient(x, _per_group(g, groups), windows, groups, w.shape)
    return g.sum((0, 2, 3))


def _conv_transpose_shape(x, w, *bias, windows: Windows, groups: int, has_bias: bool,
                          size: Pair) -> Shape:
    _image(x, "conv_transpose2d")
    if w.ndim != 4 or None in w.shape:
        raise ShapeError(f"conv_transpose2d expects a known 4-D weight (in, out / groups, kh, "
                         f"kw), got {tuple(w.shape)}")
    if x.shape[1] is not None and x.shape[1] != w.shape[0]:
        raise ShapeError(f"Given transposed=1, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {w.shape[0]} channels, but got "
                         f"{x.shape[1]} channels instead")
    if w.shape[0] % groups:
        raise ShapeError(f"the {w.shape[0]} input channels of conv_transpose2d do not divide "
                         f"into {groups} groups")
    out_channels = w.shape[1] * groups
    if has_bias and tuple(bias[0].shape) != (out_channels,):
        raise ShapeError(f"conv_transpose2d's bias needs shape ({out_channels},), got "
                         f"{tuple(bias[0].shape)}")
    if windows.out_size(size) != tuple(x.shape[2:]):
        raise ShapeError(f"conv_transpose2d: an output of size {tuple(size)} does not give "
                         f"back an input of size {tuple(x.shape[2:])}")
    return x.shape[0], out_channels, *size


def _transposed_weight(w, groups: int):
    """(in, out / G, kh, kw) as (G, out / G * kh * kw, in / G): the matrix that maps each
    pixel's input channels to the windows it contributes to."""
    return w.reshape(groups, w.shape[0] // groups, -1).transpose(1, 2)


def _conv_transpose_kernel(x, w, *bias, windows: Windows, groups: int, has_bias: bool,
                           size: Pair):
    n, _, h, wd = x.shape
    kh, kw = windows.kernel
    wt = w.reshape(groups, w.shape[0] // groups, -1).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, groups, -1, h * wd))     # (N, G, out/G * kh * kw, L)
    out = windows.scatter(cols.reshape(n, w.shape[1] * groups, kh, kw, h, wd), size)
    return out + bias[0].reshape(1, -1, 1, 1) if has_bias else out


def _conv_transpose_decomposition(x, w, *bias, windows: Windows, groups: int, has_bias: bool,
                                  size: Pair):
    cols = _transposed_weight(w, groups) @ _per_group(x, groups)
    cols = cols.reshape(-1, w.shape[1] * groups, *windows.kernel, *x.shape[2:])
    out = cols._apply(col2im, cols, windows=windows, size=size)
    return out + bias[0].reshape(1, -1, 1, 1) if has_bias else out


def _conv_transpose_vjp(g, out, x, w, *bias, windows: Windows, groups: int, has_bias: bool,
                        size: Pair, index: int):
    if index == 0:  # the adjoint of the transposed convolution in its input: conv2d
        return g._apply(conv2d, g, w, windows=windows, groups=groups, has_bias=False)
    if index == 1:
        return _weight_gradient(g, _per_group(x, groups), windows, groups, w.shape)
    return g.sum((0, 2, 3))


conv2d = Primitive(
    name="conv2d", kind=Kind.OPAQUE, kernel=_conv_kernel, shape_rule=_conv_shape,
    dtype_rule=lambda x, w, *bias, **_: _check_same_dtype(x, w), vjps=_conv_vjp,
    saves=Saves.INPUTS, grad_name="ConvolutionBackward0", decomposition=_conv_decomposition)
conv_transpose2d = Primitive(
    name="conv_transpose2d", kind=Kind.OPAQUE, kernel=_conv_transpose_kernel,
    shape_rule=_conv_transpose_shape,
    dtype_rule=lambda x, w, *bias, **_: _check_same_dtype(x, w), vjps=_conv_transpose_vjp,
    saves=Saves.INPUTS, grad_name="ConvolutionBackward0",
    decomposition=_conv_transpose_decomposition)


# -- pooling ---------------------------------------------------------------------------------------

def _pool_dtype(x, **_) -> np.dtype:
    if not dtypes.is_floating(x.dtype):
        raise dtypes.DTypeError("pooling computes in floating point, got "
                                + dtypes.torch_name(x.dtype))
    return x.dtype


def _pool_shape(name: str):
    def rule(x, windows: Windows, **_) -> Shape:
        n, c, *_, ho, wo = _windows_shape(x, windows, name)
        return n, c, ho, wo
    return rule


def _max_pool_kernel(x, windows: Windows):
    return windows.view(x, -np.inf).max((2, 3))


def _max_pool_decomposition(x, windows: Windows):
    return _columns(x, windows, -np.inf).amax((2, 3))


def _max_pool_vjp(g, out, x, windows: Windows):
    """torch's: each window's gradient goes to its first maximum (a NaN counts as one)."""
    cols = _columns(x, windows, -np.inf)
    _, channels, kh, kw, ho, wo = cols.shape
    first = cols.reshape(-1, channels, kh * kw, ho, wo).argmax(2, keepdim=True)
    hit = first == x._lift(np.arange(kh * kw)).reshape(1, 1, -1, 1, 1)
    # where, not a product with the one-hot: an infinite g must not become nan elsewhere
    picked = g.unsqueeze(2).where(hit, 0).reshape(-1, channels, kh, kw, ho, wo)
    return picked._apply(col2im, picked, windows=windows, size=x.shape[2:])


max_pool2d = Primitive(
    name="max_pool2d", kind=Kind.OPAQUE, kernel=_max_pool_kernel,
    shape_rule=_pool_shape("max_pool2d"), dtype_rule=_pool_dtype, vjps=(_max_pool_vjp,),
    saves=Saves.INPUTS, grad_name="MaxPool2DWithIndicesBackward0",
    decomposition=_max_pool_decomposition)


def avg_pool_divisor(windows: Windows, size: Pair, count_include_pad: bool) -> np.ndarray:
    """What each window's sum is divided by (Ho, Wo), as torch's avg_pool2d: the window's
    size within the symmetric padding, or within the image itself; ceil_mode's extra row or
    column after the padding never counts."""
    counts = []
    for n, k, s, (before, _), out in zip(size, windows.kernel, windows.stride,
                                         windows.padding, windows.out_size(size)):
        start = np.arange(out) * s - before
        end = np.minimum(start + k, n + before)
        counts.append(end - start if count_include_pad else
                      np.minimum(end, n) - np.maximum(start, 0))
    return np.outer(*counts)


def _avg_pool_kernel(x, windows: Windows, count_include_pad: bool):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad).astype(x.dtype)
    return windows.view(x).sum((2, 3)) / divisor


def _avg_pool_decomposition(x, windows: Windows, count_include_pad: bool):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad)
    return _columns(x, windows).sum((2, 3)) / x._lift(divisor.astype(x.dtype))


def _avg_pool_vjp(g, out, x, windows: Windows, count_include_pad: bool):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad)
    share = (g / g._lift(divisor.astype(g.dtype))).unsqueeze((2, 3))
    spread = share.expand(-1, -1, *windows.kernel, -1, -1)
    return spread._apply(col2im, spread, windows=windows, size=x.shape[2:])


avg_pool2d = Primitive(
    name="avg_pool2d", kind=Kind.OPAQUE, kernel=_avg_pool_kernel,
    shape_rule=_pool_shape("avg_pool2d"), dtype_rule=_pool_dtype, vjps=(_avg_pool_vjp,),
    saves=Saves.INPUTS, grad_name="AvgPool2DBackward0", decomposition=_avg_pool_decomposition)

PRIMITIVES = (im2col, col2im, conv2d, conv_transpose2d, max_pool2d, avg_pool2d)
