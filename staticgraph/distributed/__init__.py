"""Data-parallel training on MPI (mpi4py): every rank runs the same program on its shard of
the data, and gradients are averaged across ranks before each update, as Horovod does for
TensorFlow 1.x graphs. ``python -m staticgraph.distributed -n 4 script.py`` starts a job;
docs/distributed.md says how it works and what it costs.

The collectives are primitives of the table (``staticgraph/ops/collective.py``): these
functions apply them to graph nodes and to eager tensors alike; on a process that mpiexec
did not start, the world is that one process."""

from __future__ import annotations

import sys
import time
import traceback as tb
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Node
from ..ops import collective
from ..ops.primitives import P
from ..optim import Optimizer
from .checkpoint import Checkpointer

__all__ = ["init", "rank", "size", "allreduce", "broadcast", "allgather",
           "DistributedOptimizer", "broadcast_variables", "shard", "Checkpointer"]


_UNCHANGED: Any = object()


def init(timeout: float | None = _UNCHANGED) -> tuple[int, int]:
    """Start MPI (once) and return (rank, size). ``timeout``: seconds any collective may wait
    for the other ranks before this rank says so and ends the job on every rank (a rank that
    failed or hangs); None waits forever (the default), and leaving it out keeps what was set
    (the launcher's ``--timeout``). An uncaught exception on any rank ends the job on every
    rank too, naming the rank."""
    world = _world()
    if timeout is not _UNCHANGED:
        collective.TIMEOUT[0] = timeout
    if sys.excepthook is not _abort_job:
        _hooks.append(sys.excepthook)
        sys.excepthook = _abort_job
    return world.rank, world.size


_hooks: list[Any] = []  # the excepthook init() replaced


def _abort_job(kind, value, traceback) -> None:
    """One rank's uncaught exception ends every rank (MPI_Abort), not only this one: the
    others would wait for it in their next collective forever."""
    world = _world()
    if world.size == 1:
        _hooks[-1](kind, value, traceback)
        return
    report = "".join(tb.format_exception(kind, value, traceback))
    sys.stderr.write(f"rank {world.rank} of {world.size} failed; ending the job:\n{report}")
    sys.stderr.flush()
    time.sleep(0.5)  # mpiexec forwards our stderr; MPI_Abort kills what it has not yet sent
    world.Abort(1)


def _world() -> Any:
    return collective.mpi().COMM_WORLD


def rank() -> int:
    """This process's rank (0 .. size-1)."""
    return _world().rank


def size() -> int:
    """How many ranks the job has."""
    return _world().size


def allreduce(x: Any, op: str = "mean") -> Any:
    """Every rank's ``x`` combined (``"mean"`` or ``"sum"``), the same on every rank. Its
    gradient is the all-reduce of the gradients."""
    return _apply(x, P.allreduce, op=op)


def broadcast(x: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``x`` on every rank. Its gradient goes back to the root (the sum of
    every rank's) and is zero elsewhere."""
    return _apply(x, P.broadcast, root=root, rank=rank())


def allgather(x: Any) -> Any:
    """Every rank's ``x`` joined along the first axis, in rank order (same shapes on every
    rank). Its gradient is this rank's rows of the summed gradients."""
    return _apply(x, P.allgather, size=size(), rank=rank())


def _apply(x: Any, prim, **params) -> Any:
    if hasattr(x, "_apply"):  # a graph node or an eager tensor
        return x._apply(prim, x, **params)
    return prim.kernel(np.asarray(x), **params)  # an array: now


BUCKET_BYTES = 25 * 2**20  # torch DDP's default bucket (Horovod's fusion buffer: 64 MiB)


class DistributedOptimizer(Optimizer):
    """Horovod's name: ``optimizer``'s updates with every gradient averaged across ranks
    first, so each rank takes the same step, the one of the whole global batch.

    ``bucket_bytes``: the compiler's "bucket" pass packs the gradients into buckets of at
    most this many bytes (a larger gradient is a bucket of its own), each reduced by one
    non-blocking all-reduce that starts as soon as its gradients are computed and is waited
    for where the update first reads one, so communication overlaps the rest of the
    backward pass (docs/compiler.md, "Gradient buckets"). Fewer, larger all-reduces pay
    the per-call latency fewer times; smaller ones start sooner. ``None``: one blocking
    all-reduce per gradient."""

    def __init__(self, optimizer: Optimizer, bucket_bytes: int | None = BUCKET_BYTES) -> None:
        if bucket_bytes is not None and not (isinstance(bucket_bytes, int) and
                                             bucket_bytes >= 0):
            raise ValueError(f"DistributedOptimizer: bucket_bytes must be a number of bytes "
                             f"(an int >= 0) or None, got {bucket_bytes!r}")
        self.optimizer = optimizer
        self.bucket_bytes = bucket_bytes

    def compute_gradients(self, loss: Node, var_list: Sequence[Node] | None = None
                          ) -> list[tuple[Node | None, Node]]:
        pairs = self.optimizer.compute_gradients(loss, var_list)
        bucket = {} if self.bucket_bytes is None else {"bucket_bytes": self.bucket_bytes}
        with loss.graph.as_default():
            return [(None if g is None else _apply(g, P.allreduce, op="mean", **bucket), v)
                    for g, v in pairs]

    def apply_gradients(self, grads_and_vars: Sequence[tuple[Node | None, Node]]) -> Node:
        return self.optimizer.apply_gradients(grads_and_vars)


def broadcast_variables(session: Any, root: int = 0) -> None:
    """Every Variable of ``session``'s graph set to rank ``root``'s value (start every rank
    from the same weights), in one broadcast per Variable."""
    for variable in session.graph.variables:
        value = np.array(session._value(variable), order="C")
        session.assign(variable, P.broadcast.kernel(value, root=root, rank=rank()))


def shard(data: Any, rank: int | None = None, size: int | None = None) -> Any:
    """This rank's share of ``data`` along its first axis (rank ``rank`` of ``size``, by
    default this process's): contiguous, as equal as possible, the same split on every run
    (``np.array_split``'s). Arrays, lists and tuples of them."""
    r = _world().rank if rank is None else rank
    n = _world().size if size is None else size
    if isinstance(data, (list, tuple)):
        return type(data)(shard(d, r, n) for d in data)
    rows = np.array_split(np.arange(len(data)), n)[r]
    return data[rows[0]:rows[-1] + 1] if len(rows) else data[:0]

