"""Movement primitives: they re-index their input and compute nothing. In eager mode their
numpy kernels return views, as torch's view ops do."""

from __future__ import annotations

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, ShapeError, broadcast_shapes, reshape_shape

M = Kind.MOVEMENT


def _dtype_of_first(x, *_, **__) -> np.dtype:
    return x.dtype


# -- reshape ---------------------------------------------------------------------------------

reshape = Primitive("reshape", M, lambda x, shape: np.reshape(x, shape),
                    lambda x, shape: reshape_shape(x.shape, shape), _dtype_of_first,
                    (lambda g, out, x, shape: g.reshape_as(x),), Saves.NOTHING, "ViewBackward0",
                    views=True)
reshape_as = Primitive("reshape_as", M, lambda x, like: np.reshape(x, like.shape),
                       lambda x, like: like.shape, _dtype_of_first,
                       (lambda g, out, x, like: g.reshape_as(x), None), Saves.NOTHING,
                       "ViewBackward0", views=True)


# -- transpose -------------------------------------------------------------------------------

def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


transpose = Primitive("transpose", M, lambda x, perm: np.transpose(x, perm),
                      lambda x, perm: tuple(x.shape[p] for p in perm), _dtype_of_first,
                      (lambda g, out, x, perm: g.permute(*_inverse(perm)),), Saves.NOTHING,
                      "PermuteBackward0", views=True)


# -- adding and removing size-1 axes -----------------------------------------------------------

def _expand_dims_shape(x, axes: tuple[int, ...]) -> Shape:
    shape = list(x.shape)
    for a in axes:  # sorted, in the coordinates of the result
        shape.insert(a, 1)
    return tuple(shape)


def _squeeze_shape(x, axes: tuple[int, ...]) -> Shape:
    for a in axes:
        if x.shape[a] not in (1, None):
            raise ShapeError(f"cannot squeeze dimension {a} of size {x.shape[a]}")
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


expand_dims = Primitive("expand_dims", M, lambda x, axes: np.expand_dims(x, axes),
                        _expand_dims_shape, _dtype_of_first,
                        (lambda g, out, x, axes: g._squeeze_axes(axes),), Saves.NOTHING,
                        "UnsqueezeBackward0", views=True)
squeeze = Primitive("squeeze", M, lambda x, axes: np.squeeze(x, axes), _squeeze_shape,
                    _dtype_of_first, (lambda g, out, x, axes: g.unsqueeze(axes),),
                    Saves.NOTHING, "SqueezeBackward1", views=True)


# -- broadcasting ----------------------------------------------------------------------------

def _expanded(in_shape: Shape, shape: tuple[int, ...]) -> Shape:
    """torch's expand: -1 keeps a dimension; new dimensions go in front."""
    lead = len(shape) - len(in_shape)
    if lead < 0:
        raise ShapeError(f"expand: the number of sizes provided ({len(shape)}) must be greater "
                         f"or equal to the number of dimensions in the tensor ({len(in_shape)})")
    target = tuple(in_shape[i - lead] if d == -1 and i >= lead else d
                   for i, d in enumerate(shape))
    for i, (have, want) in enumerate(zip(in_shape, target[lead:])):
        if have not in (1, None) and want is not None and have != want:
            raise ShapeError(f"The expanded size of the tensor ({want}) must match the existing "
                             f"size ({have}) at non-singleton dimension {i + lead}.  "
                             f"Target sizes: {list(shape)}.  Tensor sizes: {list(in_shape)}")
    return target


broadcast_to = Primitive("broadcast_to", Kind.BROADCAST,
                         lambda x, shape: np.broadcast_to(x, _expanded(x.shape, shape)),
                         lambda x, shape: _expanded(x.shape, shape), _dtype_of_first,
                         (lambda g, out, x, shape: g._sum_to(x),), Saves.NOTHING,
                         "ExpandBackward0", into=lambda x, out, shape: np.copyto(out, x),
                         views=True)


def _expand_as_shape(x, like) -> Shape:
    shape = broadcast_shapes(x.shape, like.shape)
    if len(shape) != len(like.shape):
        raise ShapeError(f"cannot expand shape {x.shape} to {like.shape}")
    return like.shape


expand_as = Primitive("expand_as", Kind.BROADCAST, lambda x, like: np.broadcast_to(x, like.shape),
                      _expand_as_shape, _dtype_of_first,
                      (lambda g, out, x, like: g._sum_to(x), None), Saves.NOTHING,
                      "ExpandBackward0", into=lambda x, like, out: np.copyto(out, x),
                      views=True)


# -- concatenation ---------------------------------------------------------------------------

def _concat_shape(*xs, axis: int) -> Shape:
    first = xs[0].shape
    for i, x in enumerate(xs[1:], 1):
        if len(x.shape) != len(first):
            raise ShapeError(f"Tensors must have same number of dimensions: got {len(first)} "
                             f"and {len(x.shape)}")
        for d, (a, b) in enumerate(zip(first, x.shape)):
            if d != axis and None not in (a, b) and a != b:
                raise ShapeError(f"Sizes of tensors must match except in dimension {axis}. "
                                 f"Expected size {a} but got size {b} for tensor number {i} "
                                 "in the list.")
    sizes = [x.shape[axis] for x in xs]
    total = None if None in sizes else int(np.sum(sizes))
    return first[:axis] + (total,) + first[axis + 1:]


def _concat_vjp(g, out, *xs, axis: int, index: int):
    sizes = [x.shape[axis] for x in xs[:index + 1]]
    if None in sizes:
        raise ShapeError("the gradient of concat needs the sizes along the concatenated axis "
                         f"({axis}) to be known when the graph is built")
    start = int(np.sum(sizes[:-1]))
    return g[(slice(None),) * axis + (slice(start, start + sizes[-1]),)]


concat = Primitive("concat", Kind.OPAQUE, lambda *xs, axis: np.concatenate(xs, axis),
                   _concat_shape, lambda *xs, axis: dtypes.result_type(*xs), _concat_vjp,
                   Saves.NOTHING, "CatBackward0",
                   into=lambda *xs, out, axis: np.concatenate(xs, axis, out=out))

PRIMITIVES = (reshape, reshape_as, transpose, expand_dims, squeeze, broadcast_to, expand_as,
              concat)
