"""Algebraic simplification: rewrites that give exactly the same values, applied as nodes are
copied (so a chain like neg(neg(neg x)) collapses in one sweep).

Not rewritten, on purpose: ``x - x -> 0`` for floats (inf - inf and nan - nan are nan),
``x + 0 -> x`` (-0.0 + 0.0 is +0.0) and ``exp(log x) -> x`` (log is nan for x < 0, and
exp(log x) differs from x in the last bit).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph import Graph, Node
from ..ops.primitives import P
from ..ops.shapes import sum_to_axes
from .rewrite import new_constant, new_node, rewrite


def _is_constant(node: Node, value: float) -> bool:
    return node.op == "constant" and node.value.size > 0 and bool(np.all(node.value == value))


def _passes_through(node: Node, x: Node) -> bool:
    """Replacing ``node`` by ``x`` keeps the shape and dtype of the value."""
    return x.shape == node.shape and x.dtype == node.dtype


def _identity_op(node, inputs, new):
    """Ops that do nothing to this value: same-shape reshapes and broadcasts, same-dtype
    casts, identity permutations, squeezes of no axis, stop_gradient."""
    x = inputs[0]
    if node.op == "stop_gradient" or (
            node.op in ("reshape", "reshape_as", "broadcast_to", "expand_as", "sum_to", "cast",
                        "squeeze", "expand_dims", "transpose") and _passes_through(node, x)
            and (node.op != "transpose" or node.params["perm"] == tuple(range(x.ndim)))):
        return x
    return None


def _double_negation(node, inputs, new):
    if node.op == "neg" and inputs[0].op == "neg":
        return inputs[0].inputs[0]
    return None


def _movement_chain(node, inputs, new):
    """reshape(reshape x) is one reshape; transpose(transpose x) is one transpose."""
    x = inputs[0]
    if node.op in ("reshape", "reshape_as") and x.op in ("reshape", "reshape_as"):
        return new_node(new, P.reshape, [x.inputs[0]], node, shape=node.shape)
    if node.op == "transpose" and x.op == "transpose":
        inner, outer = x.params["perm"], node.params["perm"]
        perm = tuple(inner[p] for p in outer)
        source = x.inputs[0]
        if perm == tuple(range(len(perm))):
            return source
        return new_node(new, P.transpose, [source], node, perm=perm)
    return None


def _is_zero(node: Node, negative: bool) -> bool:
    return _is_constant(node, 0) and bool(np.all(np.signbit(node.value) == negative))


def _neutral_operand(node, inputs, new):
    """x*1, 1*x, x/1, x-0, x+(-0) -> x, when the constant does not broadcast x larger.
    (x + 0 is not x: -0.0 + 0.0 is +0.0; x - 0.0 and x + -0.0 are exact.)"""
    if node.op not in ("mul", "div", "add", "sub"):
        return None
    a, b = inputs
    neutral = {"mul": lambda c: _is_constant(c, 1), "div": lambda c: _is_constant(c, 1),
               "add": lambda c: _is_zero(c, negative=True),
               "sub": lambda c: _is_zero(c, negative=False)}[node.op]
    if neutral(b) and _passes_through(node, a):
        return a
    if node.op in ("mul", "add") and neutral(a) and _passes_through(node, b):
        return b
    return None


def _integer_self_subtraction(node, inputs, new):
    a, b = inputs if len(inputs) == 2 else (None, None)
    if node.op == "sub" and a is b and node.dtype.kind in "iub":
        return new_constant(new, np.zeros(node.shape, node.dtype), node)
    return None


def _known_size(node, inputs, new):
    """size_of is a constant once the shape is known (shapes are concrete when compiling)."""
    if node.op == "size_of" and None not in inputs[0].shape:
        size = int(np.prod([inputs[0].shape[a] for a in node.params["axes"]]))
        return new_constant(new, np.array(size, node.dtype), node)
    return None


def _sum_to_as_sum(node, inputs, new):
    """Once shapes are known, unbroadcasting is an ordinary sum (which fusion can absorb:
    a bias gradient becomes a sink of the kernel computing the gradient)."""
    if node.op != "sum_to" or node.dtype.kind != "f" or None in (*inputs[0].shape, *node.shape):
        return None
    x, like = inputs
    kept, lead = sum_to_axes(x.shape, like.shape)
    axes = tuple(range(lead)) + kept
    summed = new_node(new, P.sum, [x], node, axes=axes, keepdims=bool(kept))
    return summed if summed.shape == node.shape else \
        new_node(new, P.reshape, [summed], node, shape=node.shape)


RULES: tuple[Callable, ...] = (_identity_op, _double_negation, _movement_chain,
                               _neutral_operand, _integer_self_subtraction, _known_size,
                               _sum_to_as_sum)


def simplify(graph: Graph) -> Graph:
    def rule(node: Node, inputs: tuple[Node, ...], new: Graph) -> Node | None:
        if node.prim is None:
            return None
        for r in RULES:
            replacement = r(node, inputs, new)
            if replacement is not None:
                return replacement
        return None

    return rewrite(graph, rule)
