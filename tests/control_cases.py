"""A table of control-flow programs (sg.cond, sg.while_loop, sg.scan, nested) and the ways to
run each: as a graph (values, gradients, Hessian-vector products), and as the same Python
function on eager or torch tensors (the oracles).

Each case's ``fn(flow, *inputs)`` is written once with the shared operator surface; ``flow``
supplies cond/while_loop/scan: ``sg`` itself (which builds CONTROL nodes on graph nodes and
runs as Python on eager tensors) or ``PythonFlow`` (TF1's semantics in plain Python, for
torch, whose autograd cannot see sg's numpy stacking).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import staticgraph as sg


class PythonFlow:
    """TF1's cond, while_loop and scan as plain Python loops over any tensor library."""

    @staticmethod
    def cond(pred: Any, true_fn: Callable, false_fn: Callable) -> Any:
        return true_fn() if bool(pred) else false_fn()

    @staticmethod
    def while_loop(cond: Callable, body: Callable, loop_vars: Any,
                   maximum_iterations: int | None = None) -> Any:
        sequence = isinstance(loop_vars, (tuple, list))
        values = tuple(loop_vars) if sequence else (loop_vars,)
        trips = 0
        while (maximum_iterations is None or trips < maximum_iterations) and bool(cond(*values)):
            values = tuple(body(*values)) if sequence else (body(*values),)
            trips += 1
        return values if sequence else values[0]

    @staticmethod
    def scan(fn: Callable, elems: Any, initializer: Any = None, reverse: bool = False) -> Any:
        import torch
        xs_sequence = isinstance(elems, (tuple, list))
        xs = list(elems) if xs_sequence else [elems]

        def element(k):
            return tuple(x[k] for x in xs) if xs_sequence else xs[0][k]
        order = list(range(len(xs[0])))[::-1 if reverse else 1]
        accs = {}
        if initializer is None:  # the first element is the first acc, and part of the result
            acc = accs[order[0]] = element(order[0])
            order = order[1:]
        else:
            acc = initializer
        for k in order:
            acc = fn(acc, element(k))
            accs[k] = acc
        ordered = [accs[k] for k in sorted(accs)]
        if isinstance(acc, (tuple, list)):
            return tuple(torch.stack([a[i] for a in ordered]) for i in range(len(acc)))
        return torch.stack(ordered)


# -- the programs -------------------------------------------------------------------------------
def branch(flow, x, y, w):
    """A branch per sign of x's sum; both read the outer y and Variable w; a tuple result."""
    return flow.cond(x.sum() > 0,
                     lambda: ((x * w).tanh() + y, (x * y).sum() * w),
                     lambda: (x.sin() * y, (x * x).sum() + w.exp()))


def halve(flow, x, w):
    """Shrink x (by a half and a weighted sine) until its squared norm is below 1, counting
    the trips: how many depends on the data."""
    def body(i, v):
        return i + 1, v * 0.5 + 0.1 * (v * w).sin()
    i, v = flow.while_loop(lambda i, v: (v * v).sum() > 1.0, body, (0, x))
    return i, v.tanh()


def recurrence(flow, x, weight):
    """Five trips of h <- tanh(W h) + h/2: a counter and a value; the body reads a weight."""
    return flow.while_loop(lambda i, h: i < 5,
                           lambda i, h: (i + 1, (weight @ h).tanh() + h * 0.5), (0, x))


def capped(flow, x, w):
    """Would run until the sum passes 100 (some 30 trips: each adds 0.9 to 1.1 per element),
    but maximum_iterations stops it after 3."""
    return flow.while_loop(lambda i, h: h.sum() < 100.0,
                           lambda i, h: (i + 1, h + 1.0 + 0.1 * (h * w).sin()), (0, x),
                           maximum_iterations=3)


def accumulate(flow, a, xs, reverse=False, initialized=True):
    """A nonlinear running state over the rows of xs."""
    return flow.scan(lambda acc, x: (acc * x).tanh() + acc * 0.5, xs,
                     initializer=a if initialized else None, reverse=reverse)


