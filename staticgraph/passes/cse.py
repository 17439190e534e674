"""Common-subexpression elimination: two nodes with the same op, params and inputs (or two
equal constants) are one value. Variables, placeholders and updates are never merged."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import Node, Role
from ..program import Program
from .rewrite import copy_node, rewrite


def _key(node: Node, inputs: tuple[Node, ...]) -> Any:
    if node.role is Role.CONSTANT:
        return ("constant", node.dtype.str, node.shape, node.value.tobytes())
    if node.role is not Role.OP:
        return None  # placeholders, variables, updates and fused kernels are each their own
    return (node.prim, tuple(map(id, inputs)), _hashable(node.params))


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.dtype):
        return value.str
    return value


def eliminate_common_subexpressions(graph: Program) -> Program:
    seen: dict[Any, Node] = {}

    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        key = _key(node, inputs)
        if key is None:
            return None
        if key not in seen:
            seen[key] = copy_node(new, node, inputs)
        return seen[key]

    return rewrite(graph, rule)
