"""The operator surface shared by eager Tensors and graph Nodes (tinygrad's mixin idea).

A class that inherits ``Surface`` implements ``_apply(prim, *inputs, grad_name=, **params)``,
``_lift(value, dtype)`` (a constant of its own kind), ``detach()``, and ``shape``/``dtype``/
``ndim``; every operator and method below, and every composite in ``functional``, is then
written once for both. Method names and signatures are PyTorch's.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from . import dtypes, functional
from .indexing import parse_index
from .primitives import P, Primitive
from .shapes import ShapeError, normalize_axes, numel

_NUMBER = (bool, int, float, np.number, np.bool_)
MinMax = namedtuple("MinMax", ["values", "indices"])  # torch.return_types.max


_UFUNCS = {np.add: "__add__", np.subtract: "__sub__", np.multiply: "__mul__",
           np.true_divide: "__truediv__", np.power: "__pow__", np.negative: "__neg__",
           np.exp: "exp", np.log: "log", np.sqrt: "sqrt", np.tanh: "tanh", np.absolute: "abs",
           np.sign: "sign", np.floor: "floor", np.sin: "sin", np.cos: "cos",
           np.floor_divide: "__floordiv__", np.remainder: "__mod__", np.maximum: "maximum",
           np.minimum: "minimum", np.equal: "__eq__",
           np.not_equal: "__ne__", np.less: "__lt__", np.less_equal: "__le__",
           np.greater: "__gt__", np.greater_equal: "__ge__"}


def _root_at_zero_is_flat(value, p: float):
    """value ** (1 / p), whose gradient is zero where value is 0 (where, twice: the root is
    never taken of 0, whose derivative is infinite); a NaN stays NaN."""
    zero = value == 0
    return (value.where(~zero, 1) ** (1 / p)).where(~zero, 0)


class Surface:
    __slots__ = ()
    __array_priority__ = 1000  # make numpy defer `ndarray + tensor` to us
    _surface_priority = 0      # in mixed expressions the higher kind lifts the lower one

    # -- to be provided by the concrete class --------------------------------------------
    def _apply(self, prim: Primitive, *inputs: Any, grad_name: str | None = None, **params):
        raise NotImplementedError

    def _lift(self, value: Any, dtype: np.dtype | None = None):
        raise NotImplementedError

    def _updated(self, *updates: tuple[Any, Any]):
        """This value, once each (state, new value) pair is written: eager writes a buffer
        now; a graph assigns a Variable whenever this value is computed (batch norm's running
        statistics)."""
        raise NotImplementedError

    def _uniform_like(self):
        """Uniform random numbers in [0, 1) of this shape: from eager's generator, or drawn
        anew in each run from the Session's (dropout)."""
        raise NotImplementedError

    def _error(self, op: str, kind: type[Exception], message: str) -> Exception:
        """The exception for a misuse of ``op``; graph nodes add where it was built."""
        return kind(message)

    # -- operands ------------------------------------------------------------------------
    def _operand(self, other: Any, dtype: np.dtype | None = None):
        """``other`` as a value of this kind; Python numbers take ``dtype``."""
        if isinstance(other, Surface) and type(other) is type(self):
            return other
        return self._lift(other, dtype)

    def _binary(self, prim: Primitive, other: Any, reverse: bool = False,
                grad_name: str | None = None):
        if isinstance(other, Surface) and type(other) is not type(self) and \
                other._surface_priority > self._surface_priority:
            return NotImplemented
        if isinstance(other, _NUMBER):
            other = self._lift(other, dtypes.result_type(self, other))
        else:
            other = self._operand(other)
        a, b = (other, self) if reverse else (self, other)
        return self._apply(prim, a, b, grad_name=grad_name)

    # -- numpy's ufuncs on our values -------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any):
        """``np.tanh(x)`` or ``array + x`` compute ours (as torch's tensors do); a ufunc we
        have no op for is refused by name rather than applied element by element to an
        array of objects."""
        name = _UFUNCS.get(ufunc)
        if method != "__call__" or name is None or kwargs:
            what = ufunc.__name__ + ("" if method == "__call__" else "." + method)
            raise TypeError(f"numpy's {what} cannot take a {type(self).__name__}"
                            f"{' with ' + ', '.join(kwargs) if kwargs else ''}: use this "
                            "library's function of that name (or np.asarray(...) of a "
                            "computed value)")
        first, *rest = inputs
        if not isinstance(first, Surface):  # np.subtract(2, x): 2 as a value of x's kind
            first = self._lift(first, dtypes.result_type(self, first)
                               if isinstance(first, _NUMBER) else None)
        return getattr(first, name)(*rest)

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, other): return self._binary(P.add, other)
    def __radd__(self, other): return self._binary(P.add, other)  # x first, as torch
    def __sub__(self, other): return self._binary(P.sub, other)
    def __rsub__(self, other): return self._binary(P.sub, other, True, "RsubBackward1")
    def __mul__(self, other): return self._binary(P.mul, other)
    def __rmul__(self, other): return self._binary(P.mul, other)
    def __truediv__(self, other): return self._binary(P.div, other)
    def __rtruediv__(self, other): return self._binary(P.div, other, reverse=True)
    def __floordiv__(self, other): return self._binary(P.floor_divide, other)
    def __rfloordiv__(self, other): return self._binary(P.floor_divide, other, reverse=True)
    def __mod__(self, other):
        name = "RemainderBackward0" if isinstance(other, _NUMBER) else "RemainderBackward1"
        return self._binary(P.remainder, other, grad_name=name)

    def __rmod__(self, other): return self._binary(P.remainder, other, reverse=True)
    def __matmul__(self, other): return self.matmul(other)
    def __rmatmul__(self, other): return self._operand(other).matmul(self)
    def __neg__(self): return self._apply(P.neg, self)
    def __pos__(self): return self
    def __abs__(self): return self.abs()

    def __pow__(self, exponent):
        name = "PowBackward0" if isinstance(exponent, _NUMBER) else "PowBackward1"
        return self._binary(P.pow, exponent, grad_name=name)

    def __rpow__(self, base):
        return self._binary(P.pow, base, reverse=True, grad_name="PowBackward2")

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    pow = __pow__
    floor_divide = __floordiv__
    remainder = __mod__

    # -- comparisons and logic (results are bool and carry no gradient) ----------------------
    def __eq__(self, other): return self._binary(P.eq, other)  # type: ignore[override]
    def __ne__(self, other): return self._binary(P.ne, other)  # type: ignore[override]
    def __lt__(self, other): return self._binary(P.lt, other)
    def __le__(self, other): return self._binary(P.le, other)
    def __gt__(self, other): return self._binary(P.gt, other)
    def __ge__(self, other): return self._binary(P.ge, other)
    def __and__(self, other): return self._logical(P.logical_and, other)
    def __or__(self, other): return self._logical(P.logical_or, other)

    def __invert__(self):
        return self._logical(P.logical_not)

    def _logical(self, prim: Primitive, *other):
        """``&``, ``|`` and ``~`` of boolean masks (torch's bitwise ops on integers are not
        provided: they would need primitives of their own)."""
        operands = (self, *other)
        if any(getattr(x, "dtype", None) != dtypes.bool_ and not isinstance(x, bool)
               for x in operands):
            raise self._error(prim.name, TypeError, "&, | and ~ work on bool tensors (masks); "
                              "got " + ", ".join(str(getattr(x, "dtype", type(x).__name__))
                                                  for x in operands))
        return self._binary(prim, *other) if other else self._apply(prim, self)
    __hash__ = object.__hash__  # identity, as torch: `==` is elementwise

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    # -- elementwise functions ----------------------------------------------------------------
    def exp(self): return self._apply(P.exp, self)
    def log(self): return self._apply(P.log, self)
    def sqrt(self): return self._apply(P.sqrt, self)
    def tanh(self): return self._apply(P.tanh, self)
    def sigmoid(self): return self._apply(P.sigmoid, self)
    def relu(self): return self._apply(P.relu, self)
    def abs(self): return self._apply(P.abs, self)
    def sign(self): return self._apply(P.sign, self)
    def erf(self): return self._apply(P.erf, self)
    def floor(self): return self._apply(P.floor, self)
    def sin(self): return self._apply(P.sin, self)
    def cos(self): return self._apply(P.cos, self)
    def neg(self): return self._apply(P.neg, self)
    def maximum(self, other): return self._binary(P.maximum, other)
    def minimum(self, other): return self._binary(P.minimum, other)

    def clamp(self, min: Any = None, max: Any = None):
        if min is None and max is None:
            raise self._error("clamp", RuntimeError,
                              "At least one of 'min' or 'max' must not be None")
        bounds = [b for b in (min, max) if b is not None]
        tensors = any(isinstance(b, Surface) for b in bounds)
        # Numbers take part in the result's dtype as torch's weak scalars do.
        dtype = dtypes.result_type(self, *bounds)
        bounds = [self._operand(b) if isinstance(b, Surface) else self._lift(b, dtype)
                  for b in bounds]
        return self._apply(P.clamp, self, *bounds, has_min=min is not None,
                           has_max=max is not None,
                           grad_name="ClampBackward0" if tensors else "ClampBackward1")

    def where(self, condition, other):
        """torch's ``x.where(cond, y)``: x where cond holds, else y."""
        if isinstance(other, _NUMBER):  # a weak scalar, as in torch: int.where(c, 1.5) is float
            other = self._lift(other, dtypes.result_type(self, other))
        return self._apply(P.where, self._operand(condition), self, self._operand(other))

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` holds, else this value (value takes this dtype, as torch)."""
        mask = self._operand(mask)
        if mask.dtype != dtypes.bool_:
            raise self._error("masked_fill", TypeError, "masked_fill_ only supports boolean "
                              f"masks, but got mask with dtype {dtypes.torch_name(mask.dtype)}")
        value = value.to(self.dtype) if isinstance(value, Surface) else \
            self._lift(value, self.dtype)
        return self._apply(P.where, mask, value, self, grad_name="MaskedFillBackward0")

    # -- reductions --------------------------------------------------------------------------
    def _axes(self, dim, ndim: int | None = None) -> tuple[int, ...]:
        """``dim`` (None, an int or a tuple) as sorted non-negative axes, or an error that
        says where (for graph nodes)."""
        try:
            return normalize_axes(dim, self.ndim if ndim is None else ndim)
        except (IndexError, ValueError, TypeError) as exc:
            raise self._error("dim", type(exc), str(exc)) from None

    def _axis(self, dim: int, ndim: int | None = None) -> int:
        return self._axes(dim, ndim)[0]

    def _reduced_axes(self, dim) -> tuple[int, ...]:
        """A reduction's ``dim``: None and () mean every axis (torch); a 0-d value takes
        dim 0 or -1 and reduces nothing."""
        axes = self._axes(None if isinstance(dim, (tuple, list)) and not dim else dim)
        return axes if self.ndim else ()

    def _reduce(self, prim: Primitive, dim, keepdim: bool, grad_name: str | None):
        return self._apply(prim, self, axes=self._reduced_axes(dim), keepdims=bool(keepdim),
                           grad_name=grad_name)

    def sum(self, dim=None, keepdim: bool = False):
        return self._reduce(P.sum, dim, keepdim, "SumBackward0" if dim is None else None)

    def mean(self, dim=None, keepdim: bool = False):
        return self._reduce(P.mean, dim, keepdim, "MeanBackward0" if dim is None else None)

    def prod(self, dim=None, keepdim: bool = False):
        return self._reduce(P.prod, dim, keepdim, "ProdBackward0" if dim is None else None)

    def cumsum(self, dim: int):
        return self._apply(P.cumsum, self, axis=self._axis(dim) if self.ndim else 0)

    def var(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None):
        """The variance over ``dim``, divided by n - correction (torch's default 1: Bessel's
        correction; ``unbiased=False`` is correction 0)."""
        if not dtypes.is_floating(self.dtype):
            raise self._error("var", RuntimeError, "std and var only support floating point and "
                              f"complex dtypes, got {dtypes.torch_name(self.dtype)}")
        if correction is None:
            correction = 0 if unbiased is False else 1
        axes = self._reduced_axes(dim)
        centered = self - self.mean(axes, keepdim=True)
        # (n - correction <= 0 divides by 0: inf or nan, as torch)
        return (centered * centered).sum(axes, keepdim) / (
            self._size_of(axes) - correction).clamp(min=0)

    def std(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None):
        """The root of ``var``; its gradient where the values are all equal is zero, as
        torch's, not the nan of differentiating a root at 0."""
        return _root_at_zero_is_flat(self.var(dim, unbiased, keepdim, correction=correction),
                                     2)

    def norm(self, p: float | str = "fro", dim=None, keepdim: bool = False):
        """The vector p-norm over ``dim`` (all elements by default; "fro" is 2). Its gradient
        at a zero vector is zero, as torch's, not the nan of differentiating a root at 0."""
        p = 2 if p == "fro" else p
        if not isinstance(p, _NUMBER):
            raise self._error("norm", ValueError, f"norm of order {p!r} is not supported: "
                              "give a number, inf, -inf or 'fro'")
        axes, a = self._reduced_axes(dim), self.abs()
        if p == float("inf") or p == -float("inf"):
            return (a.amax if p > 0 else a.amin)(axes, keepdim)
        if p == 0:
            return (a != 0).to(self.dtype).sum(axes, keepdim)
        if p == 1:
            return a.sum(axes, keepdim)
        return _root_at_zero_is_flat((a * a if p == 2 else a ** p).sum(axes, keepdim), p)

    def any(self, dim=None, keepdim: bool = False):
        return (self != 0).sum(self._reduced_axes(dim), keepdim) > 0

    def all(self, dim=None, keepdim: bool = False):
        return (self == 0).sum(self._reduced_axes(dim), keepdim) == 0

    def _extremum(self, prim: Primitive, arg: Primitive, binary: Primitive, dim, keepdim):
        if dim is None:
            return self._apply(prim, self, axes=self._axes(None), keepdims=False)
        if isinstance(dim, Surface):
            return self._binary(binary, dim)
        axes = self._reduced_axes(dim)
        values = self._apply(prim, self, axes=axes, keepdims=bool(keepdim),
                             grad_name=prim.grad_name[:-1] + "0")
        return MinMax(values, self._arg(arg, dim, keepdim))

    def max(self, dim=None, keepdim: bool = False):
        """Full max, ``(values, indices)`` along ``dim``, or elementwise with a tensor."""
        return self._extremum(P.max, P.argmax, P.maximum, dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        return self._extremum(P.min, P.argmin, P.minimum, dim, keepdim)

    def amax(self, dim=None, keepdim: bool = False):
        return self._reduce(P.max, dim, keepdim, "AmaxBackward0")

    def amin(self, dim=None, keepdim: bool = False):
        return self._reduce(P.min, dim, keepdim, "AminBackward0")

    def _arg(self, prim: Primitive, dim, keepdim: bool):
        axis = None if dim is None else self._axis(dim)
        return self._apply(prim, self, axis=axis if self.ndim else None, keepdims=bool(keepdim))

    def argmax(self, dim=None, keepdim: bool = False):
        return self._arg(P.argmax, dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False):
        return self._arg(P.argmin, dim, keepdim)

    # -- linear algebra ----------------------------------------------------------------------
    def matmul(self, other):
        other = self._operand(other)
        names = {(2, 2): "MmBackward0", (1, 1): "DotBackward0", (2, 1): "MvBackward0"}
        return self._apply(P.matmul, self, other,
                           grad_name=names.get((self.ndim, other.ndim), "MatmulBackward0"))

    # -- shape -----------------------------------------------------------------------------
    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[self._axis(dim)]

    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) \
            else shape
        return self._apply(P.reshape, self, shape=tuple(int(d) for d in shape))

    view = reshape

    def reshape_as(self, other):
        return self._apply(P.reshape_as, self, self._operand(other))

    view_as = reshape_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = self._axis(start_dim), self._axis(end_dim)
        target = [*self.shape[:start], numel(self.shape[start:end + 1]), *self.shape[end + 1:]]
        if target.count(None) > 1:
            raise self._error("flatten", ShapeError, f"flatten({start_dim}, {end_dim}) of shape "
                              f"{self.shape}: a reshape can leave only one dimension unknown")
        return self.reshape(*(-1 if d is None else d for d in target))

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        perm = tuple(self._axis(d) for d in dims)
        if sorted(perm) != list(range(self.ndim)):
            raise self._error("permute", ValueError, f"dims {dims} are not a permutation of "
                              f"the {self.ndim} dimensions of a tensor of shape {self.shape}")
        return self._apply(P.transpose, self, perm=perm)

    def transpose(self, dim0: int, dim1: int):
        perm = list(range(self.ndim))
        a, b = self._axis(dim0), self._axis(dim1)
        perm[a], perm[b] = perm[b], perm[a]
        return self._apply(P.transpose, self, perm=tuple(perm), grad_name="TransposeBackward0")

    def t(self):
        if self.ndim > 2:
            raise self._error("t", RuntimeError, "t() expects a tensor with <= 2 dimensions, "
                              f"but self is {self.ndim}D")
        return self if self.ndim < 2 else self._apply(P.transpose, self, perm=(1, 0),
                                                      grad_name="TBackward0")

    @property
    def T(self):
        return self._apply(P.transpose, self, perm=tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def unsqueeze(self, dim):
        """Insert size-1 axes (an int, or a tuple of positions in the result)."""
        axes = self._axes(dim, self.ndim + (1 if isinstance(dim, int) else len(dim)))
        return self._apply(P.expand_dims, self, axes=axes)

    def squeeze(self, dim=None):
        if dim is None:
            axes = tuple(i for i, d in enumerate(self.shape) if d == 1)
            return self._apply(P.squeeze, self, axes=axes, grad_name="SqueezeBackward0")
        axes = self._axes(dim)
        unknown = [a for a in axes if self.shape[a] is None]
        if unknown:
            raise self._error("squeeze", ShapeError, f"dimension {unknown[0]} is unknown until "
                              "run time, so whether it is 1 cannot be known: reshape instead")
        return self._squeeze_axes(tuple(a for a in axes if self.shape[a] == 1))

    def _squeeze_axes(self, axes: tuple[int, ...]):
        return self._apply(P.squeeze, self, axes=axes)

    def expand(self, *sizes):
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) \
            else sizes
        return self._apply(P.broadcast_to, self, shape=tuple(int(d) for d in sizes))

    broadcast_to = expand

    def repeat(self, *sizes):
        """torch's repeat (numpy's tile): ``sizes[i]`` copies along dimension i."""
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) \
            else sizes
        if len(sizes) < self.ndim:
            raise self._error("repeat", RuntimeError, "Number of dimensions of repeat dims can "
                              "not be smaller than number of dimensions of tensor")
        lead = len(sizes) - self.ndim
        x = self.unsqueeze(tuple(range(lead))) if lead else self
        shape = (1,) * lead + tuple(self.shape)
        # (1, d0, 1, d1, ...) broadcast to (r0, d0, r1, d1, ...), then merged pairwise
        spread = x.unsqueeze(tuple(range(0, 2 * len(sizes), 2)))
        spread = spread.expand(*(d for r in sizes for d in (r, -1)))
        merged = [None if d is None else r * d for r, d in zip(sizes, shape)]
        if merged.count(None) > 1:
            raise self._error("repeat", ShapeError, f"repeat of shape {self.shape}: a reshape "
                              "can leave only one dimension unknown")
        return spread.reshape(*(-1 if d is None else d for d in merged))

    def split(self, split_size_or_sections, dim: int = 0) -> tuple:
        """Pieces along ``dim``: each of ``split_size`` (the last may be smaller), or of the
        sizes in a list."""
        axis = self._axis(dim)
        n = self.shape[axis]
        if n is None:
            raise self._error("split", ShapeError, f"dimension {axis} is unknown until run "
                              "time: split needs its size")
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            if size <= 0 and n:
                raise self._error("split", RuntimeError, "split_size can only be 0 if "
                                  f"dimension size is 0, but got dimension size of {n}")
            sizes = [min(size, n - at) for at in range(0, n, size)] if size else [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or min(sizes, default=0) < 0:
                raise self._error("split", RuntimeError, "split_with_sizes expects split_sizes "
                                  f"to sum exactly to {n} (input tensor's size at dimension "
                                  f"{axis}), but got split_sizes={sizes}")
        ends = np.cumsum([0, *sizes]).tolist()
        keep = (("slice", None, None, None),) * axis
        name = "SplitBackward0" if isinstance(split_size_or_sections, int) else \
            "SplitWithSizesBackward0"
        return tuple(self._apply(P.getitem, self, spec=keep + (("slice", a, b, None),),
                                 grad_name=name) for a, b in zip(ends, ends[1:]))

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        """At most ``chunks`` pieces of equal size along ``dim`` (the last may be smaller)."""
        if chunks <= 0:
            raise self._error("chunk", RuntimeError,
                              "chunk expects `chunks` to be greater than 0, got: " + str(chunks))
        n = self.shape[self._axis(dim)]
        return self.split(-(-n // chunks) if n else 0, dim)  # (split names an unknown size)

    def expand_as(self, other):
        return self._apply(P.expand_as, self, self._operand(other))

    # -- dtype -----------------------------------------------------------------------------
    def to(self, dtype):
        dtype = dtypes.as_dtype(dtype)
        return self if dtype == self.dtype else self._apply(P.cast, self, dtype=dtype)

    def type_as(self, other):
        return self.to(other.dtype)

    def float(self): return self.to(dtypes.float32)
    def double(self): return self.to(dtypes.float64)
    def half(self): return self.to(dtypes.float16)
    def long(self): return self.to(dtypes.int64)
    def int(self): return self.to(dtypes.int32)
    def bool(self): return self.to(dtypes.bool_)

    # -- indexing ----------------------------------------------------------------------------
    def __getitem__(self, index):
        spec, arrays = parse_index(index, lambda item: isinstance(item, Surface))
        arrays = [self._operand(a) for a in arrays]
        return self._getitem(arrays, spec)

    def _getitem(self, arrays, spec):
        last = next((e[0] for e in reversed(spec)
                     if e[0] != "ellipsis" and e[1:] != (None, None, None)), "slice")
        if any(e[0] == "array" for e in spec):
            last = "array"
        name = {"int": "SelectBackward0", "slice": "SliceBackward0",
                "new": "UnsqueezeBackward0", "array": "IndexBackward0"}[last]
        return self._apply(P.getitem, self, *arrays, spec=spec, grad_name=name)

    def gather(self, dim: int, index):
        """torch.gather: along ``dim``, the element ``index`` names (int64 of this rank)."""
        return self._apply(P.gather, self, self._operand(index),
                           axis=self._axis(dim) if self.ndim else 0)

    def nonzero(self):
        """The positions of the nonzero elements: int64 of shape (n, ndim), n known only
        when the value is computed."""
        return self._apply(P.nonzero, self)

    # -- helpers the gradient rules use ------------------------------------------------------
    def _sum_to(self, like):
        return self._apply(P.sum_to, self, like)

    def _arange_like(self, axis: int):
        """0, 1, ..., n - 1 (int64) for n = this value's size along ``axis``."""
        return self._apply(P.arange_like, self, axis=axis)

    def _fill(self, value: bool | int | float):
        return self._apply(P.fill, self, value=value)

    def _size_of(self, axes: tuple[int, ...]):
        return self._apply(P.size_of, self, axes=axes)

    def _scatter_add(self, like, arrays, spec):
        return self._apply(P.scatter_add, self, like, *arrays, spec=spec)

    def _index_put(self, value, arrays, spec):
        return self._apply(P.index_put, self, value, *arrays, spec=spec)

    # -- composites (written once, in functional) ----------------------------------------------
    def softmax(self, dim: int):
        return functional.softmax(self, dim)

    def log_softmax(self, dim: int):
        return functional.log_softmax(self, dim)