def pair(flow, a, b, xs, ys, reverse=False, initialized=True):
    """Two accumulators over two sequences (tuple elems, tuple initializer)."""
    def step(acc, elem):
        (h, c), (x, y) = acc, elem
        return h * y.tanh() + x, c + (h * x).sin()
    return flow.scan(step, (xs, ys), initializer=(a, b) if initialized else None,
                     reverse=reverse)


def cond_in_while(flow, x, w):
    """Four trips, each choosing a branch by the current value's sign (both get taken)."""
    def body(i, h):
        return i + 1, flow.cond(h.sum() > 0, lambda: h * w - 0.5, lambda: (h * w).sin() + 0.7)
    return flow.while_loop(lambda i, h: i < 4, body, (0, x))


def scan_in_scan(flow, a, xs):
    """An outer scan over the rows of a (rows, steps, 2) array; each row is an inner scan."""
    def row(acc, r):
        inner = flow.scan(lambda s, e: (s * e).tanh() + s * 0.5, r, initializer=acc)
        return inner[-1] + inner[0] * 0.25
    return flow.scan(row, xs, initializer=a)


def while_in_cond(flow, x, w):
    """A data-dependent loop in the true branch only."""
    def shrink():
        return flow.while_loop(lambda v: (v * v).sum() > 1.0,
                               lambda v: v * 0.5 + 0.1 * (v * w).sin(), x)
    return flow.cond(x.sum() > 0, shrink, lambda: (x * w).tanh())


@dataclass(frozen=True, eq=False)
class Case:
    """``fn`` on ``inputs`` (name -> float64 array); ``variables`` name the inputs that are
    sg.Variables in the graph (placeholders otherwise); ``trips``, where output 0 counts the
    loop's trips, is how many this data must take (so the case tests what its name says)."""

    name: str
    fn: Callable
    inputs: dict[str, np.ndarray]
    variables: frozenset[str] = frozenset()
    trips: int | None = None


