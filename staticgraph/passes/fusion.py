"""Elementwise fusion: groups of elementwise, broadcast and reduce nodes become one kernel
that the numpy runtime runs over a few rows at a time, so intermediates stay in cache.

The model is rows: every member's leading axis is the same N, and a chunk of rows can be
computed from the same chunk of its inputs. That admits elementwise chains and trees with
several outputs, and reductions over the other axes (softmax, layer_norm, cross_entropy's
per-row terms all become one kernel). What breaks a fusion, and why:

- a movement or opaque op (reshape, transpose, matmul, gather): it re-indexes or mixes
  rows, so a chunk's rows no longer come from the same rows of the input;
- an enlarging broadcast: a value without the N rows (a bias of shape (C,)) is read whole
  by the kernel, never computed in it, or each chunk would compute it again;
- a reduction over the rows themselves (sum over the batch): it may close a group as a sink
  that accumulates chunk by chunk, but nothing in the group may read its result, which is
  only complete after the last chunk;
- a cycle: a node joins a group only if none of the group's other inputs depends on the
  group (it would have to run both before and after the kernel); and a last check over the
  graph with every group contracted to one node dissolves any group on a cycle between
  groups (two kernels feeding each other).

A node with several consumers stays fusible: its value is simply also an output.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..graph import Node, Role
from ..ops import Kind
from ..ops.autodiff import toposort
from ..program import FusedKernel, Member, Program
from .rewrite import copy_node, origin_of

_SEARCH_BUDGET = 2000  # nodes a cycle check may visit before it gives up (and refuses)


class _Group:
    def __init__(self, node: Node, index: int) -> None:
        self.rows = _rows(node)
        self.members: list[Node] = [node]
        self.first = self.last = index  # topological indices of the earliest and latest


def _is_reduction(node: Node) -> bool:
    return node.role is Role.OP and node.prim.reduction is not None


def _fusible(node: Node) -> bool:
    """By the primitive's kind: elementwise and broadcast ops, and reductions that say what
    they compute (``Primitive.reduction``), over values with a leading axis of known size.
    Movement and opaque ops (and argmax, whose result is no monoid) are boundaries."""
    if node.role is not Role.OP:
        return False
    kind = node.prim.kind
    if kind in (Kind.ELEMENTWISE, Kind.BROADCAST):
        rows_of = node
    elif kind is Kind.REDUCE and node.prim.reduction is not None:
        rows_of = node.inputs[0]
    else:
        return False
    # Every size known: a value whose size the data decides (a mask's selection) is a boundary
    # (no rows: no chunk would run, and a reduction over the rows would stay unwritten)
    return rows_of.ndim >= 1 and None not in rows_of.shape and None not in node.shape \
        and rows_of.shape[0] > 0


def _rows(node: Node) -> int:
    return node.inputs[0].shape[0] if _is_reduction(node) else node.shape[0]


def _row_operands(node: Node) -> list[Node]:
    """The operands whose rows line up with the node's rows (they may share its group)."""
    if _is_reduction(node):
        return [node.inputs[0]]
    return [x for x in node.inputs if x.ndim == node.ndim]


def _is_sink(node: Node) -> bool:
    """It reduces over the rows: complete only after the last chunk."""
    return _is_reduction(node) and 0 in node.params["axes"]


def _depends_on(start: list[Node], members: set[Node], first: int, index: dict[Node, int],
                group_of: dict[Node, _Group]) -> bool:
    """Whether any of ``start`` depends on a member, counting each other group as the one
    kernel it will become (depending on one of its members means depending on all of its
    inputs: two groups feeding each other would be a cycle). Nothing that runs before
    ``first`` can depend on a member."""
    stack, seen = list(start), set()
    while stack:
        node = stack.pop()
        if node in members:
            return True
        group = group_of.get(node)
        unit = group if group is not None else node
        if id(unit) in seen:
            continue
        seen.add(id(unit))
        if len(seen) > _SEARCH_BUDGET:
            return True  # too far to tell cheaply: assume it does
        if group is None:
            if index[node] >= first:
                stack.extend(node.inputs)
        elif group.last >= first:
            stack.extend(x for m in group.members for x in m.inputs)
    return False


def _rows_line_up(node: Node, choice: list[_Group], members: set[Node]) -> bool:
    """Inside a group, every value a member reads from another member is row-aligned with
    it, and no member reads a sink (complete only after the last chunk). Each group already
    holds this; what is new is the node's edges, and edges between groups being merged."""
    readers = [node] if len(choice) == 1 else members
    return all(any(x is r for r in _row_operands(m)) and not _is_sink(x)
               for m in readers for x in m.inputs if x in members)


