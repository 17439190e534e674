"""Dead-code elimination: keep only what the outputs need (updates included, since they
are outputs of the run)."""

from __future__ import annotations

from ..ops.autodiff import toposort
from ..program import Program
from .rewrite import copy_node


def eliminate_dead_code(graph: Program) -> Program:
    needed = set(toposort(graph.outputs, lambda n: n.inputs))
    new = Program()
    mapping = {}
    for node in graph.nodes:
        if node in needed:
            mapping[node] = copy_node(new, node, [mapping[i] for i in node.inputs])
    new.outputs = [mapping[o] for o in graph.outputs]
    return new
