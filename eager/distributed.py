"""Data-parallel training of eager modules on MPI: every rank runs the same model on its shard
of the batch and gradients are averaged across ranks before each update, so every rank takes
the step of the whole global batch (``import eager.distributed``; start the job with
``python -m staticgraph.distributed -n 4 script.py``).

Two ways, both moving gradients in a few large all-reduces (gradients of one dtype laid end to
end in a bucket, one collective per bucket) rather than one per parameter:

- ``allreduce_gradients(model)`` after ``backward()``: simple, no overlap.
- ``DistributedDataParallel(model)`` (torch's behaviour where it matters): a hook on every
  parameter puts its gradient in its bucket as backward computes it; a full bucket's
  all-reduce starts at once (non-blocking) while backward goes on. Buckets hold the
  parameters in reverse order, since backward reaches the last layers first.

A graph knows its whole backward pass before it runs; eager learns it as it goes, which is why
this needs hooks where the graph compiler needs a pass (docs/distributed.md, "Eager").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import staticgraph.distributed as dist
from staticgraph.ops import collective

from .grad_mode import is_grad_enabled, no_grad
from .nn.modules import Module
from .tensor import Tensor

__all__ = ["allreduce_gradients", "DistributedDataParallel", "assign_buckets"]

BUCKET_BYTES = 25 * 2**20  # torch's default bucket_cap_mb


def assign_buckets(tensors: Sequence[Tensor], bucket_bytes: int) -> list[list[int]]:
    """Indices of ``tensors`` grouped into buckets: taken in reverse order (backward reaches
    the last layers first), one dtype per bucket, a bucket closed once it holds
    ``bucket_bytes`` or more (so a tensor larger than that is a bucket of its own). Buckets
    come in the order they should fill: by their earliest tensor, latest first."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    filling: dict[np.dtype, tuple[list[int], list[int]]] = {}  # dtype -> (bucket, [bytes])
    buckets: list[list[int]] = []
    for i in reversed(range(len(tensors))):
        dtype = tensors[i].dtype
        if dtype not in filling:
            filling[dtype] = ([], [0])
            buckets.append(filling[dtype][0])
        bucket, held = filling[dtype]
        bucket.append(i)
        held[0] += tensors[i]._data.nbytes
        if held[0] >= bucket_bytes:
            del filling[dtype]
    return sorted(buckets, key=lambda bucket: -bucket[-1])


class _Bucket:
    """Tensors of one dtype laid end to end in one buffer, so one collective carries them."""

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        self.tensors = list(tensors)
        self.dtype = self.tensors[0].dtype
        self.ends = np.cumsum([0] + [t.numel() for t in self.tensors])
        self.buffer: np.ndarray | None = None
        self.request: Any = None
        self.ready = [False] * len(self.tensors)  # which tensors were put in

    def put(self, k: int, array: np.ndarray) -> None:
        if self.buffer is None:
            self.buffer = np.empty(self.ends[-1], self.dtype)
        self.buffer[self.ends[k]:self.ends[k + 1]] = array.reshape(-1)
        self.ready[k] = True

    def view(self, k: int) -> np.ndarray:
        return self.buffer[self.ends[k]:self.ends[k + 1]].reshape(self.tensors[k].shape)

    def start_allreduce(self) -> None:
        """Sum the buffer across ranks in place, without waiting (MPI_Iallreduce)."""
        MPI = collective.mpi()
        self.request = MPI.COMM_WORLD.Iallreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)

    def finish_allreduce(self, op: str) -> None:
        """Wait for the sum (at most ``init(timeout=)``), then make it a mean if asked."""
        collective.wait(self.request, f"allreduce of a gradient bucket of {self.ends[-1]} "
                                      f"{self.dtype} values")
        if op == "mean":
            np.divide(self.buffer, dist.size(), out=self.buffer)

    def reset(self) -> None:
        """Empty again, for the next use (a new buffer: views of this one stay valid)."""
        self.buffer, self.request, self.ready = None, None, [False] * len(self.tensors)

    def broadcast(self, root: int) -> None:
        """Overwrite every tensor with rank ``root``'s values (one broadcast)."""
        for k, t in enumerate(self.tensors):
            self.put(k, t._data)
        self.buffer = dist.broadcast(self.buffer, root)
        with no_grad():
            for k, t in enumerate(self.tensors):
                t.copy_(Tensor._make(self.view(k)))


def _broadcast(tensors: list[Tensor], root: int = 0) -> None:
    """Every rank's ``tensors`` set to rank ``root``'s, one broadcast per dtype."""
    for group in assign_buckets(tensors, 2**62):
        _Bucket([tensors[i] for i in group]).broadcast(root)


def _trainable(module_or_params: Module | Iterable[Tensor]) -> list[Tensor]:
    params = module_or_params.parameters() if isinstance(module_or_params, Module) \
        else module_or_params
    unique = {id(p): p for p in params if p.requires_grad}  # (a tensor's == is elementwise)
    return list(unique.values())


