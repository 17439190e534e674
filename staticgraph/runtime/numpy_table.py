"""The numpy runtime's table, keyed by primitive (tinygrad's ``code_for_op`` per renderer):
how each primitive runs in a compiled schedule, and what memory planning may assume of it.

- ``into(*arrays, out=buffer, **params)`` writes the result into a preallocated buffer: what
  the schedule and fused kernels call. Without it the primitive's reference kernel runs and
  allocates (``ALLOCATES``); such a primitive cannot be a member of a fused kernel.
- ``views``: the kernel may return a view of its first input (reshape, slicing), so the
  value has no buffer of its own and keeps its base alive. Eager mode reads it too: a view
  shares its base's version counter, as torch's view ops do.
- ``ufunc``: the primitive is this elementwise ufunc. It reads each element before writing
  it, so its result may take over an operand's buffer (``in_place``), and a reduction whose
  ``combine`` it is joins partial results with it. Where numpy would compute it in another
  dtype than the dtype rule's (torch's promotion differs from numpy's for small ints and 0-d
  values), ``into_for`` casts into the buffer, as the reference kernel's result is cast.

Every primitive has an entry; ``tests/test_backend_tables.py`` names any that is missing,
checks that every fusible primitive has an ``into``, and that no kernel returns memory it
shares with an input unless its entry says ``views``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..graph import Node, Role
from ..ops import P, Primitive
from ..ops.elementwise import (clamp_bounds, sigmoid_kernel, sign_kernel, softplus_kernel,
                               threshold_backward_into, where_into)
from ..ops.collective import allreduce_into, allreduce_start_into
from ..ops.reduce import sum_to_into


@dataclass(frozen=True)
class NumpyLowering:
    into: Callable[..., object] | None = None
    views: bool = False
    ufunc: np.ufunc | None = None

    @property
    def in_place(self) -> bool:
        """May write over an operand of its result's shape (matmul, a gufunc, and kernels of
        several steps may not)."""
        return self.ufunc is not None

    def into_for(self, inputs: Sequence[np.dtype], out: np.dtype) -> Callable[..., object]:
        """The ``into`` to call for operands and a result of these dtypes (chosen when the
        schedule is rendered: the plain ufunc costs nothing extra per call)."""
        if self.ufunc is None:
            return self.into
        if len(set(inputs)) <= 1 and _resolved(self.ufunc, inputs) == out:
            return self.ufunc
        if self.into is not self.ufunc:  # it promotes as torch does itself (comparisons)
            return self.into
        loop = _resolved(self.ufunc, inputs)
        if loop is not None and loop.kind == "f" == out.kind and loop.itemsize < out.itemsize:
            # numpy's loop for small integers is float16's: compute in the result's dtype, as
            # torch and the reference kernel do
            return functools.partial(self.ufunc, casting="unsafe", dtype=out)
        return functools.partial(self.ufunc, casting="unsafe")


@functools.cache
def _resolved_cached(ufunc: np.ufunc, inputs: tuple[np.dtype, ...]) -> np.dtype | None:
    try:
        return ufunc.resolve_dtypes((*inputs, None))[-1]
    except (TypeError, np.exceptions.DTypePromotionError):
        return None


def _resolved(ufunc: np.ufunc, inputs: Sequence[np.dtype]) -> np.dtype | None:
    """The result dtype of numpy's loop for these operands (None: no loop fits them)."""
    return _resolved_cached(ufunc, tuple(inputs))


ALLOCATES = NumpyLowering()   # the reference kernel allocates its result
VIEWS = NumpyLowering(views=True)


def _ufunc(ufunc: np.ufunc) -> NumpyLowering:
    return NumpyLowering(ufunc, ufunc=ufunc)


def _copy_into(x, *_, out, **__):
    np.copyto(out, x, casting="unsafe")


def _compare(prim: Primitive, ufunc: np.ufunc) -> NumpyLowering:
    """The ufunc where both sides share a dtype; else the kernel, which promotes as torch."""
    return NumpyLowering(prim.kernel, ufunc=ufunc)


