"""Converters of the ONNX ops that compute shapes, move data or index into it.

Reshape, Flatten, Expand, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Pad, Gather,
GatherND, ScatterElements, NonZero, Trilu, Constant, Shape, Size, ConstantOfShape and Range:
their shapes, axes and bounds are read from the builder at the two probe points
(``shapes.py``), so a size known only at run time is carried by a reshape's -1, a shape
donor, or positions 0..n-1 of that length (``arange_like``: a Range up to a sequence length,
a Slice or Trilu of one).
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Node, constant
from ..ops import functional
from .errors import ONNXError
from .loading import check_size, tensor_array
from .shapes import Converter, Dim, axis_index, product


def _transpose(b, node, xs, attrs):
    x = xs[0]
    return x.permute(attrs.get("perm", list(reversed(range(x.ndim)))))


def _concat(b, node, xs, attrs):
    return functional.cat(xs, axis_index(attrs["axis"], xs[0].ndim))


def _constant(b, node, xs, attrs):
    if "value" in attrs:
        return constant(tensor_array(attrs["value"], "Constant's value"))
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return constant(np.array(attrs[key], dtype))
    raise ONNXError(f"Constant with {', '.join(attrs) or 'no value'}: only numeric tensors "
                    "are supported")


def _shape(b, node, xs, attrs):
    return b.shape_node(xs[0], attrs.get("start", 0), attrs.get("end"))


def _size(b, node, xs, attrs):
    total = product(b.shape(xs[0]))
    if total[0] == total[1]:
        return constant(np.array(total[0], np.int64))
    return b.with_known(b.shape_node(xs[0]).prod(), *total)


def _reshape(b, node, xs, attrs):
    x = xs[0]
    target = b.dims(xs[1], "Reshape's shape")
    own = b.shape(x)
    if not attrs.get("allowzero", 0):  # 0 copies the input's size
        target = [own[i] if d == (0, 0) else d for i, d in enumerate(target)]
    if (-1, -1) in target:
        rest = product([d for d in target if d != (-1, -1)])
        total = product(own)
        if 0 in rest or total[0] % rest[0] or total[1] % rest[1]:
            raise ONNXError(f"cannot reshape size {x.shape} to {_shown(target)}")
        target = [(total[0] // rest[0], total[1] // rest[1]) if d == (-1, -1) else d
                  for d in target]
    return b.reshape(x, target)


def _shown(dims: list[Dim]) -> list:
    return [d[0] if d[0] == d[1] else "?" for d in dims]


def _flatten(b, node, xs, attrs):
    x = xs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    dims = b.shape(x)
    return b.reshape(x, [product(dims[:axis]), product(dims[axis:])])


def _expand(b, node, xs, attrs):
    x = xs[0]
    target = b.dims(xs[1], "Expand's shape")
    own = b.shape(x)
    rank = max(len(target), len(own))
    ones = [(1, 1)] * rank
    padded_target, padded_own = (ones + target)[-rank:], (ones + own)[-rank:]
    dims = [o if t == (1, 1) else t for t, o in zip(padded_target, padded_own)]
    if all(d[0] == d[1] for d in dims):
        check_size([d[0] for d in dims], x.dtype, "Expand's result")
    return b.expand(x, dims)


def _constant_of_shape(b, node, xs, attrs):
    value = tensor_array(attrs["value"], "ConstantOfShape's value") if "value" in attrs else \
        np.zeros(1, np.float32)
    dims = b.dims(xs[0], "ConstantOfShape's shape")
    return b.fill(dims, value.reshape(-1)[0].item(), value.dtype, "ConstantOfShape's result")


def _range(b, node, xs, attrs):
    start, limit, delta = (b.probe_values(x, f"Range's {w}")
                           for x, w in zip(xs, ("start", "limit", "delta")))
    if 0 in (delta[0], delta[1]):
        raise ONNXError("Range's delta is 0")
    counts = tuple(max(math.ceil((limit[k] - start[k]) / delta[k]), 0) for k in (0, 1))
    if all(np.array_equal(v[0], v[1]) for v in (start, limit, delta)):
        check_size([counts[0]], start[0].dtype, "Range's result")
        return constant((start[0] + np.arange(counts[0]) * delta[0]).astype(start[0].dtype))
    # A length known only at run time (torch.arange(T)): start + delta * [0, 1, ..., n - 1].
    # It is a size only for a delta of 1 or -1 (with another, rounding can make the two
    # probe points' lengths equal although they depend on T).
    if limit[0] - start[0] != limit[1] - start[1] and not abs(delta[0]) == abs(delta[1]) == 1:
        raise ONNXError("Range's length depends on a size known only at run time; that is "
                        "supported for a delta of 1 or -1 only")
    positions = b.arange(counts, "Range's result").to(xs[0].dtype)
    return xs[0] + xs[2] * positions


def _squeeze(b, node, xs, attrs):
    x = xs[0]
    axes = b.static_ints(xs[1] if len(xs) > 1 else None, "Squeeze's axes") \
        if b.opset >= 13 else attrs.get("axes")
    if axes is None:
        if None in x.shape:
            raise ONNXError(f"Squeeze without axes of shape {x.shape}: whether a size known "
                            "only at run time is 1 is not known while importing")
        axes = [a for a, d in enumerate(x.shape) if d == 1]
    return x._squeeze_axes(tuple(sorted({axis_index(a, x.ndim) for a in axes})))


def _unsqueeze(b, node, xs, attrs):
    x = xs[0]
    axes = b.static_ints(xs[1], "Unsqueeze's axes") if b.opset >= 13 else attrs["axes"]
    return x.unsqueeze(tuple(axes))


def _slice(b, node, xs, attrs):
    x = xs[0]
    if b.opset >= 10:
        starts, ends = (b.dims(v, f"Slice's {w}") for v, w in zip(xs[1:3], ("starts", "ends")))
        axes, steps = (b.static_ints(v, f"Slice's {w}")
                       for v, w in zip((xs + [None, None])[3:5], ("axes", "steps")))
    else:
        starts, ends = ([(v, v) for v in attrs[k]] for k in ("starts", "ends"))
        axes, steps = attrs.get("axes"), None
    axes = axes if axes is not None else range(len(starts))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    gathers = []
    own = b.shape(x)
    for axis, start, end, step in zip(axes, starts, ends, steps):
        axis = axis_index(axis, x.ndim)
        bounds = _axis_slice(own[axis], start, end, step)
        if isinstance(bounds, slice):
            index[axis] = bounds
        else:
            gathers.append((axis, *bounds))
    y = x[tuple(index)]
    for axis, first, count in gathers:  # one axis at a time: numpy would pair index arrays
        positions = b.arange(count, "Slice's result")
        y = y[(slice(None),) * axis + (positions + first if first else positions,)]
    return y


def _axis_slice(size: Dim, start: Dim, end: Dim, step: int) -> slice | tuple[int, Dim]:
    """ONNX's slice of one axis as a Python slice (which clamps differently for negative
    steps, so a known size is resolved here); or, for an end known only at run time that is
    not the axis' own size plus a constant, the first position and the count to gather."""
    if step == 0:
        raise ONNXError("Slice's step is 0")
    if end[0] != end[1] and end[0] - size[0] != end[1] - size[1]:
        return _gathered(size, start, end, step)
    bounds = []
    for which, bound in (("start", start), ("end", end)):
        offset = bound[0] - size[0]
        if bound[0] == bound[1]:
            bounds.append(bound[0])
        elif offset == bound[1] - size[1] and (offset < 0 or (which == "end") == (step > 0)):
            bounds.append(offset if offset < 0 else None)  # from the axis' end, or all of it
        else:
            raise ONNXError(f"Slice's {which} depends on a size known only at run time")
    start, end = bounds
    if size[0] != size[1] or None in bounds:
        return slice(start, end, step)
    n = size[0]
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), n), min(max(end, 0), n), step)
    start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return slice(start, end if end >= 0 else None, step)


