"""Reductions over axes. ``axes`` is always a sorted tuple of non-negative ints here; the
operator surface normalises what users write (torch's ``dim``, numpy's ``axis``)."""

from __future__ import annotations

import math

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError, reduced_shape, sum_to_axes

R = Kind.REDUCE


def reduced(x, axes: tuple[int, ...], keepdims: bool, **_) -> Shape:
    return reduced_shape(x.shape, axes, keepdims)


def _sum_dtype(x, **_) -> np.dtype:
    return x.dtype if dtypes.is_floating(x.dtype) else dtypes.int64  # torch sums ints in int64


def _mean_dtype(x, **_) -> np.dtype:
    if not dtypes.is_floating(x.dtype):
        raise dtypes.DTypeError("mean(): could not infer output dtype. Input dtype must be "
                                "either a floating point or complex dtype. Got: "
                                + dtypes.torch_name(x.dtype))
    return x.dtype


def _keep_reduced_axes(g, axes: tuple[int, ...], keepdims: bool):
    """Give a reduction's result (or its cotangent) back the axes it reduced away."""
    return g if keepdims or not axes else g.unsqueeze(axes)


def _sum_vjp(g, out, x, axes, keepdims):
    return _keep_reduced_axes(g, axes, keepdims).expand_as(x)


def _mean_vjp(g, out, x, axes, keepdims):
    return _keep_reduced_axes(g, axes, keepdims).expand_as(x) / x._size_of(axes)


def _extremum_vjp(g, out, x, axes, keepdims):
    # The gradient is shared evenly among tied extrema (torch's max()/amax()).
    hit = (x == _keep_reduced_axes(out, axes, keepdims)).to(g.dtype)
    return _keep_reduced_axes(g, axes, keepdims) * hit / hit.sum(axes, keepdim=True)


# The kernels call ufunc.reduce directly (what np.sum/np.mean do after some Python-level
# argument handling that costs microseconds per call in a fused kernel's loop), and take
# ``out=`` themselves, so each is its own ``into``.
def _sum_kernel(x, axes, keepdims, out=None):
    return np.add.reduce(x, axis=axes, keepdims=keepdims, out=out,
                         dtype=np.int64 if x.dtype.kind in "biu" else None)


def _mean_kernel(x, axes, keepdims, out=None):
    total = np.add.reduce(x, axis=axes, keepdims=keepdims, out=out)
    count = math.prod(x.shape[a] for a in axes)
    return np.true_divide(total, count, out=out)


def _extremum_kernel(ufunc: np.ufunc, name: str):
    def kernel(x, axes, keepdims, out=None):
        if x.size == 0:
            raise ShapeError(f"{name}(): Expected reduction dim to be specified for "
                             "input.numel() == 0. Specify the reduction dim with the 'dim' "
                             "argument.")
        return ufunc.reduce(x, axis=axes, keepdims=keepdims, out=out)
    return kernel


sum = Primitive("sum", R, _sum_kernel, reduced, _sum_dtype, (_sum_vjp,), Saves.NOTHING,
                "SumBackward1", into=_sum_kernel)
mean = Primitive("mean", R, _mean_kernel, reduced, _mean_dtype, (_mean_vjp,), Saves.NOTHING,
                 "MeanBackward1", into=_mean_kernel)
_max, _min = _extremum_kernel(np.maximum, "max"), _extremum_kernel(np.minimum, "min")
max = Primitive("max", R, _max, reduced, lambda x, **_: x.dtype, (_extremum_vjp,),
                Saves.INPUTS | Saves.OUTPUT, "MaxBackward1", into=_max)
min = Primitive("min", R, _min, reduced, lambda x, **_: x.dtype, (_extremum_vjp,),
                Saves.INPUTS | Saves.OUTPUT, "MinBackward1", into=_min)


def _arg_shape(x, axis: int | None, keepdims: bool) -> Shape:
    if axis is None:
        return (1,) * x.ndim if keepdims else ()
    return reduced_shape(x.shape, (axis,), keepdims)


def _arg_kernel(arg_reduce):
    def kernel(x, axis, keepdims):
        return arg_reduce(x, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)
    return kernel


argmax = Primitive("argmax", R, _arg_kernel(np.argmax), _arg_shape, lambda x, **_: dtypes.int64)
argmin = Primitive("argmin", R, _arg_kernel(np.argmin), _arg_shape, lambda x, **_: dtypes.int64)


def _sum_to_kernel(x, like):
    kept, lead = sum_to_axes(x.shape, like.shape)
    if lead:
        x = x.sum(axis=tuple(range(lead)))
    if kept:
        x = x.sum(axis=tuple(a - lead for a in kept), keepdims=True)
    return x


# Reduce a broadcast result back to the shape of ``like``: the one place gradients of
# broadcasting inputs are summed (autodiff calls it), with ``like`` supplying the shape at
# run time so unknown dimensions work.
sum_to = Primitive("sum_to", R, _sum_to_kernel, lambda x, like: like.shape,
                   lambda x, like: x.dtype, (lambda g, out, x, like: g.expand_as(x), None),
                   Saves.NOTHING, "SumToBackward0")


def _size_of_kernel(x, axes):
    return np.array(np.prod([x.shape[a] for a in axes], dtype=np.int64), dtype=x.dtype)


# The number of elements over ``axes`` as a scalar of x's dtype: mean's gradient needs it
# when the batch dimension is unknown until run time (TF's tf.size).
size_of = Primitive("size_of", Kind.OPAQUE, _size_of_kernel, lambda x, axes: (),
                    lambda x, axes: x.dtype)

PRIMITIVES = (sum, mean, max, min, argmax, argmin, sum_to, size_of)
