"""Gradients through control flow, built as more control flow (so they can be differentiated
again, to any order, and nest):

- a cond's gradient is a cond on the same predicate whose branches are the branches'
  gradients;
- a loop's gradient is a scan in the opposite direction over the loop's history (each
  variable's value before each trip, which the forward loop records, as TF1's stack
  accumulators do). Each reverse step recomputes that trip's body from its recorded inputs
  and pulls the cotangents back through it; cotangents of the values the body read from
  outside (weights) are summed over the trips in the reverse scan's carry.

Each backward body is built by inlining the forward body into a new subgraph and calling
``sg.gradients`` there, so its own passes (CSE, DCE, fusion) see one graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..gradients import gradients
from ..graph import Node, Role
from ..ops import dtypes
from ..ops.autodiff import toposort
from ..program import origin_of
from .body import Body, Subgraph, inline
from .flow import Cond, ControlFlow, Scan, WhileLoop, add_control, output_of


class Cotangents(dict):
    """The cotangents of a control node's results, by result index: what the reverse sweep
    accumulates for it (``+`` adds those of the same result)."""

    def __add__(self, other: Cotangents) -> Cotangents:
        total = Cotangents(self)
        for index, g in other.items():
            total[index] = total[index] + g if index in total else g
        return total


def _floating(values: Sequence[Node], wanted: Callable[[int], bool] = lambda k: True) -> list[int]:
    return [k for k, v in enumerate(values) if dtypes.is_floating(v.dtype) and wanted(k)]


def _reads(body: Body, outputs: Sequence[int]) -> set[int]:
    """The parameters (by position) the body's results at ``outputs`` depend on: a gradient
    flows only there (eager and torch send none elsewhere: a zero pulled back through
    ``* inf`` would be NaN)."""
    index = {p: i for i, p in enumerate(body.params)}
    reached = toposort([body.outputs[i] for i in outputs], lambda n: n.inputs)
    return {index[origin_of(n)] for n in reached if n.role is Role.PLACEHOLDER}


def _carried(body: Body, n: int, wanted: set[int]) -> set[int]:
    """Loop variables (the first ``n`` parameters and results) whose cotangent can be
    nonzero: those ``wanted`` and, trip after trip, those they read."""
    found = set(wanted)
    while True:
        more = {i for i in _reads(body, sorted(found)) if i < n} - found
        if not more:
            return found
        found |= more


def _backward_body(graph, name: str, params: Sequence[Node],
                   make: Callable[[list[Node]], list[Node]]) -> Body:
    """A body of ``graph`` with parameters like ``params`` whose outputs ``make`` builds."""
    body = Subgraph(graph, graph.unique_name(name))
    with body.as_default():
        args = [body.parameter(p.shape, p.dtype, p.name.rsplit("/", 1)[-1]) for p in params]
        body.outputs = make(args)
    body.closed = True
    return Body(tuple(args), body)


def _cond_vjp(node: Node, cts: Cotangents, needs: Sequence[bool]) -> list:
    pred, operands = node.inputs[0], list(node.inputs[1:])
    given = sorted(cts)
    read = set().union(*(_reads(b, given) for b in node.control.branches))
    wrt = _floating(operands, lambda k: needs[k + 1] and k in read)
    if not wrt:
        return [None] * len(node.inputs)
    seeds = [cts[i] for i in given]

    def branch_gradient(branch: Body) -> Body:
        def make(args: list[Node]) -> list[Node]:
            ops, grad_ys = args[:len(operands)], args[len(operands):]
            outs = inline(branch, ops)
            return gradients([outs[i] for i in given], [ops[k] for k in wrt], grad_ys,
                             unconnected="zero")
        return _backward_body(node.graph, "cond_grad", [*operands, *seeds], make)

    control = Cond(branches=tuple(branch_gradient(b) for b in node.control.branches))
    grad = add_control(node.graph, control, [pred, *operands, *seeds], node.location)
    result: list = [None] * len(node.inputs)
    for j, k in enumerate(wrt):
        result[k + 1] = output_of(grad, j)
    return result


def _reverse_scan(node: Node, carry_start: list[Node], accumulate: list[Node],
                  xs: list[Node], captured: list[Node], step: Callable[..., tuple],
                  reverse: bool) -> tuple[list[Node], list[Node], list[Node]]:
    """A scan carrying cotangents (``carry_start``) and the running sums of the captured
    values' cotangents (for ``accumulate``), over ``xs``. ``step(carry, x, captured)`` gives
    (new carry cotangents, captured cotangents of this element, per-element results).
    Returns the final carry, the sums, and the stacked per-element results."""
    nc, na, nx = len(carry_start), len(accumulate), len(xs)

    def make(args: list[Node]) -> list[Node]:
        carry, sums = args[:nc], args[nc:nc + na]
        x, outer = args[nc + na:nc + na + nx], args[nc + na + nx:]
        new_carry, terms, ys = step(carry, x, outer)
        return [*new_carry, *(s + t for s, t in zip(sums, terms)), *ys]

    zeros = [a._fill(0) for a in accumulate]
    params = [*carry_start, *zeros, *(_Element(x) for x in xs), *captured]
    body = _backward_body(node.graph, f"{node.control.kind}_grad", params, make)
    control = Scan(body=body, n_carry=nc + na, n_xs=nx, reverse=reverse)
    scan = add_control(node.graph, control, [*carry_start, *zeros, *xs, *captured],
                       node.location)
    outs = [output_of(scan, i) for i in range(nc + na + control.n_ys)]
    return outs[:nc], outs[nc:nc + na], outs[nc + na:]


class _Element:
    """Shape and dtype of one element of a stacked value (a scan body's parameter)."""

    def __init__(self, stacked: Node) -> None:
        self.shape, self.dtype, self.name = stacked.shape[1:], stacked.dtype, stacked.name


def _plus_history(before_cts: list[Node], carried: list[int], seen: list[int],
                  history_cts: list[Node]) -> list[Node]:
    """A recorded value before a trip is that trip's input: its own cotangent (from whatever
    read the history) adds to the one pulled back through the trip."""
    total = list(before_cts)
    for k, i in enumerate(seen):
        total[carried.index(i)] = total[carried.index(i)] + history_cts[k]
    return total


def _while_vjp(node: Node, cts: Cotangents, needs: Sequence[bool]) -> list:
    loop: WhileLoop = node.control
    n = loop.n_vars
    start, captured = list(node.inputs[:n]), list(node.inputs[n:])
    wanted = _carried(loop.step, n, {i for i in range(n) if i in cts or n + i in cts})
    carried = _floating(start, lambda i: i in wanted)
    read = _reads(loop.step, carried)
    summed = _floating(captured, lambda j: needs[n + j] and n + j in read)
    if not carried or not (summed or any(needs[i] for i in carried)):
        return [None] * len(node.inputs)
    histories = [output_of(node, n + i) for i in range(n)]
    seen = [i for i in carried if n + i in cts]  # cotangents of the histories themselves
    carry_start = [cts.get(i) if i in cts else start[i]._fill(0) for i in carried]

    def step(carry, x, outer):
        before, history_cts = x[:n], x[n:]
        after = inline(loop.step, [*before, *outer])[:n]
        grads = gradients([after[i] for i in carried],
                          [*(before[i] for i in carried), *(outer[j] for j in summed)],
                          carry, unconnected="zero")
        return _plus_history(grads[:len(carried)], carried, seen, history_cts), \
            grads[len(carried):], []

    final, sums, _ = _reverse_scan(node, carry_start, [captured[j] for j in summed],
                                   [*histories, *(cts[n + i] for i in seen)], captured, step,
                                   reverse=True)
    result: list = [None] * len(node.inputs)
    for k, i in enumerate(carried):
        result[i] = final[k]
    for k, j in enumerate(summed):
        result[n + j] = sums[k]
    return result


def _scan_vjp(node: Node, cts: Cotangents, needs: Sequence[bool]) -> list:
    scan: Scan = node.control
    nc, nx, ny = scan.n_carry, scan.n_xs, scan.n_ys
    start, xs = list(node.inputs[:nc]), list(node.inputs[nc:nc + nx])
    captured = list(node.inputs[nc + nx:])
    ys_given = [j for j in range(ny) if nc + j in cts]
    wanted = {i for i in range(nc) if i in cts or nc + ny + i in cts}
    wanted |= {i for i in _reads(scan.body, [nc + j for j in ys_given]) if i < nc}
    carried = _floating(start, lambda i: i in _carried(scan.body, nc, wanted))
    read = _reads(scan.body, [*carried, *(nc + j for j in ys_given)])
    into_xs = _floating(xs, lambda k: needs[nc + k] and nc + k in read)
    summed = _floating(captured, lambda j: needs[nc + nx + j] and nc + nx + j in read)
    seen = [i for i in carried if nc + ny + i in cts]
    if not (carried or ys_given) or not (into_xs or summed or any(needs[i] for i in carried)):
        return [None] * len(node.inputs)
    histories = [output_of(node, nc + ny + i) for i in range(nc)]
    carry_start = [cts.get(i) if i in cts else start[i]._fill(0) for i in carried]

    def step(carry, x, outer):
        before, element = x[:nc], x[nc:nc + nx]
        y_cts, history_cts = x[nc + nx:nc + nx + len(ys_given)], x[nc + nx + len(ys_given):]
        outs = inline(scan.body, [*before, *element, *outer])
        grads = gradients([*(outs[i] for i in carried), *(outs[nc + j] for j in ys_given)],
                          [*(before[i] for i in carried), *(element[k] for k in into_xs),
                           *(outer[j] for j in summed)],
                          [*carry, *y_cts], unconnected="zero")
        nk, nxs = len(carried), len(into_xs)
        return _plus_history(grads[:nk], carried, seen, history_cts), grads[nk + nxs:], \
            grads[nk:nk + nxs]

    final, sums, x_cts = _reverse_scan(
        node, carry_start, [captured[j] for j in summed],
        [*histories, *xs, *(cts[nc + j] for j in ys_given), *(cts[nc + ny + i] for i in seen)],
        captured, step, reverse=not scan.reverse)
    result: list = [None] * len(node.inputs)
    for k, i in enumerate(carried):
        result[i] = final[k]
    for k, i in enumerate(into_xs):
        result[nc + i] = x_cts[k]
    for k, j in enumerate(summed):
        result[nc + nx + j] = sums[k]
    return result


VJPS: dict[type[ControlFlow], Callable[..., list]] = {
    Cond: _cond_vjp, WhileLoop: _while_vjp, Scan: _scan_vjp}


def control_vjp(node: Node, cts: Cotangents, needs: Sequence[bool]) -> list:
    """Cotangents of a CONTROL node's inputs from those of its results."""
    return VJPS[type(node.control)](node, cts, needs)