def _normal(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _scan_case(name: str, fn: Callable, inputs: dict, reverse: bool, initialized: bool) -> Case:
    return Case(f"{name}{'_reverse' * reverse}{'_no_initializer' * (not initialized)}",
                functools.partial(fn, reverse=reverse, initialized=initialized), inputs)


W3 = np.array([0.3, -0.7, 1.1])
V = frozenset({"w"})
CASES = (
    Case("cond_true", branch, dict(x=np.array([0.4, -0.1, 0.9]), y=_normal(1, 3), w=W3), V),
    Case("cond_false", branch, dict(x=np.array([-0.4, 0.1, -0.9]), y=_normal(1, 3), w=W3), V),
    Case("while_0_trips", halve, dict(x=np.array([0.3, 0.2, 0.1]), w=W3), V, trips=0),
    Case("while_1_trip", halve, dict(x=np.array([1.2, 0.5, 0.7]), w=W3), V, trips=1),
    Case("while_many_trips", halve, dict(x=np.array([20.0, -10.0, 5.0]), w=W3), V, trips=5),
    Case("while_counter_weight", recurrence, dict(x=_normal(2, 3), weight=_normal(3, 3, 3)),
         frozenset({"weight"}), trips=5),
    Case("while_maximum_iterations", capped, dict(x=np.array([0.5, 0.2, 0.4]), w=W3), V,
         trips=3),
    *(_scan_case("scan", accumulate, dict(a=_normal(4, 3), xs=_normal(5, 4, 3)), r, i)
      for r in (False, True) for i in (True, False)),
    *(_scan_case("scan_tuple", pair, dict(a=_normal(6, 3), b=_normal(7, 3), xs=_normal(8, 4, 3),
                                          ys=_normal(9, 4, 3)), r, i)
      for r, i in ((False, True), (True, False))),
    Case("cond_in_while", cond_in_while, dict(x=np.array([0.6, 0.3, 0.4]), w=W3), V, trips=4),
    Case("scan_in_scan", scan_in_scan, dict(a=_normal(10, 2), xs=_normal(11, 3, 4, 2))),
    Case("while_in_cond_true", while_in_cond, dict(x=np.array([3.0, 2.0, -1.0]), w=W3), V),
    Case("while_in_cond_false", while_in_cond, dict(x=np.array([-3.0, 2.0, -1.0]), w=W3), V),
)
CASE_IDS = [c.name for c in CASES]


def outputs_of(results: Any) -> list:
    return list(results) if isinstance(results, (tuple, list)) else [results]


def weights(shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Fixed random cotangents, one per floating output: loss = sum((out * weight).sum())."""
    return [np.random.default_rng(20 + k).standard_normal(s) for k, s in enumerate(shapes)]


def directions(case: Case) -> list[np.ndarray]:
    """The direction v of the Hessian-vector products, one array per input."""
    return [np.random.default_rng(40 + k).standard_normal(a.shape)
            for k, a in enumerate(case.inputs.values())]


@dataclass
class Built:
    """A case as a graph: its outputs, the weighted loss, its gradient with respect to every
    input, and the gradient of (gradient . v): a Hessian-vector product."""

    graph: sg.Graph
    inputs: list[sg.Node]      # in the case's input order
    outputs: list[sg.Node]
    floating: list[int]        # which outputs the loss reads
    loss: sg.Node
    directional: sg.Node
    grads: list[sg.Node]
    hvps: list[sg.Node]

    @property
    def fetches(self) -> list[sg.Node]:
        return [*self.outputs, *self.grads, *self.hvps]

    def feeds(self, session: sg.Session, arrays: Sequence[np.ndarray]) -> dict:
        """The placeholders' feeds; the Variables' values are set in ``session``."""
        feeds = {}
        for node, array in zip(self.inputs, arrays):
            if node.op == "variable":
                session.assign(node, array)
            else:
                feeds[node] = array
        return feeds

    def run(self, session: sg.Session, arrays: Sequence[np.ndarray], fetches: Any) -> Any:
        return session.run(fetches, self.feeds(session, arrays))


@functools.cache
def built(case: Case) -> Built:
    graph = sg.Graph()
    with graph.as_default():
        inputs = [sg.Variable(a, name=n) if n in case.variables else
                  sg.placeholder(a.shape, a.dtype, name=n) for n, a in case.inputs.items()]
        outputs = outputs_of(case.fn(sg, *inputs))
        floating = [k for k, o in enumerate(outputs) if o.dtype.kind == "f"]
        loss = weighted_loss([outputs[k] for k in floating],
                             weights([outputs[k].shape for k in floating]), sg.constant)
        grads = sg.gradients(loss, inputs, unconnected="zero")
        directional = sum((g * sg.constant(v)).sum() for g, v in zip(grads, directions(case)))
        hvps = sg.gradients(directional, inputs, unconnected="zero")
    return Built(graph, inputs, outputs, floating, loss, directional, grads, hvps)


def weighted_loss(outputs: Sequence[Any], cotangents: Sequence[np.ndarray],
                  lift: Callable[[np.ndarray], Any]) -> Any:
    return sum((o * lift(w)).sum() for o, w in zip(outputs, cotangents))


def autodiff_run(L: Any, flow: Any, case: Case, floating: Sequence[int]) -> list[np.ndarray]:
    """Outputs, gradients and Hessian-vector products of ``case`` run as Python by the tensor
    library ``L`` (eager or torch: ``L.tensor``, ``L.autograd.grad``), flattened as
    ``Built.fetches``. A gradient autograd reports as unused is zero."""
    tensors = [L.tensor(a, requires_grad=True) for a in case.inputs.values()]
    outputs = outputs_of(case.fn(flow, *tensors))
    picked = [outputs[k] for k in floating]
    loss = weighted_loss(picked, weights([tuple(o.shape) for o in picked]), L.tensor)

    def grad(y, create_graph):
        found = L.autograd.grad(y, tensors, create_graph=create_graph, allow_unused=True)
        return [g if g is not None else L.tensor(np.zeros_like(a))
                for g, a in zip(found, case.inputs.values())]
    grads = grad(loss, True)
    hvps = grad(sum((g * L.tensor(v)).sum() for g, v in zip(grads, directions(case))), False)
    return [as_array(v) for v in [*outputs, *grads, *hvps]]


def as_array(value: Any) -> np.ndarray:
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