def _gathered(size: Dim, start: Dim, end: Dim, step: int) -> tuple[int, Dim]:
    """The first position and count of a slice whose end is known only at run time
    (``pos_emb[:, :T]``). The end is taken to lie within the axis, as adding the slice to a
    T-long value needs: past it, the gather fails at run time where ONNX would clamp."""
    if step != 1 or start[0] != start[1] or min(end) < 0 or \
            (start[0] < 0 and size[0] != size[1]):
        raise ONNXError("Slice's end depends on a size known only at run time; that needs "
                        "step 1, a start known when importing and an end counted from the "
                        "axis' start")
    first = start[0]
    if size[0] == size[1]:
        first = min(max(first + size[0] if first < 0 else first, 0), size[0])
    return first, (max(end[0] - first, 0), max(end[1] - first, 0))


_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad(b, node, xs, attrs):
    """Pads (all begins, then all ends, over ``axes``): negative ones cut, positive ones
    concatenated along each axis, filled as ``mode`` says."""
    x = xs[0]
    mode = attrs.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise ONNXError(f"mode {mode!r}: one of {', '.join(_PAD_MODES)} is expected")
    if b.opset >= 11:
        given = xs + [None] * 3
        pads = b.static_ints(given[1], "Pad's pads")
        axes = b.static_ints(given[3], "Pad's axes")
        value = given[2]
    else:
        pads, axes = attrs["pads"], None
        value = constant(np.array(attrs.get("value", 0.0), x.dtype))
    axes = range(x.ndim) if axes is None else [axis_index(a, x.ndim) for a in axes]
    if len(pads) != 2 * len(axes):
        raise ONNXError(f"{len(pads)} pads for {len(axes)} axes: a begin and an end per axis "
                        "are expected")
    value = constant(np.zeros((), x.dtype)) if value is None else value.reshape(()).to(x.dtype)
    for axis, before, after in zip(axes, pads[:len(axes)], pads[len(axes):]):
        x = _pad_axis(b, x, axis, before, after, mode, value)
    return x


