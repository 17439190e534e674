"""Memory planning over the linear schedule (MXNet's plan_memory, tinygrad's memory planner):
find when each value is last used, hand its buffer back to a free list then, and give each
new value the smallest free buffer that fits (by bytes; a buffer is viewed as any dtype).
A value may also take over a buffer in place: when its kernel allows it and the input dies
at that very kernel.

Never planned: feeds, Variables and constants (they belong to the caller or the session),
values that are fetched or escape through a view (the caller keeps them: they are allocated
fresh every run), and results of kernels that cannot write into a given buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph, Node

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

    def describe(self) -> str:
        total = sum(self.buffer_bytes)
        return (f"{len(self.buffer_bytes)} buffers, {total / 1e6:.2f} MB, shared by "
                f"{sum(1 for s in self.storage.values() if s == BUFFER)} values "
                f"({self.reused} reused, {len(self.in_place)} in place); values allocated "
                f"every run peak at {(self.peak_bytes - total) / 1e6:.2f} MB")


def nbytes(node: Node) -> int:
    """0 for a shape the data decides (a boolean mask's selection): it cannot be planned."""
    if None in node.shape:
        return 0
    return int(np.prod(node.shape, dtype=np.int64)) * node.dtype.itemsize


def is_view(node: Node) -> bool:
    """Kernels that return a view of their first input (no buffer of their own)."""
    if node.prim is None or node.op == "fused" or not node.prim.views:
        return False
    return node.op != "getitem" or len(node.inputs) == 1  # index arrays make a copy


def _storage_kind(node: Node) -> str:
    if node.op in ("placeholder", "variable", "constant"):
        return EXTERNAL
    if node.op in ("group", "fused"):
        return NONE
    if node.op == "assign":
        return FRESH  # it becomes the session's new value
    if node.op == "output":
        return BUFFER  # written by its fused kernel
    if is_view(node):
        return VIEW
    return BUFFER if node.prim.into is not None and None not in node.shape else FRESH


def no_reuse_bytes(graph: Graph) -> int:
    """Memory if every value computed had its own allocation (no planning, no fusion: pass
    the graph as built)."""
    return sum(nbytes(n) for n in graph.nodes if _storage_kind(n) in (BUFFER, FRESH))


def _elementwise_ufunc(into) -> bool:
    """A ufunc applied element by element may write over one of its operands (numpy reads
    each element before writing it); matmul (a gufunc) and two-step kernels may not."""
    return isinstance(into, np.ufunc) and into.signature is None


def _in_place_candidates(value: Node, producer: Node, base_of: dict[Node, Node]) -> list[Node]:
    """Inputs of ``producer`` whose buffer ``value`` may take over while being computed."""
    if producer.op != "fused":
        if not _elementwise_ufunc(producer.prim.into):
            return []
        return [x for x in producer.inputs if x.shape == value.shape]
    kernel = producer.prim
    last = kernel.members[-1]
    if kernel.outputs != [len(kernel.members) - 1] or not _elementwise_ufunc(last.prim.into):
        return []
    # Chunk by chunk, every member reads a row range of the input before the last member
    # writes the same range: safe only if every read of it is row by row, and it does not
    # come in a second time through a view (whose rows are other rows: x.T).
    roots = [base_of.get(x, x) for x in producer.inputs]
    candidates = []
    for k, x in enumerate(producer.inputs):
        reads = [m for m in kernel.members for tag, i in m.args if tag == "in" and i == k]
        # (nodes compare elementwise: count them by identity)
        if x.shape == value.shape and sum(r is x for r in roots) == 1 and all(
                m.reads_rows(kernel.input_shapes[k], kernel.rows) for m in reads):
            candidates.append(x)
    return candidates


def plan_memory(graph: Graph, reuse: bool = True) -> MemoryPlan:
    order = graph.nodes
    storage = {n: _storage_kind(n) for n in order}
    base_of = {n: _root(n, storage) for n in order if storage[n] == VIEW}
    # What the caller receives escapes the plan: it (or what it views) is allocated fresh.
    for out in graph.outputs:
        root = base_of.get(out, out)
        if storage.get(root) == BUFFER:
            storage[root] = FRESH
    # A Variable's new value computed this run is handed to the session as it is (no copy):
    # it too escapes, and the assign is only another name for it.
    for node in order:
        value = node.inputs[1] if node.op == "assign" else None
        if value is not None and storage[value] in (BUFFER, FRESH) and value.dtype == node.dtype:
            storage[value], storage[node] = FRESH, VIEW
            base_of[node] = value
    last_use = {n: i for i, n in enumerate(order)}
    for i, n in enumerate(order):
        for x in n.inputs:
            last_use[x] = max(last_use[x], i)
            holder = base_of.get(x, x)
            last_use[holder] = max(last_use[holder], i)
    for out in [*graph.outputs, *(n for n in order if n.op == "assign")]:
        last_use[base_of.get(out, out)] = len(order)  # returned by the run
    produced_by: dict[Node, list[Node]] = {}
    for n in order:  # a fused kernel writes all its outputs when it runs
        produced_by.setdefault(n.inputs[0] if n.op == "output" else n, []).append(n)

    plan = MemoryPlan(storage, {}, base_of, last_use=last_use)
    if reuse:
        _fresh_in_place(order, produced_by, plan)
    free: list[int] = []
    owners_dying: dict[int, list[Node]] = {}
    fresh_dying: dict[int, int] = {}
    fresh_live = fresh_peak = 0
    for i, producer in enumerate(order):
        for value in produced_by.get(producer, ()):
            kind = storage[value]
            size = nbytes(value) if kind in (BUFFER, FRESH) else 0
            if kind == BUFFER:
                plan.buffer_of[value] = _allocate(value, producer, i, size, free, plan, reuse)
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


def _fresh_in_place(order, produced_by, plan: MemoryPlan) -> None:
    """A value that escapes (fetched, or a Variable's new value) is new memory every run; when
    its kernel may run in place over an input that dies there, that input is allocated fresh
    instead and handed on (an optimizer step writes the new weights over the gradient)."""
    storage, last_use = plan.storage, plan.last_use
    taken: set[Node] = set()
    for i, producer in enumerate(order):
        for value in produced_by.get(producer, ()):
            if storage[value] != FRESH or producer.op == "assign":
                continue
            for x in _in_place_candidates(value, producer, plan.base_of):
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
              plan: MemoryPlan, reuse: bool) -> int:
    if not reuse:
        plan.buffer_bytes.append(size)
        return len(plan.buffer_bytes) - 1
    for x in _in_place_candidates(value, producer, plan.base_of):
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
