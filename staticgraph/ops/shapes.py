"""Shape arithmetic shared by the shape rules: broadcasting and axes, with ``None`` for a
dimension that is unknown until run time (a placeholder's batch dimension)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Shape = tuple[int | None, ...]


class ShapeError(ValueError, RuntimeError):
    """Incompatible shapes. A ValueError for TF/numpy habits, a RuntimeError for PyTorch's."""


def broadcast_shapes(*shapes: Shape) -> Shape:
    """numpy broadcasting; an unknown dimension is assumed to match the known one."""
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    result = []
    for axis, sizes in enumerate(zip(*padded)):
        known = {d for d in sizes if d is not None and d != 1}
        if len(known) > 1:
            i, j = _conflict_positions(sizes)
            names = "abcdefgh"
            raise ShapeError(f"The size of tensor {names[i]} ({sizes[i]}) must match the size of "
                             f"tensor {names[j]} ({sizes[j]}) at non-singleton dimension {axis}")
        if known:
            result.append(known.pop())
        else:
            result.append(None if None in sizes else 1)
    return tuple(result)


def _conflict_positions(sizes: Sequence[int | None]) -> tuple[int, int]:
    first = next(i for i, d in enumerate(sizes) if d not in (1, None))
    second = next(i for i, d in enumerate(sizes) if d not in (1, None, sizes[first]))
    return first, second


def normalize_axis(axis: int, ndim: int) -> int:
    """A possibly negative axis as a non-negative one; IndexError like torch when out of range."""
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"dim must be an int, got {type(axis).__name__}")
    if not low <= axis <= high:
        raise IndexError(f"Dimension out of range (expected to be in range of [{low}, {high}], "
                         f"but got {axis})")
    return axis % max(ndim, 1)


def normalize_axes(axes: int | Iterable[int] | None, ndim: int) -> tuple[int, ...]:
    """None means every axis. Duplicates are an error, as in torch."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    result = tuple(normalize_axis(a, ndim) for a in axes)
    if len(set(result)) != len(result):
        raise ValueError(f"dim {tuple(axes)} appears multiple times in the list of dims")
    return tuple(sorted(result))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def sum_to_axes(shape: Shape, target: Shape) -> tuple[tuple[int, ...], int]:
    """Axes of ``shape`` to sum so it broadcasts back to ``target``: (kept axes summed with
    keepdims, number of leading axes summed away). A size-1 target axis is always summed:
    that is correct whether the other side turns out to be 1 or N."""
    lead = len(shape) - len(target)
    kept = tuple(lead + i for i, d in enumerate(target) if d == 1 and shape[lead + i] != 1)
    return kept, lead


def numel(shape: Shape) -> int | None:
    total = 1
    for d in shape:
        if d is None:
            return None
        total *= d
    return total


def reshape_shape(in_shape: Shape, shape: Sequence[int]) -> Shape:
    """Resolve one -1 in a target shape; torch's error text when the sizes cannot agree."""
    shape = tuple(int(d) for d in shape)
    if sum(d == -1 for d in shape) > 1:
        raise ShapeError("only one dimension can be inferred")
    if any(d < -1 for d in shape):
        raise ShapeError(f"invalid shape dimension {min(shape)}")
    total = numel(in_shape)
    known = numel(tuple(d for d in shape if d != -1))
    if -1 in shape:
        if total is None:
            return tuple(None if d == -1 else d for d in shape)
        if known == 0 or total % known:
            raise ShapeError(f"shape '{list(shape)}' is invalid for input of size {total}")
        return tuple(total // known if d == -1 else d for d in shape)
    if total is not None and total != known:
        raise ShapeError(f"shape '{list(shape)}' is invalid for input of size {total}")
    return shape
