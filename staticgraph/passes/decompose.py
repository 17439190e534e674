"""Decomposition: a composite primitive (softmax, layer_norm, the losses...) becomes the
simpler primitives its ``decomposition`` builds, so that fusion sees elementwise ops and
reductions. Runs first: gradients were built on the composite (its own VJP rules), and every
later pass sees only simple primitives."""

from __future__ import annotations

from ..graph import Node, Role
from ..program import Program
from .rewrite import origin_of, rewrite


def decompose(graph: Program) -> Program:
    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        if node.role is not Role.OP or node.prim.decomposition is None:
            return None
        with new.building_for(node.location, origin_of(node)):
            return node.prim.decomposition(*inputs, **node.params)

    return rewrite(graph, rule)
