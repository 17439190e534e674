"""Collectives across the processes (ranks) of an MPI job, for data-parallel training: each a
primitive of the table with its VJP, so eager tensors and graph nodes use them alike and
their gradients are more collectives (the gradient of an all-reduce is an all-reduce).

MPI is reached through ``mpi4py`` (an optional dependency: ``pip install -e
'.[distributed]'``), imported only when a collective runs or ``sg.distributed`` starts. A
process that ``mpiexec`` did not start is a world of one rank, where every collective is the
identity: a script runs unchanged on one process and on many.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from . import dtypes
from .primitive import Kind, Primitive
from .shapes import Shape, ShapeError

INSTALL = ("MPI collectives need mpi4py and an MPI: `python -m pip install -e "
           "'.[distributed]'` brings both (mpi4py and the mpich wheel); a system MPI works too")


def mpi() -> Any:
    """mpi4py's MPI module (MPI starts on first import), or an ImportError that says how to
    install it."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(INSTALL) from None
    return MPI


class CollectiveTimeout(RuntimeError):
    """A collective waited longer than ``sg.distributed.init(timeout=...)`` allows: another
    rank failed or is stuck. The job is ended on every rank (MPI_Abort) after this is said."""


# Seconds a collective may wait for the other ranks (None: forever); set by
# sg.distributed.init(timeout=...).
TIMEOUT: list[float | None] = [None]


def wait(request: Any, what: str) -> None:
    """Wait for a non-blocking MPI request, at most TIMEOUT seconds: past that, say which
    collective on which rank gave up, and end the job on every rank."""
    limit = TIMEOUT[0]
    if limit is None:
        request.Wait()
        return
    deadline = time.monotonic() + limit
    pause = 1e-6
    while not request.Test():
        if time.monotonic() > deadline:
            world = mpi().COMM_WORLD
            message = (f"rank {world.rank} of {world.size}: {what} waited over {limit:g} s for "
                       "the other ranks (one failed or is stuck); ending the job")
            print(message, file=sys.stderr, flush=True)
            world.Abort(1)
            raise CollectiveTimeout(message)
        time.sleep(pause)
        pause = min(pause * 2, 1e-3)


def _sendable(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x)


def allreduce_into(x: np.ndarray, out: np.ndarray, op: str, order: int = 0) -> np.ndarray:
    MPI = mpi()
    world = MPI.COMM_WORLD
    wait(world.Iallreduce(_sendable(x), out, op=MPI.SUM), f"allreduce of {x.shape}")
    if op == "mean":
        np.divide(out, world.size, out=out, casting="unsafe")
    return out


def _allreduce(x: np.ndarray, op: str, order: int = 0) -> np.ndarray:
    return allreduce_into(x, np.empty(np.shape(x), np.asarray(x).dtype), op)


def _allreduce_shape(x, op: str, order: int = 0) -> Shape:
    if op not in ("sum", "mean"):
        raise ValueError(f"allreduce: op must be 'sum' or 'mean', got {op!r}")
    return x.shape


def _numeric_dtype(x, **params) -> np.dtype:
    if x.dtype == dtypes.bool_:
        raise dtypes.DTypeError("collectives take numbers, not bool (cast to an integer)")
    if params.get("op") == "mean" and not dtypes.is_floating(x.dtype):
        raise dtypes.DTypeError(f"allreduce with op='mean' needs a floating point value, got "
                                f"{x.dtype.name} (use op='sum')")
    return x.dtype


def _allreduce_vjp(g, out, x, op, order=0):
    return g._apply(allreduce, g, op=op)


allreduce = Primitive(
    name="allreduce", kind=Kind.OPAQUE, kernel=_allreduce, shape_rule=_allreduce_shape,
    dtype_rule=_numeric_dtype, vjps=(_allreduce_vjp,), grad_name="AllreduceBackward",
    collective=True)


def _broadcast(x: np.ndarray, root: int, rank: int, order: int = 0) -> np.ndarray:
    world = mpi().COMM_WORLD
    buffer = np.array(x, copy=True, order="C")
    wait(world.Ibcast(buffer, root=root), f"broadcast of {buffer.shape} from rank {root}")
    return buffer


def _broadcast_shape(x, root: int, rank: int, order: int = 0) -> Shape:
    return x.shape


def _broadcast_vjp(g, out, x, root, rank, order=0):
    """Every rank's copy came from the root's: the root's input gets their cotangents'
    sum, the others' none."""
    total = g._apply(allreduce, g, op="sum")
    return total if rank == root else total * 0


broadcast = Primitive(
    name="broadcast", kind=Kind.OPAQUE, kernel=_broadcast, shape_rule=_broadcast_shape,
    dtype_rule=_numeric_dtype, vjps=(_broadcast_vjp,), grad_name="BroadcastBackward",
    collective=True)


def _allgather(x: np.ndarray, size: int, rank: int, order: int = 0) -> np.ndarray:
    world = mpi().COMM_WORLD
    if world.size != size:
        raise RuntimeError(f"allgather was built for {size} ranks but runs on {world.size}")
    x = _sendable(x)
    out = np.empty((size * x.shape[0], *x.shape[1:]), x.dtype)
    wait(world.Iallgather(x, out), f"allgather of {x.shape}")
    return out


def _allgather_shape(x, size: int, rank: int, order: int = 0) -> Shape:
    if x.ndim == 0:
        raise ShapeError("allgather joins the ranks' values along their first axis: give a "
                         "value with at least one dimension")
    rows = x.shape[0]
    return (None if rows is None else rows * size, *x.shape[1:])


def _allgather_vjp(g, out, x, size, rank, order=0):
    """This rank's rows of every rank's cotangent, summed."""
    total = g._apply(allreduce, g, op="sum")
    return total.reshape(size, -1, *x.shape[1:])[rank]


allgather = Primitive(
    name="allgather", kind=Kind.OPAQUE, kernel=_allgather, shape_rule=_allgather_shape,
    dtype_rule=_numeric_dtype, vjps=(_allgather_vjp,), grad_name="AllgatherBackward",
    collective=True)

PRIMITIVES = [allreduce, broadcast, allgather]
