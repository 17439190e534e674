"""How passes build graphs: every pass returns a new Graph, copying the nodes it keeps
(with their names, the user's locations and the user's node they stand for) and adding the
ones it makes. A Program declares ``outputs``: the values its run must produce."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..graph import Node, Role
from ..ops import Primitive
from ..program import Program, origin_of


def copy_node(graph: Program, node: Node, inputs: Sequence[Node], **changes) -> Node:
    """``node`` rebuilt in ``graph`` on ``inputs``; ``changes`` override its fields."""
    fields = dict(role=node.role, prim=node.prim, params=node.params, shape=node.shape,
                  dtype=node.dtype, value=node.value, trainable=node.trainable,
                  location=node.location, origin=origin_of(node), fused=node.fused,
                  control=node.control)
    fields.update(changes)
    return graph.add(Node(graph, inputs=tuple(inputs), name=graph.unique_name(node.name),
                          **fields))


def new_node(graph: Program, prim: Primitive, inputs: Sequence[Node], like: Node,
             **params) -> Node:
    """A node a pass creates, standing where ``like`` stood in the user's program."""
    return graph.add(Node(graph, Role.OP, tuple(inputs), params,
                          prim.shape_rule(*inputs, **params), prim.dtype_rule(*inputs, **params),
                          graph.unique_name(prim.name), prim, location=like.location,
                          origin=origin_of(like)))


def new_constant(graph: Program, value, like: Node) -> Node:
    value.flags.writeable = False
    return graph.add(Node(graph, Role.CONSTANT, (), {}, value.shape, value.dtype,
                          graph.unique_name("constant"), value=value,
                          location=like.location, origin=origin_of(like)))


Rule = Callable[[Node, tuple[Node, ...], Program], "Node | None"]


def rewrite(graph: Program, rule: Rule) -> Program:
    """Copy ``graph`` in order; ``rule(node, new_inputs, new_graph)`` may return a node of
    the new graph to stand for ``node`` instead of a plain copy."""
    new = Program()
    mapping: dict[Node, Node] = {}
    for node in graph.nodes:
        inputs = tuple(mapping[i] for i in node.inputs)
        replacement = rule(node, inputs, new)
        mapping[node] = replacement if replacement is not None else copy_node(new, node, inputs)
    new.outputs = [mapping[o] for o in graph.outputs]
    return new
