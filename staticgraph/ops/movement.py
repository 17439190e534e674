"""Movement primitives: they re-index their input and compute nothing. In eager mode their
numpy kernels return views, as torch's view ops do."""

from __future__ import annotations

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive
from .shapes import Shape, ShapeError, broadcast_shapes, reshape_shape

M = Kind.MOVEMENT


def _dtype_of_first(x, *_, **__) -> np.dtype:
    return x.dtype


# -- reshape ---------------------------------------------------------------------------------

reshape = Primitive(name="reshape",
                    kind=M,
                    kernel=lambda x, shape: np.reshape(x, shape),
                    shape_rule=lambda x, shape: reshape_shape(x.shape, shape),
                    dtype_rule=_dtype_of_first,
                    vjps=(lambda g, out, x, shape: g.reshape_as(x),),
                    grad_name="ViewBackward0")
reshape_as = Primitive(name="reshape_as",
                       kind=M,
                       kernel=lambda x, like: np.reshape(x, like.shape),
                       shape_rule=lambda x, like: like.shape,
                       dtype_rule=_dtype_of_first,
                       vjps=(lambda g, out, x, like: g.reshape_as(x), None),
                       grad_name="ViewBackward0")


# -- transpose -------------------------------------------------------------------------------

def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


transpose = Primitive(name="transpose",
                      kind=M,
                      kernel=lambda x, perm: np.transpose(x, perm),
                      shape_rule=lambda x, perm: tuple(x.shape[p] for p in perm),
                      dtype_rule=_dtype_of_first,
                      vjps=(lambda g, out, x, perm: g.permute(*_inverse(perm)),),
                      grad_name="PermuteBackward0")


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


expand_dims = Primitive(name="expand_dims",
                        kind=M,
                        kernel=lambda x, axes: np.expand_dims(x, axes),
                        shape_rule=_expand_dims_shape,
                        dtype_rule=_dtype_of_first,
                        vjps=(lambda g, out, x, axes: g._squeeze_axes(axes),),
                        grad_name="UnsqueezeBackward0")
squeeze = Primitive(name="squeeze",
                    kind=M,
                    kernel=lambda x, axes: np.squeeze(x, axes),
                    shape_rule=_squeeze_shape,
                    dtype_rule=_dtype_of_first,
                    vjps=(lambda g, out, x, axes: g.unsqueeze(axes),),
                    grad_name="SqueezeBackward1")


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


broadcast_to = Primitive(name="broadcast_to",
                         kind=Kind.BROADCAST,
                         kernel=lambda x, shape: np.broadcast_to(x, _expanded(x.shape, shape)),
                         shape_rule=lambda x, shape: _expanded(x.shape, shape),
                         dtype_rule=_dtype_of_first,
                         vjps=(lambda g, out, x, shape: g._sum_to(x),),
                         grad_name="ExpandBackward0")


def _expand_as_shape(x, like) -> Shape:
    shape = broadcast_shapes(x.shape, like.shape)
    if len(shape) != len(like.shape):
        raise ShapeError(f"cannot expand shape {x.shape} to {like.shape}")
    return like.shape


expand_as = Primitive(name="expand_as",
                      kind=Kind.BROADCAST,
                      kernel=lambda x, like: np.broadcast_to(x, like.shape),
                      shape_rule=_expand_as_shape,
                      dtype_rule=_dtype_of_first,
                      vjps=(lambda g, out, x, like: g._sum_to(x), None),
                      grad_name="ExpandBackward0")


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
    """Input ``index``'s part of g along ``axis``: a slice where the sizes are known, else
    a gather of the positions its rows take, counted when the graph runs."""
    sizes = [x.shape[axis] for x in xs[:index + 1]]
    whole = (slice(None),) * axis
    if None not in sizes:
        start = int(np.sum(sizes[:-1]))
        return g[whole + (slice(start, start + sizes[-1]),)]
    positions = xs[index]._arange_like(axis)
    for x in xs[:index]:  # (counted as int64: size_of counts in x's dtype, maybe bool)
        positions = positions + x._arange_like(axis)._size_of((0,))
    return g[whole + (positions,)]


concat = Primitive(name="concat",
                   kind=Kind.OPAQUE,
                   kernel=lambda *xs, axis: np.concatenate(xs, axis),
                   shape_rule=_concat_shape,
                   dtype_rule=lambda *xs, axis: dtypes.result_type(*xs),
                   vjps=_concat_vjp,
                   grad_name="CatBackward0")

PRIMITIVES = (reshape, reshape_as, transpose, expand_dims, squeeze, broadcast_to, expand_as,
              concat)
