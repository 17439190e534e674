"""What a primitive is: the single place that defines an operation for both modes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .shapes import Shape


class Kind(enum.Enum):
    """How an op may be fused (TVM's TOpPattern, reduced to what the fusion pass needs)."""

    ELEMENTWISE = "elementwise"  # out[i] depends on in[i] only
    BROADCAST = "broadcast"      # out[i] depends on in[f(i)], f a broadcast of the index
    REDUCE = "reduce"            # out[i] combines a set of inputs along some axes
    MOVEMENT = "movement"        # a re-indexing: reshape, transpose, slice
    OPAQUE = "opaque"            # anything else (matmul, gather): a fusion boundary


class Saves(enum.Flag):
    """What eager mode keeps alive for the backward pass (as torch saves per derivative)."""

    NOTHING = 0
    INPUTS = enum.auto()
    OUTPUT = enum.auto()


VJP = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Reduction:
    """What a reduction computes, as data (tinygrad's REDUCE_AXIS carries its ALU op): fold
    the reduced elements with ``combine``, a binary elementwise primitive that is associative
    and commutative (so any split into chunks and any order gives the same result), then, if
    ``mean``, divide by how many there were. Fusion and code generation read this, never a
    primitive's name: a reduction's partial results over chunks of rows are combined with
    ``combine``."""

    combine: Primitive
    mean: bool = False


@dataclass(frozen=True, eq=False, kw_only=True)
class Primitive:
    """One operation.

    ``kernel(*arrays, **params)`` is the reference meaning on numpy arrays.
    ``shape_rule`` / ``dtype_rule`` take the input values (anything with ``.shape``,
    ``.dtype``, ``.ndim``; a shape may hold ``None``) and the params.
    ``vjps[i](g, out, *inputs, **params)`` is the cotangent of input i, written only with
    the shared operator surface so it runs on eager Tensors and on graph Nodes alike;
    ``None`` where input i is not differentiable. A variadic primitive (concat) gives one
    callable taking ``index=`` instead. Results need not be unbroadcast: autodiff does it.
    ``reduction`` says what a reduce primitive computes, as data (see ``Reduction``).
    How a backend runs a primitive (numpy's ``out=`` variants and views, OpenCL code, ONNX
    operators) lives in that backend's table, keyed by primitive, not here.
    """

    name: str
    kind: Kind
    kernel: Callable[..., np.ndarray]
    shape_rule: Callable[..., Shape]
    dtype_rule: Callable[..., np.dtype]
    vjps: tuple[VJP | None, ...] | VJP | None = None
    saves: Saves = Saves.NOTHING
    grad_name: str = ""  # PyTorch's grad_fn class name for the usual overload
    diff_inputs: tuple[int, ...] | None = None  # variadic: the differentiable inputs (None: all)
    reduction: Reduction | None = None  # Kind.REDUCE over ``axes`` (with ``keepdims``)
    # The same value in simpler primitives, written with the shared surface
    # (``decomposition(*inputs, **params)``): the compiler expands it before fusion.
    decomposition: Callable[..., Any] | None = None
    # Folding a per-channel affine map into the op before it (batch norm into a convolution,
    # for inference): ``channel_affine(*inputs, **params)`` gives (scale, shift) of shape (C,)
    # such that the value is inputs[0] * scale + shift along axis 1, or None where it is not
    # (batch norm in training); ``absorb_channel_affine(scale, shift, *inputs, **params)``
    # gives the (inputs, params) of this primitive whose value is its own times scale plus
    # shift. Both build with the shared surface.
    channel_affine: Callable[..., Any] | None = None
    absorb_channel_affine: Callable[..., Any] | None = None
    # A collective across MPI ranks: every rank must run the collectives of a program in the
    # same order, so a graph numbers them as they are built (param ``order``) and the
    # compiler schedules them in that order, whatever else differs between the ranks' graphs.
    collective: bool = False

    def __post_init__(self) -> None:
        # Plain values: eager reads them on every recorded op.
        object.__setattr__(self, "saves_inputs", Saves.INPUTS in self.saves)
        object.__setattr__(self, "saves_output", Saves.OUTPUT in self.saves)
        if isinstance(self.vjps, tuple):
            object.__setattr__(self, "diff_inputs",
                               tuple(i for i, rule in enumerate(self.vjps) if rule is not None))

    @property
    def differentiable(self) -> bool:
        return self.vjps is not None

    def differentiable_positions(self, arity: int) -> tuple[int, ...]:
        """Which of ``arity`` inputs a gradient can flow to."""
        if self.vjps is None:
            return ()
        return self.diff_inputs if self.diff_inputs is not None else tuple(range(arity))

    def vjp_rule(self, index: int) -> VJP | None:
        if self.vjps is None or (self.diff_inputs is not None and index not in self.diff_inputs):
            return None
        if isinstance(self.vjps, tuple):
            return self.vjps[index]
        variadic = self.vjps
        return lambda *args, **params: variadic(*args, index=index, **params)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"
