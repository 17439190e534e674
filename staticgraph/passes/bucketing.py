"""Gradient bucketing (Horovod's tensor fusion, torch DDP's buckets): the all-reduces of
gradients become a few non-blocking all-reduces of contiguous buffers, each started as soon
as its gradients exist and waited for where an update first reads one of them, so the
communication overlaps the rest of the backward pass.

Which all-reduces: those a ``DistributedOptimizer`` built (they carry ``bucket_bytes``), of
known shapes. A bucket holds consecutive ones in build ``order`` (no other collective
between them), of one op, dtype and stage (a gradient computed from another reduced
gradient is a later stage: it cannot share that gradient's bucket), at most
``bucket_bytes`` of them (a larger gradient is a bucket of its own). MPI matches collectives
by the order each rank calls them, so buckets and the order of their starts are decided from
what is the same on every rank (build orders, shapes, dtypes), never from this rank's
schedule, which passes may have made differently. Buckets are filled from the last-built
gradient back, as DDP does: backpropagation reaches the last layer's gradients first.

The program's node order is its schedule, and this pass makes it: first every node that
reads no reduced gradient, each bucket's start right after its last gradient; then each
bucket's wait, in the order they started, each followed by what reads its values. Then the
starts are put in MPI order (``order_collectives``): each start's gradients are computed
before the next bucket's, so it starts right after its last gradient, or right after the
start before it where its gradients were complete earlier. It runs after "fuse", which
re-derives the order from the outputs (a depth-first walk) and would undo it.
``describe_buckets`` says what it did (``Compiled.explain``).
"""

from __future__ import annotations

from ..graph import Node, Role
from ..ops import P
from ..program import Program
from .collectives import order_collectives
from .memory import format_bytes, nbytes
from .rewrite import copy_node, new_node

Bucket = tuple[list[Node], int]  # its all-reduces, and the order its start gets


def _bucketable(node: Node) -> bool:
    return node.role is Role.OP and node.prim is P.allreduce and \
        node.params.get("bucket_bytes") is not None and None not in node.shape


def _stages(graph: Program) -> dict[Node, int]:
    """How many bucketable all-reduces lie on the longest path into each node."""
    stage: dict[Node, int] = {}
    for node in graph.nodes:
        stage[node] = max((stage[x] + _bucketable(x) for x in node.inputs), default=0)
    return stage


def _buckets(graph: Program) -> list[Bucket]:
    """The buckets, in the order their all-reduces start on every rank."""
    stage = _stages(graph)
    collectives = sorted((n for n in graph.nodes if n.role is Role.OP and n.prim.collective),
                         key=lambda n: n.params["order"])

    def key(n: Node) -> tuple:
        return n.params["op"], n.dtype, n.params["bucket_bytes"], stage[n]

    buckets: list[Bucket] = []
    run: list[Node] = []
    for node in [*collectives, None]:
        if run and (node is None or not _bucketable(node) or key(node) != key(run[-1])):
            buckets += _split(run)
            run = []
        if node is not None and _bucketable(node):
            run.append(node)
    return buckets


def _split(run: list[Node]) -> list[Bucket]:
    """Greedy from the last built; the starts take the run's orders, first bucket first
    (no other collective has an order inside the run's range)."""
    limit = run[0].params["bucket_bytes"]
    groups: list[list[Node]] = [[]]
    size = 0
    for node in reversed(run):
        if groups[-1] and size + nbytes(node) > limit:
            groups.append([])
            size = 0
        groups[-1].append(node)
        size += nbytes(node)
    return list(zip(groups, sorted(n.params["order"] for n in run)))