def _clamp_into(x, *bounds, out, has_min, has_max):
    lo, hi = clamp_bounds(bounds, has_min, has_max)
    if lo is None:
        np.minimum(x, hi, out=out, casting="unsafe")
        return
    np.maximum(x, lo, out=out, casting="unsafe")
    if hi is not None:
        np.minimum(out, hi, out=out, casting="unsafe")


def _own_out(prim: Primitive) -> NumpyLowering:
    """The reference kernel itself takes ``out=`` (the reductions call ufunc.reduce)."""
    return NumpyLowering(into=prim.kernel)


NUMPY: dict[Primitive, NumpyLowering] = {
    # elementwise: the ufunc itself (a compiled run silences floating-point warnings once)
    P.add: _ufunc(np.add), P.sub: _ufunc(np.subtract),
    P.mul: _ufunc(np.multiply), P.div: _ufunc(np.true_divide),
    P.pow: _ufunc(np.power), P.maximum: _ufunc(np.maximum),
    P.minimum: _ufunc(np.minimum), P.neg: _ufunc(np.negative),
    P.exp: _ufunc(np.exp), P.log: _ufunc(np.log),
    P.sqrt: _ufunc(np.sqrt), P.tanh: _ufunc(np.tanh),
    P.abs: _ufunc(np.abs), P.sign: NumpyLowering(sign_kernel),
    P.erf: _ufunc(special.erf),
    P.floor: _ufunc(np.floor), P.sin: _ufunc(np.sin), P.cos: _ufunc(np.cos),
    # (their kernels, which refuse an integer division by zero as torch does)
    P.floor_divide: _own_out(P.floor_divide), P.remainder: _own_out(P.remainder),
    P.sigmoid: NumpyLowering(lambda x, out: np.copyto(out, sigmoid_kernel(x))),
    P.relu: NumpyLowering(lambda x, out: np.maximum(x, 0, out=out)),
    P.threshold_backward: NumpyLowering(threshold_backward_into),
    P.softplus: NumpyLowering(softplus_kernel),
    P.leaky_relu: NumpyLowering(P.leaky_relu.kernel), P.silu: NumpyLowering(P.silu.kernel),
    P.elu: NumpyLowering(P.elu.kernel), P.hardtanh: NumpyLowering(P.hardtanh.kernel),
    P.clamp: NumpyLowering(_clamp_into),
    P.where: NumpyLowering(where_into),
    P.cast: NumpyLowering(_copy_into),
    P.fill: NumpyLowering(lambda x, out, value: out.fill(value)),
    P.stop_gradient: NumpyLowering(_copy_into, views=True),
    P.eq: _compare(P.eq, np.equal), P.ne: _compare(P.ne, np.not_equal),
    P.lt: _compare(P.lt, np.less), P.le: _compare(P.le, np.less_equal),
    P.gt: _compare(P.gt, np.greater), P.ge: _compare(P.ge, np.greater_equal),
    P.logical_and: _ufunc(np.logical_and), P.logical_or: _ufunc(np.logical_or),
    P.logical_not: _ufunc(np.logical_not),
    # reductions
    P.sum: _own_out(P.sum), P.mean: _own_out(P.mean), P.prod: _own_out(P.prod),
    P.max: _own_out(P.max), P.min: _own_out(P.min),
    P.argmax: ALLOCATES, P.argmin: ALLOCATES, P.size_of: ALLOCATES,
    P.sum_to: NumpyLowering(sum_to_into),
    P.cumsum: NumpyLowering(lambda x, out, axis: np.cumsum(x, axis, dtype=out.dtype, out=out)
                            if x.ndim else np.copyto(out, x, casting="unsafe")),
    # movement: numpy views; broadcasts also materialise into a buffer inside fused kernels
    P.reshape: VIEWS, P.reshape_as: VIEWS, P.transpose: VIEWS, P.expand_dims: VIEWS,
    P.squeeze: VIEWS,
    P.broadcast_to: NumpyLowering(_copy_into, views=True),
    P.expand_as: NumpyLowering(_copy_into, views=True),
    P.concat: NumpyLowering(lambda *xs, out, axis: np.concatenate(xs, axis, out=out)),
    # indexing: basic indexing is a view (index arrays make a copy); check_index returns x
    P.getitem: VIEWS, P.check_index: VIEWS, P.scatter_add: ALLOCATES, P.index_put: ALLOCATES,
    P.arange_like: ALLOCATES, P.nonzero: ALLOCATES,
    # composites: decomposed by default; as one node (passes without "decompose"), their
    # reference kernels run
    P.softmax: ALLOCATES, P.log_softmax: ALLOCATES, P.gelu: ALLOCATES, P.layer_norm: ALLOCATES,
    P.nll_loss: ALLOCATES, P.mse_loss: ALLOCATES, P.gather: ALLOCATES,
    P.binary_cross_entropy: ALLOCATES, P.conv2d: ALLOCATES, P.conv_transpose2d: ALLOCATES,
    P.max_pool2d: ALLOCATES, P.avg_pool2d: ALLOCATES,
    # convolutions' windows, written into planned buffers: a fresh 4 MB array each run
    # would cost more in page faults than the copy itself
    P.im2col: NumpyLowering(lambda x, out, windows, pad_value:
                            np.copyto(out, windows.view(x, pad_value))),
    P.col2im: NumpyLowering(lambda cols, out, windows, size: windows.scatter(cols, size, out)),
    P.batch_norm: ALLOCATES,
    # a control dependency returns its first input; random numbers are drawn anew
    P.after: VIEWS, P.uniform_like: ALLOCATES, P.check_range: VIEWS,
    # MPI collectives: an all-reduce receives into the planned buffer
    P.allreduce: NumpyLowering(into=allreduce_into), P.broadcast: ALLOCATES,
    P.allgather: ALLOCATES,
    # a bucket packed into its planned buffer, reduced there; the wait returns that buffer
    P.allreduce_start: NumpyLowering(into=allreduce_start_into), P.allreduce_wait: VIEWS,
    # linear algebra
    P.matmul: NumpyLowering(functools.partial(np.matmul, casting="unsafe")),
}


