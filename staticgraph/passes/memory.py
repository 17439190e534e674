"""Memory planning over the linear schedule (MXNet's plan_memory, tinygrad's memory planner):
find when each value is last used, hand its buffer back to a free list then, and give each
new value the smallest free buffer that fits (by bytes; a buffer is viewed as any dtype).
A value may also take over a buffer in place: when its kernel allows it and the input dies
at that very kernel.

Never planned: feeds, Variables and constants (they belong to the caller or the session),
values that are fetched or escape through a view (the caller keeps them: they are allocated
fresh every run), and results of kernels that cannot write into a given buffer.

What a kernel may alias is the runtime's fact, not this pass's: the runtime passes its
``Aliasing`` (views, writing into a buffer, in-place), read from its table by primitive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..graph import SOURCES, GraphError, Node, Role
from ..program import Program

EXTERNAL, VIEW, BUFFER, FRESH, NONE = "external", "view", "buffer", "fresh", "none"


@dataclass
class MemoryPlan:
    storage: dict[Node, str]                    # one of the kinds above
    buffer_of: dict[Node, int]                  # BUFFER values -> buffer index
    base_of: dict[Node, Node]                   # VIEW values -> the value they alias
    buffer_bytes: list[int] = field(default_factory=list)
    in_place: list[tuple[str, str]] = field(default_factory=list)  # (value, input it overwrote)
    takes_over: dict[Node, Node] = field(default_factory=dict)  # fresh value -> fresh input
    reused: int = 0                             # values that got a buffer freed earlier
    peak_bytes: int = 0                         # buffers plus the largest set of live fresh values
    last_use: dict[Node, int] = field(default_factory=dict)
    reuse: bool = True                          # buffers are shared (else each its own)

    def describe(self) -> str:
        total = sum(self.buffer_bytes)
        return (f"{len(self.buffer_bytes)} buffers, {format_bytes(total)}, shared by "
                f"{sum(1 for s in self.storage.values() if s == BUFFER)} values "
                f"({self.reused} reused, {len(self.in_place)} in place); values allocated "
                f"every run peak at {format_bytes(self.peak_bytes - total)}")


def format_bytes(n: int) -> str:
    """Bytes as people read them: 96 B, 12.3 KB, 16.78 MB (not "0.00 MB")."""
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e3:.1f} KB" if n < 1e6 else f"{n / 1e6:.2f} MB"


class Aliasing(Protocol):
    """What a runtime's kernels may do with memory (see runtime/numpy_table.py).
    ``hands_over_fresh``: a value returned by the run may take over the memory of an input
    that dies where it is computed (the numpy runtime's arrays can; a device buffer that is
    read back, or a Variable's own buffer, cannot)."""

    hands_over_fresh: bool

    def views(self, node: Node) -> bool:
        """The OP node's kernel may return a view of its first input."""

    def writes_into(self, node: Node) -> bool:
        """The OP node's kernel can write into a buffer it is given."""

    def in_place_inputs(self, value: Node, producer: Node,
                        base_of: dict[Node, Node]) -> list[Node]:
        """Inputs of ``producer`` (an OP or FUSED node) whose buffer ``value`` may take over."""


def nbytes(node: Node) -> int:
    """0 for a shape the data decides (a boolean mask's selection): it cannot be planned."""
    if None in node.shape:
        return 0
    return int(np.prod(node.shape, dtype=np.int64)) * node.dtype.itemsize


def _storage_kind(node: Node, aliasing: Aliasing) -> str:
    if node.role in SOURCES:
        return EXTERNAL
    if node.role in (Role.GROUP, Role.FUSED, Role.CONTROL):
        return NONE
    if node.role is Role.ASSIGN:
        return FRESH  # it becomes the session's new value
    if node.role is Role.OUTPUT:  # written by its fused kernel; made by a loop's last trip
        return BUFFER if node.inputs[0].role is Role.FUSED else FRESH
    if aliasing.views(node):
        return VIEW
    return BUFFER if aliasing.writes_into(node) and None not in node.shape else FRESH


def no_reuse_bytes(graph: Program, aliasing: Aliasing) -> int:
    """Memory if every value computed had its own allocation (no planning, no fusion: pass
    the graph as built)."""
    return sum(nbytes(n) for n in graph.nodes if _storage_kind(n, aliasing) in (BUFFER, FRESH))


def plan_memory(graph: Program, aliasing: Aliasing, reuse: bool = True) -> MemoryPlan:
    order = graph.nodes
    storage = {n: _storage_kind(n, aliasing) for n in order}
    base_of = {n: _root(n, storage) for n in order if storage[n] == VIEW}
    # What the caller receives escapes the plan: it (or what it views) is allocated fresh.
    for out in graph.outputs:
        root = base_of.get(out, out)
        if storage.get(root) == BUFFER:
            storage[root] = FRESH
    # A Variable's new value computed this run is handed to the session as it is (no copy):
    # it too escapes, and the assign is only another name for it.
    for node in order:
        value = node.inputs[1] if node.role is Role.ASSIGN else None
        if value is not None and storage[value] in (BUFFER, FRESH) and value.dtype == node.dtype:
            storage[value], storage[node] = FRESH, VIEW
            base_of[node] = value
    last_use = {n: i for i, n in enumerate(order)}
    for i, n in enumerate(order):
        for x in n.inputs:
            last_use[x] = max(last_use[x], i)
            holder = base_of.get(x, x)
            last_use[holder] = max(last_use[holder], i)
    for out in [*graph.outputs, *(n for n in order if n.role is Role.ASSIGN)]:
        last_use[base_of.get(out, out)] = len(order)  # returned by the run
    produced_by: dict[Node, list[Node]] = {}
    for n in order:  # a fused kernel writes all its outputs when it runs
        produced_by.setdefault(n.inputs[0] if n.role is Role.OUTPUT else n, []).append(n)

    plan = MemoryPlan(storage, {}, base_of, last_use=last_use, reuse=reuse)
    if reuse and aliasing.hands_over_fresh:
        _fresh_in_place(order, produced_by, plan, aliasing)
    free: list[int] = []
    owners_dying: dict[int, list[Node]] = {}
    fresh_dying: dict[int, int] = {}
    fresh_live = fresh_peak = 0
    for i, producer in enumerate(order):
        for value in produced_by.get(producer, ()):
            kind = storage[value]
            size = nbytes(value) if kind in (BUFFER, FRESH) else 0
            if kind == BUFFER:
                plan.buffer_of[value] = _allocate(value, producer, i, size, free, plan, reuse,
                                                  aliasing)
                owners_dying.setdefault(last_use[value], []).append(value)
            elif kind == FRESH:
                taken = plan.takes_over.get(value)
                if taken is not None:  # its memory is the input's: it only lives longer
                    fresh_dying[i] -= size
                else:
                    fresh_live += size
                    fresh_peak = max(fresh_peak, fresh_live)
                fresh_dying[last_use[value]] = fresh_dying.get(last_use[value], 0) + size
        if reuse:
            free.extend(plan.buffer_of[v] for v in owners_dying.pop(i, ())
                        if last_use[v] == i)  # not handed on in place
        fresh_live -= fresh_dying.pop(i, 0)
    plan.peak_bytes = sum(plan.buffer_bytes) + fresh_peak
    return plan


def _fresh_in_place(order, produced_by, plan: MemoryPlan, aliasing: Aliasing) -> None:
    """A value that escapes (fetched, or a Variable's new value) is new memory every run; when
    its kernel may run in place over an input that dies there, that input is allocated fresh
    instead and handed on (an optimizer step writes the new weights over the gradient)."""
    storage, last_use = plan.storage, plan.last_use
    taken: set[Node] = set()
    for i, producer in enumerate(order):
        for value in produced_by.get(producer, ()):
            if storage[value] != FRESH or producer.role in (Role.ASSIGN, Role.CONTROL):
                continue
            for x in aliasing.in_place_inputs(value, producer, plan.base_of):
                if storage.get(x) in (BUFFER, FRESH) and last_use[x] == i and \
                        x not in plan.base_of and nbytes(x) == nbytes(value) and \
                        x.dtype == value.dtype and x not in taken:
                    storage[x] = FRESH
                    plan.takes_over[value] = x
                    taken.add(x)
                    plan.in_place.append((value.name, x.name))
                    break


def _root(node: Node, storage: dict[Node, str]) -> Node:
    while storage.get(node) == VIEW:
        node = node.inputs[0]
    return node


def _allocate(value: Node, producer: Node, i: int, size: int, free: list[int],
              plan: MemoryPlan, reuse: bool, aliasing: Aliasing) -> int:
    if not reuse:
        plan.buffer_bytes.append(size)
        return len(plan.buffer_bytes) - 1
    for x in aliasing.in_place_inputs(value, producer, plan.base_of):
        b = plan.buffer_of.get(x)
        if b is not None and plan.last_use[x] == i and plan.buffer_bytes[b] == size and \
                x.dtype == value.dtype:
            plan.in_place.append((value.name, x.name))
            plan.last_use[x] = -1  # its buffer now belongs to `value`
            return b
    fitting = [b for b in free if plan.buffer_bytes[b] >= size]
    if fitting:
        best = min(fitting, key=plan.buffer_bytes.__getitem__)
        free.remove(best)
        plan.reused += 1
        return best
    plan.buffer_bytes.append(size)
    return len(plan.buffer_bytes) - 1


def check_plan(graph: Program, plan: MemoryPlan) -> None:
    """The plan's invariants (``debug=True`` checks them): no two values alive at once share
    a buffer (a hand-over in place is the one exception: the new value starts where the old
    one ends), nothing the caller owns is planned, and nothing returned is a planned buffer
    (the next run would overwrite it)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    start = {n: order[n.inputs[0]] if n.role is Role.OUTPUT else order[n]
             for n in plan.buffer_of}
    handed = set(plan.in_place)
    by_buffer: dict[int, list[Node]] = {}
    for value, buffer in plan.buffer_of.items():
        by_buffer.setdefault(buffer, []).append(value)
    for values in by_buffer.values():
        values.sort(key=start.__getitem__)
        for earlier, later in zip(values, values[1:]):
            end = plan.last_use[earlier]
            if not (end < start[later] or end == -1 or (later.name, earlier.name) in handed):
                raise GraphError(f"memory plan: {earlier.name!r} (live to step {end}) and "
                                 f"{later.name!r} (from step {start[later]}) share a buffer")
    for node, kind in plan.storage.items():
        if (node.role in SOURCES) != (kind == EXTERNAL):
            raise GraphError(f"memory plan: {node.name!r} ({node.op}) is stored as {kind}")
    for out in [*graph.outputs, *(n for n in graph.nodes if n.role is Role.ASSIGN)]:
        root = plan.base_of.get(out, out)
        if plan.storage.get(root) == BUFFER:
            raise GraphError(f"memory plan: {out.name!r} is returned from a buffer the next "
                             "run reuses")
