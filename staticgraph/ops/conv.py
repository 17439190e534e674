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

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from . import dtypes
from .movement import concat
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError

Pair = tuple[int, int]
SHORT_ROW = 16  # pixels: col2im's adds run along rows at least this long


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

    def view(self, x: np.ndarray, pad_value: float = 0.0, writeable: bool = False
             ) -> np.ndarray:
        """x's windows, (N, C, kh, kw, Ho, Wo), as a view (of a padded copy where there is
        padding): no element is copied until a kernel reads them."""
        ho, wo = self.out_size(x.shape[2:])
        (pt, pb), (pl, pr) = self.padding
        if pt or pb or pl or pr:
            x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
        sn, sc, sh, sw = x.strides
        (dh, dw), (th, tw) = self.dilation, self.stride
        return np.lib.stride_tricks.as_strided(
            x, (*x.shape[:2], *self.kernel, ho, wo),
            (sn, sc, sh * dh, sw * dw, sh * th, sw * tw), writeable=writeable)

    @classmethod
    def pooling(cls, size: Pair, kernel: Pair, stride: Pair, padding: tuple[Pair, Pair],
                dilation: Pair, ceil_mode: bool) -> Windows:
        """A pool's windows on an image of ``size``. ceil_mode adds the padding after that a
        last, partial window needs, if that window starts in the image or in the padding
        before (the rule of torch and ONNX alike)."""
        pads = []
        for n, k, s, (before, after), d in zip(size, kernel, stride, padding, dilation):
            span = d * (k - 1) + 1
            if ceil_mode:
                count = -(-(n + before + after - span) // s) + 1
                if (count - 1) * s >= n + before:
                    count -= 1
                after = max(after, (count - 1) * s + span - n - before)
            pads.append((before, after))
        return cls(kernel, stride, tuple(pads), dilation)

    def tiles(self, size: Pair) -> bool:
        """The windows tile an image of ``size`` exactly (2x2 pooling of even sizes): they
        are then a reshape of it, (N, C, Ho, kh, Wo, kw), with nothing to copy."""
        return self.stride == self.kernel and self.dilation == (1, 1) and \
            self.padding == ((0, 0), (0, 0)) and not any(n % k for n, k in
                                                         zip(size, self.kernel))

    @property
    def overlapping(self) -> bool:
        return any(s < d * (k - 1) + 1 for k, s, d in zip(self.kernel, self.stride,
                                                          self.dilation))

    def scatter(self, cols: np.ndarray, size: Pair, out: np.ndarray | None = None
                ) -> np.ndarray:
        """col2im: every window's values added back where the window lies, padding cut off;
        into ``out`` where given (the numpy runtime's planned buffer: where there is no
        padding to cut off, the adds go straight into it).
        Windows that do not overlap (pooling's) are one strided copy; overlapping ones are
        kh * kw strided adds. Each add's inner loop runs along a row of Wo pixels: where
        rows are short (deep layers' small images), the image is laid out (H, W, N * C)
        first, so that the loops run along the batch and channels instead (2x faster for
        LeNet's 8x8; 5x slower, for the transposes, for 32x32 images)."""
        (pt, pb), (pl, pr) = self.padding
        n, c, kh, kw, ho, wo = cols.shape
        padded = (size[0] + pt + pb, size[1] + pl + pr)
        (dh, dw), (sh, sw) = self.dilation, self.stride
        where = [(p, q, (slice(p * dh, p * dh + sh * (ho - 1) + 1, sh),
                         slice(q * dw, q * dw + sw * (wo - 1) + 1, sw)))
                 for p in range(kh) for q in range(kw)]

        def blank() -> np.ndarray:
            if out is not None and padded == tuple(size):
                out.fill(0)
                return out
            return np.zeros((n, c, *padded), cols.dtype)
        if not self.overlapping:  # (``image`` is padded already: its windows, unpadded)
            image = blank()
            unpadded = dataclasses.replace(self, padding=((0, 0), (0, 0)))
            unpadded.view(image, writeable=True)[...] = cols
        elif wo >= SHORT_ROW:
            image = blank()
            for p, q, (rows, columns) in where:
                image[:, :, rows, columns] += cols[:, :, p, q]
        else:
            pixels = np.ascontiguousarray(cols.transpose(2, 3, 4, 5, 0, 1))
            pixels = pixels.reshape(kh, kw, ho, wo, n * c)
            channels_last = np.zeros((*padded, n * c), cols.dtype)
            for p, q, (rows, columns) in where:
                channels_last[rows, columns] += pixels[p, q]
            image = channels_last.reshape(*padded, n, c).transpose(2, 3, 0, 1)
        if image is out:  # (nothing to cut off: the adds went straight into it)
            return out
        cropped = image[:, :, pt:pt + size[0], pl:pl + size[1]]
        if out is None:
            return np.ascontiguousarray(cropped)
        np.copyto(out, cropped)
        return out


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
        raise dtypes.DTypeError(f"Input type (torch.{dtypes.torch_name(x.dtype)}Tensor) and "
                                f"weight type (torch.{dtypes.torch_name(w.dtype)}Tensor) "
                                "should be the same")
    if not dtypes.is_floating(x.dtype):
        raise dtypes.DTypeError("convolutions compute in floating point, got "
                                + dtypes.torch_name(x.dtype))
    return x.dtype


def _check_operands(what: str, x, w, bias: tuple, groups: int, transposed: bool) -> int:
    """A convolution's image, weight and bias fit together (torch's messages); returns the
    number of output channels."""
    _image(x, what)
    if w.ndim != 4 or None in w.shape:
        layout = "(in, out / groups, kh, kw)" if transposed else "(out, in / groups, kh, kw)"
        raise ShapeError(f"{what} expects a known 4-D weight {layout}, got {tuple(w.shape)}")
    in_channels = w.shape[0] if transposed else w.shape[1] * groups
    out_channels = w.shape[1] * groups if transposed else w.shape[0]
    if x.shape[1] is not None and x.shape[1] != in_channels:
        given = "transposed=1" if transposed else f"groups={groups}"
        raise ShapeError(f"Given {given}, weight of size {list(w.shape)}, expected "
                         f"input{list(x.shape)} to have {in_channels} channels, but got "
                         f"{x.shape[1]} channels instead")
    if w.shape[0] % groups:
        raise ShapeError(f"the {w.shape[0]} {'input' if transposed else 'output'} channels "
                         f"of {what} do not divide into {groups} groups")
    if bias and tuple(bias[0].shape) != (out_channels,):
        raise ShapeError(f"{what}'s bias needs shape ({out_channels},), got "
                         f"{tuple(bias[0].shape)}")
    return out_channels


def _conv_shape(x, w, *bias, windows: Windows, groups: int, has_bias: bool) -> Shape:
    out_channels = _check_operands("conv2d", x, w, bias, groups, transposed=False)
    n, _, *_, ho, wo = _windows_shape(x, windows, "conv2d")
    return n, out_channels, ho, wo


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
    out_channels = _check_operands("conv_transpose2d", x, w, bias, groups, transposed=True)
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
    cols = np.matmul(wt, x.reshape(n, groups, x.shape[1] // groups, h * wd))  # (N, G, K, L)
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


def _conv_absorbing(scale, shift, x, w, *bias, windows: Windows, groups: int,
                    has_bias: bool):
    """conv2d(x, w, b) * scale + shift is conv2d(x, w * scale, b * scale + shift)."""
    shift = shift if not has_bias else bias[0] * scale + shift
    return (x, w * scale.reshape(-1, 1, 1, 1), shift), dict(windows=windows, groups=groups,
                                                             has_bias=True)


conv2d = Primitive(
    name="conv2d", kind=Kind.OPAQUE, kernel=_conv_kernel, shape_rule=_conv_shape,
    dtype_rule=lambda x, w, *bias, **_: _check_same_dtype(x, w), vjps=_conv_vjp,
    saves=Saves.INPUTS, grad_name="ConvolutionBackward0", decomposition=_conv_decomposition,
    absorb_channel_affine=_conv_absorbing)
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


def _pooled(x, windows: Windows, pad_value: float) -> tuple:
    """x's windows and the axes of the positions within each: a reshape (N, C, Ho, kh, Wo,
    kw) where the windows tile the image, else im2col's columns (N, C, kh, kw, Ho, Wo).
    Works on arrays and on the surface alike."""
    axes = _pooled_axes(x, windows)
    if axes == (3, 5):
        (kh, kw), (ho, wo) = windows.kernel, windows.out_size(x.shape[2:])
        return x.reshape(-1, x.shape[1], ho, kh, wo, kw), axes
    if isinstance(x, np.ndarray):
        return windows.view(x, pad_value), (2, 3)
    return _columns(x, windows, pad_value), (2, 3)


def _back_to_image(shares, axes: tuple, x, windows: Windows):
    """Per-position values (N, C, Ho, Wo), position (p, q) at ``shares[p][q]``, laid back out
    as windows of ``_pooled``'s layout and added back onto an image of x's shape."""
    rows = [row[0]._apply(concat, *(s.unsqueeze(axes) for s in row), axis=axes[1])
            for row in shares]
    windowed = rows[0]._apply(concat, *rows, axis=axes[0])
    if axes == (3, 5):  # the tiling: a reshape back
        return windowed.reshape(-1, *x.shape[1:])
    return windowed._apply(col2im, windowed, windows=windows, size=x.shape[2:])


def _position(windowed, axes: tuple, p: int, q: int):
    """The (N, C, Ho, Wo) values at position (p, q) of every window: a strided view."""
    index = [slice(None)] * windowed.ndim
    index[axes[0]], index[axes[1]] = p, q
    return windowed[tuple(index)]


def _fold_positions(x, windows: Windows, pad_value: float, combine):
    """The windows' positions combined one by one: elementwise ops on strided views, which
    fuse (a reduction over two small middle axes is numpy's slowest kind)."""
    windowed, axes = _pooled(x, windows, pad_value)
    return functools.reduce(combine, (_position(windowed, axes, p, q)
                                      for p in range(windows.kernel[0])
                                      for q in range(windows.kernel[1])))


def _max_pool_kernel(x, windows: Windows):
    pooled = _fold_positions(x, windows, -np.inf, np.maximum)  # (NaN wins, as torch's)
    # A 1x1 window is x itself, a view; a kernel's result is its own memory (the table's
    # ALLOCATES: the memory plan relies on it).
    return pooled.copy() if np.may_share_memory(pooled, x) else pooled


def _max_pool_decomposition(x, windows: Windows):
    return _fold_positions(x, windows, -np.inf, lambda a, b: a.maximum(b))


def _max_pool_vjp(g, out, x, windows: Windows):
    """torch's: each window's gradient goes to its first maximum (a NaN counts as one).
    Found position by position with elementwise ops, which fuse (an argmax over each
    window's positions would be a slow reduction along a middle axis)."""
    windowed, axes = _pooled(x, windows, -np.inf)
    taken, shares = None, []
    for p in range(windows.kernel[0]):
        shares.append([])
        for q in range(windows.kernel[1]):
            value = _position(windowed, axes, p, q)
            hit = (value == out) | (value != value)
            first = hit if taken is None else hit & ~taken
            taken = hit if taken is None else taken | hit
            # where, not a product with a mask: an infinite g must not become nan elsewhere
            shares[-1].append(g.where(first, 0))
    return _back_to_image(shares, axes, x, windows)


max_pool2d = Primitive(
    name="max_pool2d", kind=Kind.OPAQUE, kernel=_max_pool_kernel,
    shape_rule=_pool_shape("max_pool2d"), dtype_rule=_pool_dtype, vjps=(_max_pool_vjp,),
    saves=Saves.INPUTS | Saves.OUTPUT, grad_name="MaxPool2DWithIndicesBackward0",
    decomposition=_max_pool_decomposition)


def avg_pool_divisor(windows: Windows, size: Pair, count_include_pad: bool,
                     divisor_override: int | None = None) -> np.ndarray:
    """What each window's sum is divided by (Ho, Wo), as torch's avg_pool2d: the window's
    size within the symmetric padding, or within the image itself (ceil_mode's extra row or
    column after the padding never counts), or ``divisor_override`` for every window."""
    if divisor_override is not None:
        return np.full(windows.out_size(size), divisor_override)
    counts = []
    for n, k, s, (before, _), out in zip(size, windows.kernel, windows.stride,
                                         windows.padding, windows.out_size(size)):
        start = np.arange(out) * s - before
        end = np.minimum(start + k, n + before)
        counts.append(end - start if count_include_pad else
                      np.minimum(end, n) - np.maximum(start, 0))
    return np.outer(*counts)


def _avg_pool_kernel(x, windows: Windows, count_include_pad: bool,
                     divisor_override: int | None = None):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad, divisor_override)
    return _fold_positions(x, windows, 0.0, np.add) / divisor.astype(x.dtype)


def _avg_pool_decomposition(x, windows: Windows, count_include_pad: bool,
                            divisor_override: int | None = None):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad, divisor_override)
    return _fold_positions(x, windows, 0.0, lambda a, b: a + b) / \
        x._lift(divisor.astype(x.dtype))


def _avg_pool_vjp(g, out, x, windows: Windows, count_include_pad: bool,
                  divisor_override: int | None = None):
    divisor = avg_pool_divisor(windows, x.shape[2:], count_include_pad, divisor_override)
    share = g / g._lift(divisor.astype(g.dtype))
    kh, kw = windows.kernel
    return _back_to_image([[share] * kw] * kh, _pooled_axes(x, windows), x, windows)


def _pooled_axes(x, windows: Windows) -> tuple:
    return (3, 5) if windows.tiles(x.shape[2:]) else (2, 3)


avg_pool2d = Primitive(
    name="avg_pool2d", kind=Kind.OPAQUE, kernel=_avg_pool_kernel,
    shape_rule=_pool_shape("avg_pool2d"), dtype_rule=_pool_dtype, vjps=(_avg_pool_vjp,),
    saves=Saves.INPUTS, grad_name="AvgPool2DBackward0", decomposition=_avg_pool_decomposition)

PRIMITIVES = (im2col, col2im, conv2d, conv_transpose2d, max_pool2d, avg_pool2d)
