"""Algebraic simplification: rewrites that give exactly the same values, applied as nodes are
copied (so a chain like neg(neg(neg x)) collapses in one sweep).

Not rewritten, on purpose: ``x - x -> 0`` for floats (inf - inf and nan - nan are nan),
``x + 0 -> x`` (-0.0 + 0.0 is +0.0) and ``exp(log x) -> x`` (log is nan for x < 0, and
exp(log x) differs from x in the last bit).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph import Node, Role
from ..ops import Primitive
from ..ops.primitives import P
from ..ops.shapes import sum_to_axes
from ..program import Program
from .rewrite import Rule, new_constant, new_node, rewrite


def _is_constant(node: Node, value: float) -> bool:
    return node.role is Role.CONSTANT and node.value.size > 0 and \
        bool(np.all(node.value == value))


def _passes_through(node: Node, x: Node) -> bool:
    """Replacing ``node`` by ``x`` keeps the shape and dtype of the value."""
    return x.shape == node.shape and x.dtype == node.dtype


def _input_itself(node, inputs, new):
    """stop_gradient is the identity once gradients are built."""
    return inputs[0]


def _same_value(node, inputs, new):
    """A reshape, broadcast, cast, squeeze... whose result has its input's shape and dtype."""
    return inputs[0] if _passes_through(node, inputs[0]) else None


def _identity_permutation(node, inputs, new):
    return inputs[0] if node.params["perm"] == tuple(range(inputs[0].ndim)) else None


def _double_negation(node, inputs, new):
    return inputs[0].inputs[0] if inputs[0].prim is P.neg else None


_RESHAPES = (P.reshape, P.reshape_as)


def _reshape_chain(node, inputs, new):
    """reshape(reshape x) is one reshape."""
    x = inputs[0]
    return new_node(new, P.reshape, [x.inputs[0]], node, shape=node.shape) \
        if x.prim in _RESHAPES else None


def _transpose_chain(node, inputs, new):
    """transpose(transpose x) is one transpose (or none)."""
    x = inputs[0]
    if x.prim is not P.transpose:
        return None
    inner, outer = x.params["perm"], node.params["perm"]
    perm = tuple(inner[p] for p in outer)
    source = x.inputs[0]
    if perm == tuple(range(len(perm))):
        return source
    return new_node(new, P.transpose, [source], node, perm=perm)


def _is_zero(node: Node, negative: bool) -> bool:
    return _is_constant(node, 0) and bool(np.all(np.signbit(node.value) == negative))


def _neutral(right: Callable[[Node], bool], left: Callable[[Node], bool] | None = None) -> Rule:
    """x op c -> x (and c op x -> x) where c is neutral and does not broadcast x larger."""
    def rule(node, inputs, new):
        a, b = inputs
        if right(b) and _passes_through(node, a):
            return a
        if left is not None and left(a) and _passes_through(node, b):
            return b
        return None
    return rule


def _one(c: Node) -> bool:
    return _is_constant(c, 1)


def _minus_zero(c: Node) -> bool:  # x + (-0.0) is exactly x; x + 0.0 is not (-0.0 + 0.0)
    return _is_zero(c, negative=True)


def _plus_zero(c: Node) -> bool:  # x - 0.0 is exactly x
    return _is_zero(c, negative=False)


def _integer_self_subtraction(node, inputs, new):
    a, b = inputs
    if a is b and node.dtype.kind in "iub":
        return new_constant(new, np.zeros(node.shape, node.dtype), node)
    return None


def _known_size(node, inputs, new):
    """size_of is a constant once the shape is known (shapes are concrete when compiling)."""
    if None in inputs[0].shape:
        return None
    size = int(np.prod([inputs[0].shape[a] for a in node.params["axes"]]))
    return new_constant(new, np.array(size, node.dtype), node)


def _sum_to_as_sum(node, inputs, new):
    """Once shapes are known, unbroadcasting is an ordinary sum (which fusion can absorb:
    a bias gradient becomes a sink of the kernel computing the gradient)."""
    if node.dtype.kind != "f" or None in (*inputs[0].shape, *node.shape):
        return None
    x, like = inputs
    kept, lead = sum_to_axes(x.shape, like.shape)
    axes = tuple(range(lead)) + kept
    summed = new_node(new, P.sum, [x], node, axes=axes, keepdims=bool(kept))
    return summed if summed.shape == node.shape else \
        new_node(new, P.reshape, [summed], node, shape=node.shape)


# The rules of each primitive, tried in order (tinygrad's PatternMatcher keeps them by op):
# only the rules of a node's own primitive run.
RULES: dict[Primitive, tuple[Rule, ...]] = {
    P.stop_gradient: (_input_itself,),
    P.reshape: (_same_value, _reshape_chain),
    P.reshape_as: (_same_value, _reshape_chain),
    P.transpose: (_identity_permutation, _transpose_chain),
    P.broadcast_to: (_same_value,), P.expand_as: (_same_value,),
    P.squeeze: (_same_value,), P.expand_dims: (_same_value,), P.cast: (_same_value,),
    P.sum_to: (_same_value, _sum_to_as_sum),
    P.neg: (_double_negation,),
    P.mul: (_neutral(_one, _one),),
    P.div: (_neutral(_one),),
    P.add: (_neutral(_minus_zero, _minus_zero),),
    P.sub: (_neutral(_plus_zero), _integer_self_subtraction),
    P.size_of: (_known_size,),
}


def simplify(graph: Program) -> Program:
    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        for r in RULES.get(node.prim, ()) if node.role is Role.OP else ():
            replacement = r(node, inputs, new)
            if replacement is not None:
                return replacement
        return None

    return rewrite(graph, rule)