def _pad_axis(b, x: Node, axis: int, before: int, after: int, mode: str, value: Node) -> Node:
    lead = (slice(None),) * axis
    if before < 0 or after < 0:
        x = x[lead + (slice(max(-before, 0), after if after < 0 else None),)]
    size = min(b.shape(x)[axis])  # (a size known only at run time: the smaller probe)
    limit = {"reflect": size - 1, "wrap": size}.get(mode)
    if limit is not None and max(before, after) > limit:
        raise ONNXError(f"{mode} pads of {max(before, after)} along axis {axis} of size "
                        f"{size}: at most {limit} are supported")

    def side(count: int, first: bool) -> Node:
        if mode == "constant":
            dims = b.shape(x)
            dims[axis] = (count, count)
            return b.expand(value, dims)
        if mode == "edge":
            edge = x[lead + (slice(0, 1) if first else slice(-1, None),)]
            return edge.expand(tuple(count if a == axis else -1 for a in range(x.ndim)))
        if mode == "reflect":  # the mirror image, the edge itself left out
            return x[lead + (slice(count, 0, -1) if first else slice(-2, -2 - count, -1),)]
        return x[lead + (slice(-count, None) if first else slice(0, count),)]  # wrap

    pieces = [side(before, True)] * (before > 0) + [x] + [side(after, False)] * (after > 0)
    return functional.cat(pieces, axis) if len(pieces) > 1 else x


def _trilu(b, node, xs, attrs):
    """The upper (or lower) triangle of the last two axes: a mask from the positions along
    them, so their sizes may be known only at run time (``ones(T, T).triu(1)``)."""
    x = xs[0]
    if x.ndim < 2:
        raise ONNXError(f"Trilu takes a value of rank 2 or more, got rank {x.ndim}")
    k = int(b.static(xs[1], "Trilu's k")) if len(xs) > 1 and xs[1] is not None else 0
    diagonal = x._arange_like(x.ndim - 1) - x._arange_like(x.ndim - 2).reshape(-1, 1)
    return x.where(diagonal >= k if attrs.get("upper", 1) else diagonal <= k, 0)


