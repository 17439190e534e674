"""Symbolic gradients: the shared reverse sweep over graph Nodes. The VJP rules build new
nodes, so the result is more graph (and its gradient can be taken again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .graph import GraphError, Node, Role, user_location
from .ops import autodiff, dtypes


def _weight(y: Node, w: Any) -> Node:
    w = y._operand(w, y.dtype)
    if len(w.shape) != len(y.shape) or any(
            a is not None and b is not None and a != b for a, b in zip(w.shape, y.shape)):
        raise ValueError(f"gradients at {user_location()}: grad_ys entry of shape {w.shape} for "
                         f"{y.name!r} of shape {y.shape}; they must be equal")
    return w


def gradients(ys: Node | Sequence[Node], xs: Node | Sequence[Node],
              grad_ys: Any = None, unconnected: str = "none") -> list[Node | None]:
    """d(sum of ys)/d(x) for each x, as new nodes (TF1's ``tf.gradients``).

    ``grad_ys`` weights each y (default: ones). An x that no y depends on gets ``None``, or
    zeros with ``unconnected="zero"``; so does an integer x (no gradient flows into integers,
    as in TF1; torch refuses them).
    """
    if unconnected not in ("none", "zero"):
        raise ValueError(f"unconnected must be 'none' or 'zero', got {unconnected!r}")
    ys, xs = autodiff.as_list(ys), autodiff.as_list(xs)
    weights = autodiff.as_list(grad_ys) if grad_ys is not None else [None] * len(ys)
    if len(weights) != len(ys):
        raise ValueError(f"grad_ys has {len(weights)} entries for {len(ys)} ys")
    for n in ys + xs:
        if not isinstance(n, Node) or n.graph is not ys[0].graph:
            raise GraphError(f"gradients: {n!r} is not a node of the graph of {ys[0].name!r}")
    seeds = [(y, y._fill(1) if w is None else _weight(y, w)) for y, w in zip(ys, weights)]
    from .control.grad import Cotangents, control_vjp  # (which builds on this function)

    def parents(node: Node) -> tuple[Node, ...]:
        # Nothing flows back through sources, state ops, non-differentiable primitives
        # (comparisons, argmax) or values that are not floating point (a cast to int).
        if node.role is Role.CONTROL:
            return node.inputs
        if node.role is Role.OUTPUT:  # one result of a control node
            return node.inputs if dtypes.is_floating(node.dtype) else ()
        differentiable = node.prim is not None and node.prim.differentiable
        return node.inputs if differentiable and dtypes.is_floating(node.dtype) else ()

    def pullback(node: Node, g: Any, needs: Sequence[bool]) -> list:
        if node.role is Role.OUTPUT:
            return [Cotangents({node.params["index"]: g})]
        if node.role is Role.CONTROL:
            return control_vjp(node, g, needs)
        return autodiff.vjp(node.prim, g, node, node.inputs, node.params, needs)

    grads = autodiff.backprop(seeds, parents, pullback, targets=set(xs))
    result = [grads.get(x) if dtypes.is_floating(x.dtype) else None for x in xs]
    if unconnected == "zero":
        result = [x._fill(0) if g is None else g for x, g in zip(xs, result)]
    return result