def _group_nodes(graph: Program) -> dict[Node, _Group]:
    index = {n: i for i, n in enumerate(graph.nodes)}
    group_of: dict[Node, _Group] = {}
    for node in graph.nodes:
        if not _fusible(node):
            continue
        rows = _rows(node)
        candidates = []
        for x in _row_operands(node):
            g = group_of.get(x)
            if g is not None and g.rows == rows and not _is_sink(x) and g not in candidates:
                candidates.append(g)
        merged = _join(node, candidates, group_of, index)
        for member in merged.members:
            group_of[member] = merged
    return group_of


def _join(node: Node, candidates: list[_Group], group_of: dict[Node, _Group],
          index: dict[Node, int]) -> _Group:
    """Put ``node`` into the union of its operands' groups if that makes no cycle, else into
    the first one that allows it, else into a group of its own."""
    for choice in ([candidates] if len(candidates) > 1 else []) + [[g] for g in candidates]:
        members = {m for g in choice for m in g.members} | {node}
        first = min(g.first for g in choice)
        outside = [x for m in members for x in m.inputs if x not in members and x.inputs]
        if _rows_line_up(node, choice, members) and \
                not _depends_on(outside, members, first, index, group_of):
            target = choice[0]
            for g in choice[1:]:
                target.members.extend(g.members)
            target.members.append(node)
            target.members.sort(key=index.__getitem__)
            target.first, target.last = min(first, index[node]), index[node]
            return target
    return _Group(node, index[node])


def _without_cycles(graph: Program, groups: list[_Group]) -> list[_Group]:
    """The grouping checks above look only so far; this makes sure: with every group
    contracted to one kernel, the graph must stay acyclic. A group on a cycle is dissolved
    (its nodes run as separate kernels) until none is left."""
    while True:
        unit_of = {m: g for g in groups for m in g.members}
        contracted = nx.DiGraph()
        for node in graph.nodes:
            for x in node.inputs:
                a, b = id(unit_of.get(x, x)), id(unit_of.get(node, node))
                if a != b:
                    contracted.add_edge(a, b)
        try:
            cycle = nx.find_cycle(contracted)
        except nx.NetworkXNoCycle:
            return groups
        on_cycle = {u for edge in cycle for u in edge[:2]}
        victim = max((g for g in groups if id(g) in on_cycle), key=lambda g: g.first)
        groups = [g for g in groups if g is not victim]


def fuse(graph: Program) -> Program:
    group_of = _group_nodes(graph)
    candidates = list({id(g): g for g in group_of.values() if len(g.members) > 1}.values())
    groups = {id(g): g for g in _without_cycles(graph, candidates)}
    unit_of = {m: g for g in groups.values() for m in g.members}
    consumers: dict[Node, list[Node]] = {}
    for node in graph.nodes:
        for x in node.inputs:
            consumers.setdefault(x, []).append(node)
    outputs = set(graph.outputs)  # (sets and dicts: nodes hash by identity)

    def unit(node: Node):
        return unit_of.get(node, node)

    def parents(u) -> list:
        if isinstance(u, _Group):
            inside = set(u.members)
            return [unit(x) for m in u.members for x in m.inputs if x not in inside]
        return [unit(x) for x in u.inputs]

    new = Program()
    mapping: dict[Node, Node] = {}
    # An earlier fuse's kernels keep every output they write (kept kernels have all of theirs)
    roots = [*graph.outputs, *(n for n in graph.nodes if n.role is Role.OUTPUT)]
    for u in toposort([unit(o) for o in roots], parents):
        if isinstance(u, _Group):
            _emit_group(new, u, mapping, consumers, outputs)
        else:
            mapping[u] = copy_node(new, u, [mapping[x] for x in u.inputs])
    new.outputs = [mapping[o] for o in graph.outputs]
    return new


def _emit_group(new: Program, group: _Group, mapping: dict[Node, Node],
                consumers: dict[Node, list[Node]], outputs: set[Node]) -> None:
    inside = {m: j for j, m in enumerate(group.members)}
    position: dict[Node, int] = {}  # the kernel's inputs (nodes compare elementwise: no `in`)
    members = []
    for m in group.members:
        args = []
        for x in m.inputs:
            if x in inside:
                args.append(("m", inside[x]))
            else:
                args.append(("in", position.setdefault(x, len(position))))
        members.append(Member(m.prim, tuple(args), m.params, m.shape, m.dtype, m.name))
    leaving = [j for j, m in enumerate(group.members)
               if m in outputs or _is_sink(m) or
               any(c not in inside for c in consumers.get(m, ()))]
    inputs = list(position)
    name = new.unique_name("fused")
    fused = FusedKernel(members, [x.shape for x in inputs], [x.dtype for x in inputs], leaving,
                        group.rows, name)
    last = group.members[-1]
    node = new.add(Node(new, Role.FUSED, tuple(mapping[x] for x in inputs), {}, (),
                        np.dtype(bool), name, location=last.location, origin=origin_of(last),
                        fused=fused))
    for k, j in enumerate(leaving):
        m = group.members[j]
        mapping[m] = copy_node(new, m, (node,), role=Role.OUTPUT, prim=None,
                               params={"index": k})
