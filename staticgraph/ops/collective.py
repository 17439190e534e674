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
    start = time.monotonic()
    deadline, pause = start + limit, 1e-6
    while not request.Test():
        now = time.monotonic()
        if now < start + 1e-4:  # spin first: most collectives finish within microseconds
            continue
        if now > deadline:
            world = mpi().COMM_WORLD
            message = (f"rank {world.rank} of {world.size}: {what} waited over {limit:g} s for "
                       "the other ranks (one failed or is stuck); ending the job")
            print(message, file=sys.stderr, flush=True)
            world.Abort(1)
            raise CollectiveTimeout(message)
        time.sleep(pause)
        pause = min(pause * 2, 5e-5)


def _sendable(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x)


def allreduce_into(x: np.ndarray, out: np.ndarray, op: str, order: int = 0,
                   bucket_bytes: int | None = None) -> np.ndarray:
    MPI = mpi()
    world = MPI.COMM_WORLD
    send = _sendable(x)  # (held until the wait: mpi4py does not keep buffers alive)
    wait(world.Iallreduce(send, out, op=MPI.SUM), f"allreduce of {x.shape}")
    if op == "mean":
        np.divide(out, world.size, out=out, casting="unsafe")
    return out


def _allreduce(x: np.ndarray, op: str, order: int = 0,
               bucket_bytes: int | None = None) -> np.ndarray:
    return allreduce_into(x, np.empty(np.shape(x), np.asarray(x).dtype), op)


def _allreduce_shape(x, op: str, order: int = 0, bucket_bytes: int | None = None) -> Shape:
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


def _allreduce_vjp(g, out, x, op, order=0, bucket_bytes=None):
    return g._apply(allreduce, g, op=op)


# ``bucket_bytes`` (DistributedOptimizer sets it on the gradients it averages) lets the
# compiler's bucketing pass (passes/bucketing.py) reduce this value in a bucket of others.
def _collective(name: str, kernel, shape_rule, vjp) -> Primitive:
    return Primitive(name=name, kind=Kind.OPAQUE, kernel=kernel, shape_rule=shape_rule,
                     dtype_rule=_numeric_dtype, vjps=(vjp,),
                     grad_name=f"{name.capitalize()}Backward", collective=True)


allreduce = _collective("allreduce", _allreduce, _allreduce_shape, _allreduce_vjp)


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


broadcast = _collective("broadcast", _broadcast, _broadcast_shape, _broadcast_vjp)


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


allgather = _collective("allgather", _allgather, _allgather_shape, _allgather_vjp)

# -- a bucket's all-reduce, split in two: the compiler's bucketing pass builds these ----------
# allreduce_start packs its values into one flat buffer and starts a non-blocking all-reduce
# on it; allreduce_wait, placed where the first value is read, completes it. What runs
# between the two overlaps the communication.

# The all-reduces in flight: the address of the buffer each reduces in place -> (request,
# buffer). Only the buffer travels from start to wait (the runtimes pass plain arrays: the
# numpy runtime's planned buffer, the interpreter's and OpenCL host steps' values), so its
# address is what both kernels see; the entry also keeps the buffer alive while MPI writes
# into it. Process state, as MPI's own requests are: each thread running a plan has its
# own buffers, so addresses never collide.
_IN_FLIGHT: dict[int, tuple[Any, np.ndarray]] = {}


def _address(x: np.ndarray) -> int:
    return x.__array_interface__["data"][0]


def allreduce_start_into(*values: np.ndarray, out: np.ndarray, order: int = 0) -> np.ndarray:
    """Pack ``values`` into ``out`` (flat, one after the other) and start summing it across
    the ranks in place (MPI_Iallreduce); ``allreduce_wait(out)`` completes it."""
    at = 0
    for v in values:
        out[at:at + np.size(v)].reshape(np.shape(v))[...] = v
        at += np.size(v)
    if not out.size:
        return out  # nothing to send (every rank agrees: the shapes are the same)
    stale = _IN_FLIGHT.pop(_address(out), None)
    if stale is not None:  # a run that failed between start and wait left it: finish it
        wait(stale[0], f"all-reduce of a bucket of {out.size} values, left by a failed run")
    MPI = mpi()
    request = MPI.COMM_WORLD.Iallreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    _IN_FLIGHT[_address(out)] = (request, out)
    return out


def _allreduce_start(*values: np.ndarray, order: int = 0) -> np.ndarray:
    out = np.empty(sum(np.size(v) for v in values), np.asarray(values[0]).dtype)
    return allreduce_start_into(*values, out=out)


def _allreduce_start_shape(*values, order: int = 0) -> Shape:
    if not values:
        raise ValueError("allreduce_start packs one or more values, got none")
    unknown = [v.shape for v in values if None in v.shape]
    if unknown:
        raise ShapeError(f"allreduce_start packs values of known sizes, got shapes {unknown}")
    return (sum(int(np.prod(v.shape, dtype=np.int64)) for v in values),)


def _allreduce_start_dtype(*values, order: int = 0) -> np.dtype:
    kinds = sorted({v.dtype.name for v in values})
    if len(kinds) > 1:
        raise dtypes.DTypeError(f"allreduce_start packs values of one dtype, got {kinds}")
    return _numeric_dtype(values[0])


def _allreduce_wait(flat: np.ndarray, op: str) -> np.ndarray:
    """The all-reduce ``allreduce_start`` began on ``flat``, completed (honouring
    ``sg.distributed.init(timeout=...)``); ``op="mean"`` divides by the ranks. Returns
    ``flat`` itself: the reduced values are in it."""
    if not flat.size:
        return flat
    entry = _IN_FLIGHT.pop(_address(flat), None)
    if entry is None:
        raise RuntimeError(f"allreduce_wait: no all-reduce is in flight on this buffer of "
                           f"{flat.size} values; it must be given what allreduce_start "
                           "returned, unchanged and once")
    wait(entry[0], f"all-reduce of a bucket of {flat.size} {flat.dtype.name} values")
    if op == "mean":
        np.divide(flat, mpi().COMM_WORLD.size, out=flat, casting="unsafe")
    return flat


def _allreduce_wait_shape(flat, op: str) -> Shape:
    _allreduce_shape(flat, op)
    if flat.ndim != 1:
        raise ShapeError(f"allreduce_wait takes allreduce_start's flat buffer, got shape "
                         f"{flat.shape}")
    return flat.shape


# No VJPs: only the compiler's pass builds these, after the gradients were built, and no API
# puts them in a graph a user differentiates.
allreduce_start = Primitive(
    name="allreduce_start", kind=Kind.OPAQUE, kernel=_allreduce_start,
    shape_rule=_allreduce_start_shape, dtype_rule=_allreduce_start_dtype, collective=True)
# Not ``collective``: MPI matches the calls that start collectives; a wait is local, and
# waits may run in any order on each rank.
allreduce_wait = Primitive(
    name="allreduce_wait", kind=Kind.OPAQUE, kernel=_allreduce_wait,
    shape_rule=_allreduce_wait_shape, dtype_rule=_numeric_dtype)

PRIMITIVES = [allreduce, broadcast, allgather, allreduce_start, allreduce_wait]
