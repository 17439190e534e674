"""Dead-code elimination: keep only what the outputs need (updates included, since they
are outputs of the run). A fused kernel that is kept keeps all of its OUTPUT nodes: it
writes every one of them when it runs; control flow keeps only those used (a loop records
its history only for a gradient that reads it)."""

from __future__ import annotations

from ..graph import Role
from ..ops.autodiff import toposort
from ..program import Program
from .rewrite import copy_node


def eliminate_dead_code(graph: Program) -> Program:
    needed = set(toposort(graph.outputs, lambda n: n.inputs))
    needed.update(n for n in graph.nodes if n.role is Role.OUTPUT and n.inputs[0] in needed
                  and n.inputs[0].role is Role.FUSED)
    new = Program()
    mapping = {}
    for node in graph.nodes:
        if node in needed:
            mapping[node] = copy_node(new, node, [mapping[i] for i in node.inputs])
    new.outputs = [mapping[o] for o in graph.outputs]
    return new