def allreduce_gradients(module_or_params: Module | Iterable[Tensor], op: str = "mean",
                        bucket_bytes: int = BUCKET_BYTES) -> int:
    """After ``backward()``: every parameter's ``.grad`` replaced by its mean (or sum) over
    the ranks, in one all-reduce per bucket (see ``assign_buckets``); returns how many.
    Every rank must pass the same parameters. A parameter without a gradient counts as zeros
    and gets the result too, so that the buckets match on every rank whichever parameters
    each rank's loss used."""
    if op not in ("mean", "sum"):
        raise ValueError(f"allreduce_gradients: op must be 'mean' or 'sum', got {op!r}")
    params = _trainable(module_or_params)
    buckets = [_Bucket([params[i] for i in group])
               for group in assign_buckets(params, bucket_bytes)]
    for bucket in buckets:  # all started before any is waited for
        for k, p in enumerate(bucket.tensors):
            bucket.put(k, np.zeros(p.shape, p.dtype) if p.grad is None else p.grad._data)
        bucket.start_allreduce()
    with no_grad():
        for bucket in buckets:
            bucket.finish_allreduce(op)
            for k, p in enumerate(bucket.tensors):
                result = Tensor._make(bucket.view(k))
                if p.grad is None:
                    p.grad = result
                else:
                    p.grad.copy_(result)  # the tensor the user holds keeps its identity
    return len(buckets)


class DistributedDataParallel(Module):
    """``module`` trained on every rank's shard as if on the whole batch (torch's DDP).

    On construction, every rank's parameters and buffers are set to rank 0's. ``forward``
    sets the buffers (batch norm's statistics) to rank 0's again, unless
    ``broadcast_buffers`` is false, and runs ``module``. In the ``backward()`` that follows,
    each parameter's hook (registered here) puts its gradient into its bucket, and a bucket
    whose gradients are all in starts its all-reduce at once, buckets in a fixed order on
    every rank (MPI matches collectives by the order they are called). When the last
    parameter's gradient is in, the hook waits for every bucket and divides by the number of
    ranks, so ``backward()`` returns with every ``.grad`` averaged.

    That wait is in the last hook because eager has no end-of-backward callback: it relies on
    eager adding gradients into ``.grad`` only after the whole sweep (eager/autograd.py),
    so what a hook returns (the averaged bucket's slice) is read after the wait. (A hook the
    user registers on a parameter after wrapping it sees that slice before it is averaged.)

    Every parameter that requires grad must get a gradient in each backward: if one did not,
    the average is never finished and the next ``forward`` raises, naming it (torch's
    ``find_unused_parameters`` is not provided; freeze such parameters with
    ``requires_grad_(False)``). ``backward(create_graph=True)`` is refused. A backward
    without a ``forward`` of this wrapper before it (calling ``module`` directly, or a second
    backward with ``retain_graph``) keeps its gradients local, as in torch.
    """

    def __init__(self, module: Module, bucket_bytes: int = BUCKET_BYTES,
                 broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an eager.nn.Module, got "
                            f"{type(module).__name__}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        _broadcast([*module.parameters(), *module.buffers()])
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        groups = assign_buckets([p for _, p in named], bucket_bytes)
        # The parameters' names per bucket, in the order their all-reduces start.
        self.buckets: list[list[str]] = [[named[i][0] for i in group] for group in groups]
        self.allreduces = 0  # all-reduces started so far (one per bucket per backward)
        self._buckets = [_Bucket([named[i][1] for i in group]) for group in groups]
        self._armed = False  # a forward ran: average the gradients of the next backward
        self._started = 0  # buckets whose all-reduce started in this backward
        for b, bucket in enumerate(self._buckets):
            for k, p in enumerate(bucket.tensors):
                p.register_hook(self._hook(b, k))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._check_finished()
        if self.broadcast_buffers:
            buffers = list(self.module.buffers())
            if buffers:
                _broadcast(buffers)
        self._armed = is_grad_enabled()
        return self.module(*args, **kwargs)

    def _hook(self, b: int, k: int):
        def gradient_ready(g: Tensor) -> Tensor | None:
            if not self._armed:
                return None
            if g.requires_grad:
                raise RuntimeError("DistributedDataParallel averages gradients outside "
                                   "autograd: backward(create_graph=True) through it is not "
                                   "supported")
            bucket = self._buckets[b]
            bucket.put(k, g._data)
            view = Tensor._make(bucket.view(k))  # holds the average once the bucket is done
            self._start_ready_buckets()
            return view
        return gradient_ready

    def _start_ready_buckets(self) -> None:
        """Start, in bucket order, every all-reduce whose bucket is full; after the last,
        wait for them all."""
        while self._started < len(self._buckets) and all(self._buckets[self._started].ready):
            self._buckets[self._started].start_allreduce()
            self._started += 1
            self.allreduces += 1
        if self._started == len(self._buckets):
            for bucket in self._buckets:
                bucket.finish_allreduce("mean")
                bucket.reset()
            self._started, self._armed = 0, False

    def _check_finished(self) -> None:
        """Refuse to go on after a backward that left some gradients unaveraged."""
        if not any(any(bucket.ready) for bucket in self._buckets):
            return
        names = {id(p): name for name, p in self.module.named_parameters()}
        unused = [names[id(p)] for bucket in self._buckets
                  for p, ready in zip(bucket.tensors, bucket.ready) if not ready]
        raise RuntimeError(
            "DistributedDataParallel: the last backward did not finish averaging the "
            f"gradients: these parameters got no gradient: {', '.join(unused)}. Every "
            "parameter that requires grad must be used in the loss on every rank; freeze "
            "the others with requires_grad_(False)")

    def extra_repr(self) -> str:
        return f"buckets={len(self.buckets)}"
