"""Folding per-channel affine maps into the op before them: batch normalization in an
inference graph, x * scale + shift per channel, becomes part of the preceding convolution's
weights and bias (a small computation on the weights instead of a pass over every
activation). Reads the primitives' ``channel_affine`` and ``absorb_channel_affine`` fields;
a value that something else reads too (a gradient, another output) is left as it is."""

from __future__ import annotations

from collections import Counter

from ..graph import Node, Role
from ..program import Program
from .rewrite import origin_of, rewrite


def fold_channel_affine(graph: Program) -> Program:
    users = Counter(i for n in graph.nodes for i in n.inputs)
    users.update(graph.outputs)

    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        if node.role is not Role.OP or node.prim.channel_affine is None:
            return None
        before = node.inputs[0]
        if before.role is not Role.OP or before.prim.absorb_channel_affine is None or \
                users[before] != 1:
            return None
        producer = inputs[0]
        with new.building_for(node.location, origin_of(node)):
            affine = node.prim.channel_affine(*inputs, **node.params)
            if affine is None:
                return None
            folded, params = producer.prim.absorb_channel_affine(*affine, *producer.inputs,
                                                                 **producer.params)
            return folded[0]._apply(producer.prim, *folded, **params)

    return rewrite(graph, rule)
