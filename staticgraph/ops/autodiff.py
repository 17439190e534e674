"""The one reverse sweep, used by eager's ``backward()``/``autograd.grad`` and by the
graph's ``sg.gradients``. It knows nothing of Tensors or Nodes: callers say what a node's
parents are and how to pull a cotangent back through it; cotangents are combined with ``+``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from .primitive import Primitive

N = TypeVar("N", bound=Hashable)


def as_list(value: Any) -> list:
    """What the gradient APIs take: one value, a list or tuple of them, or None (none)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def toposort(roots: Iterable[N], parents: Callable[[N], Sequence[N | None]]) -> list[N]:
    """Every node reachable from ``roots``, each after all of its parents (iterative DFS)."""
    order: list[N] = []
    seen: set[N] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(parents(root)))]
        while stack:
            node, pending = stack[-1]
            for parent in pending:
                if parent is not None and parent not in seen:
                    seen.add(parent)
                    stack.append((parent, iter(parents(parent))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def backprop(seeds: Sequence[tuple[N, Any]], parents: Callable[[N], Sequence[N | None]],
             pullback: Callable[[N, Any, Sequence[bool]], Sequence[Any]],
             targets: set[N] | None = None,
             arrived: Callable[[N, Any], Any] | None = None) -> dict[N, Any]:
    """Propagate cotangents from ``seeds`` to every node they depend on.

    ``pullback(node, g, needs)`` returns one cotangent per parent (``None`` where
    ``needs[i]`` is false). With ``targets``, only paths that lead to a target are pulled
    back through. ``arrived(node, g)`` may replace a node's total cotangent before it is
    used (eager's tensor hooks). Returns the total cotangent of each node reached.
    """
    order = toposort((node for node, _ in seeds), parents)
    leads = None
    if targets is not None:
        leads = {}
        for node in order:  # parents come first
            leads[node] = node in targets or any(leads.get(p, False) for p in parents(node)
                                                 if p is not None)
    grads: dict[N, Any] = {}
    for node, g in seeds:
        grads[node] = grads[node] + g if node in grads else g
    for node in reversed(order):
        g = grads.get(node)
        if g is None or (leads is not None and not leads[node]):
            continue
        if arrived is not None:
            g = grads[node] = arrived(node, g)
        node_parents = parents(node)
        needs = [p is not None and (leads is None or leads[p]) for p in node_parents]
        if not any(needs):
            continue
        for parent, ct in zip(node_parents, pullback(node, g, needs)):
            if ct is not None:
                grads[parent] = grads[parent] + ct if parent in grads else ct
    return grads


def vjp(prim: Primitive, g: Any, out: Any, inputs: Sequence[Any], params: dict,
        needs: Sequence[bool]) -> list[Any]:
    """Cotangents of a primitive's inputs, each summed back to its input's shape and cast to
    its dtype: the one place broadcasting is undone."""
    result = []
    for i, need in enumerate(needs):
        rule = prim.vjp_rule(i) if need else None
        if rule is None:
            result.append(None)
            continue
        ct = rule(g, out, *inputs, **params)
        if ct is None:  # not differentiable with respect to this input (e.g. a shape donor)
            result.append(None)
            continue
        x = inputs[i]
        if ct.shape != x.shape or None in x.shape:
            ct = ct._sum_to(x)
        if ct.dtype != x.dtype:
            ct = ct.to(x.dtype)
        result.append(ct)
    return result