def reduce_partial(prim: Primitive) -> Callable[..., np.ndarray]:
    """A reduction over one chunk of rows: its combining primitive's ufunc, reduced."""
    return NUMPY[prim.reduction.combine].ufunc.reduce


def combine_partials(prim: Primitive) -> np.ufunc:
    return NUMPY[prim.reduction.combine].ufunc


# -- what memory planning may assume (passes.memory.Aliasing for this runtime) ----------------

class NumpyAliasing:
    """The aliasing facts of the numpy runtime's kernels, read from the table."""

    hands_over_fresh = True

    @staticmethod
    def views(node: Node) -> bool:
        return node.role is Role.OP and NUMPY[node.prim].views

    @staticmethod
    def writes_into(node: Node) -> bool:
        return node.role is Role.OP and NUMPY[node.prim].into is not None

    @staticmethod
    def in_place_inputs(value: Node, producer: Node, base_of: dict[Node, Node]) -> list[Node]:
        """Inputs of ``producer`` whose buffer ``value`` may take over while being computed."""
        if producer.role is Role.OP:
            if not NUMPY[producer.prim].in_place:
                return []
            return [x for x in producer.inputs if x.shape == value.shape]
        kernel = producer.fused
        if not kernel.writes_last_only or not NUMPY[kernel.members[-1].prim].in_place:
            return []
        # Chunk by chunk, every member reads a row range of the input before the last member
        # writes the same range: safe only if every read of it is row by row, and it does not
        # come in a second time through a view (whose rows are other rows: x.T).
        roots = [base_of.get(x, x) for x in producer.inputs]
        return [x for k, x in enumerate(producer.inputs)
                if x.shape == value.shape and sum(r is x for r in roots) == 1
                and kernel.reads_by_rows(k)]
