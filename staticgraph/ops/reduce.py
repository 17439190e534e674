"""Reductions over axes. ``axes`` is always a sorted tuple of non-negative ints here; the
operator surface normalises what users write (torch's ``dim``, numpy's ``axis``)."""

from __future__ import annotations

import math

import numpy as np

from . import dtypes, elementwise
from .primitive import Kind, Primitive, Reduction, Saves
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
    if count == 0:  # the mean of nothing is nan, as in torch, without a warning
        with np.errstate(invalid="ignore"):
            return np.true_divide(total, count, out=out)
    return np.true_divide(total, count, out=out)


def _check_not_empty(name: str, x: np.ndarray, axes: tuple[int, ...]) -> None:
    """torch refuses an extremum over no elements, and only that: other dimensions may be
    empty (the result is then empty too)."""
    if x.size and x.ndim:
        return
    if x.ndim and len(axes) == x.ndim:
        raise ShapeError(f"{name}(): Expected reduction dim to be specified for "
                         "input.numel() == 0. Specify the reduction dim with the 'dim' "
                         "argument.")
    empty = next((a for a in axes if x.shape[a] == 0), None)
    if empty is not None:
        raise ShapeError(f"{name}(): Expected reduction dim {empty} to have non-zero size.")


def _extremum_kernel(ufunc: np.ufunc, name: str):
    def kernel(x, axes, keepdims, out=None):
        _check_not_empty(name, x, axes)
        return ufunc.reduce(x, axis=axes, keepdims=keepdims, out=out)
    return kernel


def _reduction(name: str, kernel, combine: Primitive, dtype_rule, vjp, saves, grad_name: str,
               mean: bool = False) -> Primitive:
    return Primitive(name=name, kind=R, kernel=kernel, shape_rule=reduced, dtype_rule=dtype_rule,
                     vjps=(vjp,), saves=saves, grad_name=grad_name,
                     reduction=Reduction(combine=combine, mean=mean))


def _same_dtype(x, **_) -> np.dtype:
    return x.dtype


def _prod_kernel(x, axes, keepdims, out=None):
    return np.multiply.reduce(x, axis=axes, keepdims=keepdims, out=out,
                              dtype=np.int64 if x.dtype.kind in "biu" else None)


def _prod_vjp(g, out, x, axes, keepdims):
    """d prod / d x_i is the product of the others: out / x_i where x_i != 0; where x_i is
    the one zero, the product of the nonzero others; 0 where there are two zeros or more
    (torch's prod_backward). Written without dividing by zero, so it differentiates again."""
    g, out = _keep_reduced_axes(g, axes, keepdims), _keep_reduced_axes(out, axes, keepdims)
    zero = x == 0
    safe = x.where(~zero, 1)
    others_if_zero = safe.prod(axes, keepdim=True).where(zero.sum(axes, keepdim=True) == 1, 0)
    return g.expand_as(x) * (out / safe).where(~zero, others_if_zero)


sum = _reduction("sum", _sum_kernel, elementwise.add, _sum_dtype, _sum_vjp, Saves.NOTHING,
                 "SumBackward1")
mean = _reduction("mean", _mean_kernel, elementwise.add, _mean_dtype, _mean_vjp, Saves.NOTHING,
                  "MeanBackward1", mean=True)
prod = _reduction("prod", _prod_kernel, elementwise.mul, _sum_dtype, _prod_vjp,
                  Saves.INPUTS | Saves.OUTPUT, "ProdBackward1")
max = _reduction("max", _extremum_kernel(np.maximum, "max"), elementwise.maximum, _same_dtype,
                 _extremum_vjp, Saves.INPUTS | Saves.OUTPUT, "MaxBackward1")
min = _reduction("min", _extremum_kernel(np.minimum, "min"), elementwise.minimum, _same_dtype,
                 _extremum_vjp, Saves.INPUTS | Saves.OUTPUT, "MinBackward1")


def _arg_shape(x, axis: int | None, keepdims: bool) -> Shape:
    if axis is None:
        return (1,) * x.ndim if keepdims else ()
    return reduced_shape(x.shape, (axis,), keepdims)


def _arg_kernel(arg_reduce, name: str):
    def kernel(x, axis, keepdims):
        _check_not_empty(name, x, tuple(range(x.ndim)) if axis is None else (axis,))
        return arg_reduce(x, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)
    return kernel


def _arg(name: str, arg_reduce) -> Primitive:
    return Primitive(name=name, kind=R, kernel=_arg_kernel(arg_reduce, name),
                     shape_rule=_arg_shape,
                     dtype_rule=lambda x, **_: dtypes.int64)


argmax, argmin = _arg("argmax", np.argmax), _arg("argmin", np.argmin)


def sum_to_into(x, like, out):
    """Sum ``x`` down to the shape of ``like`` in one reduction, written into ``out``."""
    kept, lead = sum_to_axes(x.shape, like.shape)
    summed_shape = (1,) * lead + tuple(like.shape)  # keepdims: the lead axes stay as 1s
    np.add.reduce(x, axis=tuple(range(lead)) + kept, keepdims=True,
                  out=out.reshape(summed_shape), dtype=out.dtype)
    return out


def _sum_to_kernel(x, like):
    return sum_to_into(x, like, np.empty(like.shape, x.dtype))  # new memory, never x itself


# Reduce a broadcast result back to the shape of ``like``: the one place gradients of
# broadcasting inputs are summed (autodiff calls it), with ``like`` supplying the shape at
# run time so unknown dimensions work.
sum_to = Primitive(name="sum_to", kind=R, kernel=_sum_to_kernel,
                   shape_rule=lambda x, like: like.shape, dtype_rule=lambda x, like: x.dtype,
                   vjps=(lambda g, out, x, like: g.expand_as(x), None),
                   grad_name="SumToBackward0")


def _size_of_kernel(x, axes):
    return np.array(np.prod([x.shape[a] for a in axes], dtype=np.int64), dtype=x.dtype)


# The number of elements over ``axes`` as a scalar of x's dtype: mean's gradient needs it
# when the batch dimension is unknown until run time (TF's tf.size).
size_of = Primitive(name="size_of", kind=Kind.OPAQUE, kernel=_size_of_kernel,
                    shape_rule=lambda x, axes: (), dtype_rule=lambda x, axes: x.dtype)

def _cumsum_kernel(x, axis: int):
    if x.ndim == 0:  # torch: a 0-d value is its own running sum
        return x.astype(_sum_dtype(x))
    return np.cumsum(x, axis, dtype=_sum_dtype(x))


def _reversed(x, axis: int):
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


def _cumsum_vjp(g, out, x, axis: int):
    # Each input counts in every later running sum: the running sums of g taken backwards
    # (flip, cumsum, flip: no cancellation, unlike total - cumsum + g).
    return g if not g.ndim else _reversed(_reversed(g, axis).cumsum(axis), axis)


# Running sums along one axis (torch's cumsum; integers sum in int64): a scan, which fusion
# treats as opaque.
cumsum = Primitive(name="cumsum", kind=Kind.OPAQUE, kernel=_cumsum_kernel,
                   shape_rule=lambda x, axis: x.shape, dtype_rule=_sum_dtype,
                   vjps=(_cumsum_vjp,), grad_name="CumsumBackward0")

PRIMITIVES = (sum, mean, prod, max, min, argmax, argmin, sum_to, size_of, cumsum)
