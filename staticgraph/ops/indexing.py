"""Indexing: numpy's basic and advanced (integer-array, boolean-mask) indexing as one
``getitem`` primitive, and its gradient ``scatter_add`` (repeated indices accumulate).

An index is stored as a static, hashable *spec*: a tuple with one entry per index item,
``("int", i)``, ``("slice", start, stop, step)``, ``("new",)``, ``("ellipsis",)`` or
``("array", k)`` for the k-th index array, which is an input of the primitive (so a graph
can gather with a placeholder's labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .primitive import Kind, Primitive, Saves
from .shapes import Shape, broadcast_shapes

Spec = tuple[tuple, ...]


def parse_index(index: Any, is_array: Callable[[Any], bool]) -> tuple[Spec, list]:
    """Split a user's index into a spec and the list of array-like items it refers to."""
    items = index if isinstance(index, tuple) else (index,)
    spec, arrays = [], []
    for item in items:
        if item is None:
            spec.append(("new",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(item, slice):
            spec.append(("slice", _int_or_none(item.start), _int_or_none(item.stop),
                         _int_or_none(item.step)))
        elif isinstance(item, (bool, np.bool_)):
            spec.append(("array", len(arrays)))
            arrays.append(np.array(item))
        elif isinstance(item, (int, np.integer)):
            spec.append(("int", int(item)))
        elif is_array(item) or isinstance(item, (list, np.ndarray)):
            spec.append(("array", len(arrays)))
            arrays.append(item)
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or "
                             f"byte Variables are valid indices (got {type(item).__name__})")
    if sum(e[0] == "ellipsis" for e in spec) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    return tuple(spec), arrays


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _numpy_index(spec: Spec, arrays: tuple[np.ndarray, ...]) -> tuple:
    out = []
    for entry in spec:
        tag = entry[0]
        out.append(entry[1] if tag == "int" else slice(*entry[1:]) if tag == "slice"
                   else None if tag == "new" else Ellipsis if tag == "ellipsis"
                   else arrays[entry[1]])
    return tuple(out)


def _consumed(entry: tuple, arrays: tuple) -> int:
    """How many input dimensions an index entry uses up."""
    tag = entry[0]
    if tag in ("int", "slice"):
        return 1
    if tag == "array":
        index = arrays[entry[1]]
        return index.ndim if index.dtype == np.bool_ else 1
    return 0


def _getitem_shape(x, *arrays, spec: Spec) -> Shape:
    used = sum(_consumed(e, arrays) for e in spec)
    if used > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    fill = (("slice", None, None, None),) * (x.ndim - used)
    at = next((i for i, e in enumerate(spec) if e[0] == "ellipsis"), len(spec))
    entries = spec[:at] + fill + spec[at + 1:]
    has_array = any(e[0] == "array" for e in entries)
    shape: list = []
    advanced: list[Shape] = []
    advanced_at: list[int] = []  # positions in `shape` where advanced entries stood
    dim = 0
    for entry in entries:
        tag = entry[0]
        if tag == "new":
            shape.append(1)
            continue
        size = x.shape[dim] if dim < x.ndim else None  # a 0-d boolean index uses no dimension
        if tag == "slice":
            shape.append(None if size is None else len(range(*slice(*entry[1:]).indices(size))))
        elif tag == "int" and not has_array:
            _check_bounds(entry[1], size, dim)
        else:  # an index array, or an int that numpy treats as one beside arrays
            index = arrays[entry[1]] if tag == "array" else None
            if index is not None and index.dtype == np.bool_:
                advanced.append((None,))  # how many are true is known only at run time
            else:
                advanced.append(() if index is None else tuple(index.shape))
            advanced_at.append(len(shape))
        dim += _consumed(entry, arrays)
    if advanced:
        # numpy: adjacent advanced indices put their broadcast shape where they stood,
        # separated ones put it first.
        at = advanced_at[0] if advanced_at == [advanced_at[0]] * len(advanced_at) else 0
        shape[at:at] = broadcast_shapes(*advanced)
    return tuple(shape)


def _check_bounds(i: int, size: int | None, dim: int) -> None:
    if size is not None and not -size <= i < size:
        raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")


def _getitem_kernel(x, *arrays, spec: Spec):
    return x[_numpy_index(spec, arrays)]


def _scatter_add_kernel(g, like, *arrays, spec: Spec):
    out = np.zeros(like.shape, dtype=g.dtype)
    index = _numpy_index(spec, arrays)
    if arrays:
        np.add.at(out, index, g)  # repeated indices must accumulate
    else:
        out[index] = g
    return out


def _dtype_of_first(x, *_, **__):
    return x.dtype


# Variadic (one input per index array): only input 0 is differentiable.
getitem = Primitive(name="getitem",
                    kind=Kind.OPAQUE,
                    kernel=_getitem_kernel,
                    shape_rule=_getitem_shape,
                    dtype_rule=_dtype_of_first,
                    vjps=lambda g, out, x, *arrays, spec, index: g._scatter_add(x, arrays, spec),
                    saves=Saves.INPUTS,
                    grad_name="IndexBackward0",
                    diff_inputs=(0,))
scatter_add = Primitive(name="scatter_add",
                        kind=Kind.OPAQUE,
                        kernel=_scatter_add_kernel,
                        shape_rule=lambda g, like, *arrays, spec: like.shape,
                        dtype_rule=_dtype_of_first,
                        vjps=lambda g, out, x, like, *arrays, spec, index: g._getitem(arrays, spec),
                        saves=Saves.INPUTS,
                        grad_name="IndexPutBackward0",
                        diff_inputs=(0,))


def _index_put_kernel(x, value, *arrays, spec: Spec):
    out = x.copy()
    out[_numpy_index(spec, arrays)] = value
    return out


def _index_put_vjp(g, out, x, value, *arrays, spec: Spec, index: int):
    if index == 0:  # the overwritten elements get no gradient (even when written twice)
        return g._index_put(g._lift(0, g.dtype), arrays, spec)
    return g._getitem(arrays, spec)


# out = x with out[index] = value: what ``x[index] = value`` records (torch's CopySlices).
index_put = Primitive(name="index_put",
                      kind=Kind.OPAQUE,
                      kernel=_index_put_kernel,
                      shape_rule=lambda x, value, *arrays, spec: x.shape,
                      dtype_rule=_dtype_of_first,
                      vjps=_index_put_vjp,
                      saves=Saves.INPUTS,
                      grad_name="CopySlices",
                      diff_inputs=(0, 1))


def _check_index_kernel(x, high: int, dim: int | None = None):
    bad = x[(x < 0) | (x >= high)]
    if bad.size and dim is None:
        raise IndexError(f"Target {bad.flat[0]} is out of bounds.")
    if bad.size:
        raise RuntimeError(f"index {bad.flat[0]} is out of bounds for dimension {dim} with "
                           f"size {high}")
    return x


# x itself, once every value is a valid index below ``high``: class labels (``dim`` None; a
# one-hot made by comparison would silently give a zero row for an out-of-range label), or
# gather's indices along ``dim`` (getitem would wrap a negative one around).
check_index = Primitive(name="check_index",
                        kind=Kind.OPAQUE,
                        kernel=_check_index_kernel,
                        shape_rule=lambda x, high, dim=None: x.shape,
                        dtype_rule=_dtype_of_first)

def _arange_like_kernel(like, axis: int):
    return np.arange(like.shape[axis], dtype=np.int64)


# 0, 1, ..., n - 1 for n = like.shape[axis]: an index vector whose length is known only at
# run time (an imported model's Range over a sequence length, torch.arange(T)).
arange_like = Primitive(name="arange_like", kind=Kind.OPAQUE, kernel=_arange_like_kernel,
                        shape_rule=lambda like, axis: (like.shape[axis],),
                        dtype_rule=lambda like, axis: np.dtype(np.int64))


def _nonzero_kernel(x):
    return np.argwhere(x).astype(np.int64, copy=False)


# The positions of x's nonzero elements, one row (of x.ndim coordinates) each, in row-major
# order: torch's x.nonzero(). How many there are is known only at run time.
nonzero = Primitive(name="nonzero", kind=Kind.OPAQUE, kernel=_nonzero_kernel,
                    shape_rule=lambda x: (None, x.ndim),
                    dtype_rule=lambda x: np.dtype(np.int64))

def gather_index(x, index, axis: int) -> tuple[Spec, list]:
    """The index of ``x[...]`` that gathers: ``index`` along ``axis`` (checked, so that a
    negative one is refused as torch does rather than wrapped around), and each element's
    own position along every other axis (on the shared surface: nodes or tensors)."""
    size = x.shape[axis] if x.ndim else 1
    along = index if size is None else index._apply(check_index, index, high=size, dim=axis)
    arrays = [along if d == axis else
              index._arange_like(d).reshape([-1 if k == d else 1 for k in range(index.ndim)])
              for d in range(index.ndim)]
    return tuple(("array", k) for k in range(len(arrays))), arrays


def _gather_kernel(x, index, axis: int):
    _check_index_kernel(index, x.shape[axis] if x.ndim else 1, axis)
    if not x.ndim:
        return x.copy()
    grid = np.indices(index.shape, sparse=True)
    return x[tuple(index if d == axis else grid[d] for d in range(index.ndim))]


def _gather_shape(x, index, axis: int) -> Shape:
    if index.ndim != x.ndim and (x.ndim or index.ndim > 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input "
                           "tensor")
    for d, (i, n) in enumerate(zip(index.shape, x.shape)):
        if d != axis and None not in (i, n) and i > n:
            raise RuntimeError(f"Size does not match at dimension {d} expected index "
                               f"{list(index.shape)} to be no larger than self {list(x.shape)} "
                               f"apart from dimension {axis}")
    return index.shape


def _gather_dtype(x, index, axis: int) -> np.dtype:
    if index.dtype not in (np.int32, np.int64):
        raise TypeError("gather(): Expected dtype int32/int64 for index")
    return x.dtype


def _gather_decomposition(x, index, axis: int):
    spec, arrays = gather_index(x, index, axis)
    return x._getitem(arrays, spec)


def _gather_vjp(g, out, x, index, axis: int):
    spec, arrays = gather_index(x, index, axis)
    return g._scatter_add(x, arrays, spec)


# torch.gather: out[i][j] = x[i][index[i][j]] for axis 1, and likewise for any axis. A
# composite: one node (ONNX's GatherElements) that the compiler expands into getitem.
gather = Primitive(name="gather", kind=Kind.OPAQUE, kernel=_gather_kernel,
                   shape_rule=_gather_shape, dtype_rule=_gather_dtype,
                   vjps=(_gather_vjp, None), saves=Saves.INPUTS, grad_name="GatherBackward0",
                   decomposition=_gather_decomposition)

PRIMITIVES = (getitem, scatter_add, index_put, check_index, arange_like, nonzero, gather)