def bucket_allreduces(graph: Program) -> Program:
    buckets = _buckets(graph)
    if not buckets:
        return graph
    position = {n: float(i) for i, n in enumerate(graph.nodes)}
    bucket_of = {m: j for j, (members, _) in enumerate(buckets) for m in members}
    # Each step's place: (the last bucket it waits for, -1 for none; position). Old nodes keep
    # theirs; a start goes right after its last gradient, a wait right before its values.
    waits_for: dict[Node, int] = {}
    for node in graph.nodes:
        waits_for[node] = max((bucket_of[x] if x in bucket_of else waits_for[x]
                               for x in node.inputs), default=-1)
    steps: list[tuple[int, float, int, object]] = []
    for node in graph.nodes:
        if node not in bucket_of:
            steps.append((waits_for[node], position[node], 0, node))
    for j, (members, _) in enumerate(buckets):
        gradients = [m.inputs[0] for m in members]
        steps.append((max(waits_for[g] for g in gradients),
                      max(position[g] for g in gradients) + 0.5, j, ("start", j)))
        steps.append((j, min(position[m] for m in members) - 0.5, j, ("wait", j)))
        steps += [(j, position[m], 0, m) for m in members]
    steps.sort(key=lambda s: s[:3])
    return order_collectives(_built(graph, buckets, [s[3] for s in steps]))


def _built(graph: Program, buckets: list[Bucket], schedule: list) -> Program:
    """The program with its buckets, its nodes in ``schedule``'s order: each member becomes
    a reshaped slice of its bucket's reduced flat buffer (views: no copy)."""
    slot: dict[Node, tuple[int, int]] = {}  # member -> (bucket, offset in its flat buffer)
    for j, (members, _) in enumerate(buckets):
        at = 0
        for m in members:
            slot[m] = (j, at)
            at += _size(m)
    new = Program()
    mapping: dict[Node, Node] = {}
    made: dict[tuple[str, int], Node] = {}
    for step in schedule:
        if isinstance(step, tuple):
            kind, j = step
            members, order = buckets[j]
            made[step] = (new_node(new, P.allreduce_start,
                                   [mapping[m.inputs[0]] for m in members], members[0],
                                   order=order) if kind == "start" else
                          new_node(new, P.allreduce_wait, [made["start", j]], members[0],
                                   op=members[0].params["op"]))
        elif step in slot:
            j, at = slot[step]
            piece = new_node(new, P.getitem, [made["wait", j]], step,
                             spec=(("slice", at, at + _size(step), None),))
            mapping[step] = copy_node(new, step, [piece], prim=P.reshape,
                                      params={"shape": step.shape})
        else:
            mapping[step] = copy_node(new, step, [mapping[x] for x in step.inputs])
    new.outputs = [mapping[o] for o in graph.outputs]
    return new


def _size(node: Node) -> int:
    return nbytes(node) // node.dtype.itemsize


def describe_buckets(graph: Program) -> list[str]:
    """Each bucket of ``graph``'s schedule: its gradients and bytes, the step its all-reduce
    starts after, the step its wait comes before (the first to read a value of it), and how
    many steps run in between while it is in flight."""
    starts = [n for n in graph.nodes if n.prim is P.allreduce_start]
    if not starts:
        return []
    position = {n: i for i, n in enumerate(graph.nodes)}
    readers: dict[Node, list[Node]] = {}
    for node in graph.nodes:
        for x in node.inputs:
            readers.setdefault(x, []).append(node)
    blocking = sum(n.prim is P.allreduce for n in graph.nodes)
    lines = [f"all-reduces: {len(starts)} buckets started without blocking, {blocking} "
             "blocking"]
    for k, start in enumerate(starts, 1):
        (wait,) = readers[start]
        pieces = {wait, *readers.get(wait, ())}  # the wait and its slices, and their reshapes
        pieces.update(r for p in list(pieces - {wait}) for r in readers.get(p, ())
                      if r.prim is P.reshape)
        first = min((r for p in pieces for r in readers.get(p, ()) if r not in pieces),
                    key=position.__getitem__, default=None)
        before = "the run's end" if first is None else f"{first.name!r} (step {position[first]})"
        between = [n for n in graph.nodes[position[start] + 1:position[wait]]
                   if n.role in (Role.OP, Role.FUSED, Role.CONTROL)]
        values = ", ".join(f"{g.name} {g.shape}" for g in start.inputs)
        lines.append(f"  bucket {k} (collective {start.params['order']}), "
                     f"{format_bytes(nbytes(start))}: {values}")
        lines.append(f"    starts after {graph.nodes[position[start] - 1].name!r} "
                     f"(step {position[start] - 1}), waits before {before}; "
                     f"{len(between)} steps run while it is in flight")
    return lines
