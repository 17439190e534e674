"""Constant folding: a primitive whose inputs are all constants is evaluated now, with its
own numpy kernel, and becomes a constant. Results larger than ``MAX_ELEMENTS`` are left to
run time so folding never inflates a graph (a broadcast of a scalar stays a broadcast). So is
one whose kernel refuses its constants (an index out of bounds): the run then raises, naming
the node and the line that built it, as it would have without folding."""

from __future__ import annotations

import numpy as np

from ..graph import Node, Role
from ..program import Program
from .rewrite import new_constant, rewrite

MAX_ELEMENTS = 1 << 16


def fold_constants(graph: Program) -> Program:
    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        if node.role is not Role.OP or not inputs or node.prim.collective or \
                any(i.role is not Role.CONSTANT for i in inputs):
            return None  # (a collective talks to the other ranks: only when the graph runs)
        if None in node.shape or np.prod(node.shape, dtype=np.int64) > MAX_ELEMENTS:
            return None  # too big to keep as a constant, or a size only the data decides
        try:
            with np.errstate(all="ignore"):
                value = np.asarray(node.prim.kernel(*(i.value for i in inputs), **node.params))
        except Exception:  # noqa: BLE001 (any refusal is the run's to report)
            return None
        return new_constant(new, np.array(value, dtype=node.dtype), node)

    return rewrite(graph, rule)
