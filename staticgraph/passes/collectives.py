"""Collectives in the order they were built. MPI matches collectives by the order each rank
calls them, and the schedule is the program's node order; passes on the ranks' graphs may
differ (rank 0's ``x * 1`` simplifies away, rank 1's ``x * 2`` does not) and so may the
order of the rest. This step, run on every compiled program, emits the collectives in their
``order`` (numbered as the graph was built, the same on every rank), each after what it
needs and otherwise keeping the schedule as it was."""

from __future__ import annotations

from ..graph import GraphError, Node, Role
from ..ops.autodiff import toposort
from ..program import Program
from .rewrite import copy_node


def _is_collective(node: Node) -> bool:
    return node.role is Role.OP and node.prim.collective


def order_collectives(graph: Program) -> Program:
    collectives = [n for n in graph.nodes if _is_collective(n)]
    ordered = sorted(collectives, key=lambda n: n.params["order"])
    if all(a is b for a, b in zip(ordered, collectives)):
        return graph
    position = {n: i for i, n in enumerate(graph.nodes)}
    schedule: list[Node] = []
    emitted: set[Node] = set()
    for collective in ordered:
        needed = toposort([collective], lambda n: () if n in emitted else n.inputs)
        late = [n for n in needed if _is_collective(n) and n not in emitted
                and n is not collective]
        if late:
            raise GraphError(f"collective {collective.name!r} (built at {collective.location}) "
                             f"needs {late[0].name!r}, which was built after it")
        fresh = sorted((n for n in needed if n not in emitted), key=position.__getitem__)
        schedule += fresh
        emitted.update(fresh)
    schedule += [n for n in graph.nodes if n not in emitted]
    new = Program()
    mapping: dict[Node, Node] = {}
    for node in schedule:
        mapping[node] = copy_node(new, node, [mapping[i] for i in node.inputs])
    new.outputs = [mapping[o] for o in graph.outputs]
    return new