def _gather(b, node, xs, attrs):
    x, indices = xs
    axis = axis_index(attrs.get("axis", 0), x.ndim)
    return x[(slice(None),) * axis + (indices,)]


def _gather_nd(b, node, xs, attrs):
    """x at the positions along indices' last axis: x[indices[..., 0], indices[..., 1], ...]."""
    x, indices = xs
    if attrs.get("batch_dims", 0):
        raise ONNXError(f"batch_dims {attrs['batch_dims']} is not supported, only 0")
    depth = indices.shape[-1] if indices.ndim else 0
    if not depth:
        raise ONNXError(f"indices of shape {indices.shape}: the length of their last axis "
                        "must be known when importing, and not 0")
    return x[tuple(indices[..., k] for k in range(depth))]


def _scatter_elements(b, node, xs, attrs):
    """x with updates written (reduction "none") or added ("add") at indices along axis:
    index arrays for every axis, the indices along that one and positions 0..n-1 along the
    others (numpy's last write wins where ONNX leaves repeated indices undefined)."""
    x, indices, updates = xs
    reduction = attrs.get("reduction", "none")
    if reduction not in ("none", "add"):
        raise ONNXError(f"reduction {reduction!r} is not supported, only 'none' and 'add'")
    axis = axis_index(attrs.get("axis", 0), x.ndim)
    arrays = [indices if k == axis else _positions(indices, k) for k in range(x.ndim)]
    spec = tuple(("array", k) for k in range(x.ndim))
    if reduction == "add":
        return x + updates._scatter_add(x, arrays, spec)
    return x._index_put(updates, arrays, spec)


def _positions(x: Node, axis: int) -> Node:
    """0, 1, ..., n - 1 along ``axis`` of x, shaped to broadcast against it."""
    shape = tuple(-1 if k == axis else 1 for k in range(x.ndim))
    n = x.shape[axis]
    if n is None:
        return x._arange_like(axis).reshape(shape)
    return constant(np.arange(n, dtype=np.int64).reshape(shape))


def _non_zero(b, node, xs, attrs):
    """ONNX's positions are (ndim, n), torch's nonzero (n, ndim)."""
    return xs[0].nonzero().T


def _split(b, node, xs, attrs):
    x = xs[0]
    axis = axis_index(attrs.get("axis", 0), x.ndim)
    count = len(node.output)
    sizes = b.static_ints(xs[1] if len(xs) > 1 else None, "Split's sizes") \
        if b.opset >= 13 else attrs.get("split")
    if sizes is None:
        size = x.shape[axis]
        if size is None:
            raise ONNXError("Split into equal parts of a size known only at run time")
        chunk = -(-size // count)  # opset 18: the last part may be smaller
        sizes = [min(chunk, size - i * chunk) for i in range(count)]
    if len(sizes) != count:
        raise ONNXError(f"Split has {count} outputs but {len(sizes)} sizes {sizes}")
    starts = np.cumsum([0, *sizes])
    before = (slice(None),) * axis
    return [x[before + (slice(int(s), int(e)),)] for s, e in zip(starts[:-1], starts[1:])]


# The ops above, by ONNX op type (import_ops.CONVERTERS includes them).
MOVEMENT_CONVERTERS: dict[str, Converter] = {
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Expand": _expand,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split,
    "Slice": _slice, "Pad": _pad, "Gather": _gather, "Constant": _constant, "Shape": _shape,
    "Size": _size, "ConstantOfShape": _constant_of_shape, "Range": _range, "Trilu": _trilu,
    "GatherND": _gather_nd, "ScatterElements": _scatter_elements, "NonZero": _non_zero,
}
