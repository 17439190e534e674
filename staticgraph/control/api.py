"""sg.cond, sg.while_loop and sg.scan (TF1's names). On graph nodes they build a CONTROL
node whose bodies are subgraphs; on anything else (eager tensors, arrays, numbers) they
simply run as Python, as ``jax.lax`` functions do outside ``jit``, so one function serves
both modes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..graph import Node, _graph_for, constant, user_location
from ..ops import dtypes, functional
from .body import build, check_same, close, to_values
from .flow import Cond, Scan, WhileLoop, add_control, output_of


def _nodes_in(values: Sequence[Any]) -> list[Node]:
    return [v for v in values if isinstance(v, Node)]


def _as_nodes(values: Sequence[Any], graph) -> list[Node]:
    """``values`` as nodes of ``graph``: Python numbers and arrays become constants, nodes of
    an enclosing graph are captured."""
    result = []
    for v in values:
        if not isinstance(v, Node):
            v = constant(v, graph=graph)
        elif v.graph is not graph and graph.sees(v.graph):
            v = graph.capture_outer(v)
        result.append(v)
    return result


def _home(anchor: Node):
    """The graph a control node reading ``anchor`` is built in."""
    return _graph_for(anchor.graph)


def _check_predicate(kind: str, pred: Node, where: str, what: str) -> None:
    if pred.dtype != dtypes.bool_ or pred.shape != ():
        raise TypeError(f"{kind} at {where}: {what} must be a bool scalar, got shape "
                        f"{pred.shape} {pred.dtype.name}; compare to make one (x.sum() > 0)")


def _packed(values: list[Node], sequence: bool):
    return tuple(values) if sequence else values[0]


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any],
         name: str = "cond") -> Any:
    """``true_fn()`` if ``pred`` else ``false_fn()``, deciding when the graph runs; only the
    branch taken runs. Both return a value or a tuple of values of matching shapes and
    dtypes."""
    if not isinstance(pred, Node):  # eager tensors, numpy, Python: decide now
        return true_fn() if bool(pred) else false_fn()
    where = user_location()
    _check_predicate("sg.cond", pred, where, "pred")
    graph = _home(pred)
    pred = _as_nodes([pred], graph)[0]
    true, true_out, sequence = build(graph, f"{name}/true", true_fn, [], f"sg.cond at {where}")
    false, false_out, _ = build(graph, f"{name}/false", false_fn, [], f"sg.cond at {where}")
    check_same("sg.cond", true_out, false_out, ("true_fn", "false_fn"), where)
    (false_body, true_body), outer = close([false, true], [false_out, true_out], leading=0)
    node = add_control(graph, Cond(branches=(false_body, true_body)), [pred, *outer], where)
    return _packed([output_of(node, k) for k in range(len(true_out))], sequence)


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any,
               maximum_iterations: int | None = None, name: str = "while_loop") -> Any:
    """Repeat ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` (and at most
    ``maximum_iterations`` times); returns the final values, in ``loop_vars``' structure.
    The number of trips comes from the data when the graph runs."""
    values, sequence = to_values(loop_vars, "sg.while_loop's loop_vars")
    if maximum_iterations is not None and (
            not isinstance(maximum_iterations, (int, np.integer)) or maximum_iterations < 0):
        raise ValueError(f"sg.while_loop: maximum_iterations must be a non-negative int or "
                         f"None, got {maximum_iterations!r}")
    if not _nodes_in(values):
        trips = 0
        while maximum_iterations is None or trips < maximum_iterations:
            go = cond(*values)
            if isinstance(go, Node):  # the test reads a graph: build the loop instead
                break
            if not go:
                return _packed(values, sequence)
            values = to_values(body(*values), "sg.while_loop's body")[0]
            trips += 1
        else:
            return _packed(values, sequence)
        if trips:
            raise TypeError("sg.while_loop: the test became a graph node after running as "
                            "Python; give the loop variables as nodes")
        anchor = go
    else:
        anchor = _nodes_in(values)[0]
    where = user_location()
    graph = _home(anchor)
    values = _as_nodes(values, graph)
    params = [(v.shape, v.dtype, f"loop_var_{k}") for k, v in enumerate(values)]
    what = f"sg.while_loop at {where}"
    test, test_out, _ = build(graph, f"{name}/cond", cond, params, what)
    if len(test_out) != 1:
        raise TypeError(f"{what}: cond must return one bool scalar, got {len(test_out)} values")
    _check_predicate("sg.while_loop", test_out[0], where, "cond's result")
    step, step_out, _ = build(graph, f"{name}/body", body, params, what, dtypes_like=values)
    check_same("sg.while_loop", values, step_out, ("loop_vars", "body"), where,
               label="loop variable")
    with step.as_default():  # the test of the next trip, in the same body: one call per trip
        again = _as_nodes(to_values(cond(*step_out), what)[0][:1], step)[0]
    (test_body, step_body), outer = close([test, step], [test_out, [*step_out, again]],
                                          leading=len(values))
    loop = WhileLoop(test=test_body, step=step_body, n_vars=len(values),
                     maximum_iterations=maximum_iterations)
    node = add_control(graph, loop, [*values, *outer], where)
    return _packed([output_of(node, k) for k in range(len(values))], sequence)


def scan(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None,
         reverse: bool = False, name: str = "scan") -> Any:
    """TF1's ``tf.scan``: ``acc = fn(acc, x)`` for each x along the first axis of ``elems``
    (last to first if ``reverse``); returns every acc, stacked. ``elems`` and
    ``initializer`` may be tuples; without ``initializer`` the first element of ``elems``
    (the last, if ``reverse``) is the first acc and is part of the result."""
    xs, xs_sequence = to_values(elems, "sg.scan's elems")
    if initializer is None:
        init, init_sequence = [x[-1] if reverse else x[0] for x in xs], xs_sequence
        rest = [x[:-1] if reverse else x[1:] for x in xs]
    else:
        init, init_sequence = to_values(initializer, "sg.scan's initializer")
        rest = xs
    if not _nodes_in([*xs, *init]):
        return _python_scan(fn, xs, rest, init, init_sequence, xs_sequence, initializer, reverse)
    where = user_location()
    graph = _home(_nodes_in([*xs, *init])[0])
    init, rest = _as_nodes(init, graph), _as_nodes(rest, graph)
    lengths = {x.shape[0] if x.ndim else "scalar" for x in rest}
    if "scalar" in lengths or len(lengths - {None}) > 1:
        raise ValueError(f"sg.scan at {where}: every elems must have the same first dimension, "
                         f"got shapes {[x.shape for x in rest]}")
    params = [*((v.shape, v.dtype, f"acc_{k}") for k, v in enumerate(init)),
              *((x.shape[1:], x.dtype, f"elem_{k}") for k, x in enumerate(rest))]
    n = len(init)

    def step(*args: Node):
        return fn(_packed(list(args[:n]), init_sequence), _packed(list(args[n:]), xs_sequence))

    what = f"sg.scan at {where}"
    body, out, _ = build(graph, name, step, params, what, dtypes_like=init)
    check_same("sg.scan", init, out, ("initializer", "fn"), where, label="accumulator")
    (closed,), outer = close([body], [[*out, *out]], leading=len(params))
    node = add_control(graph, Scan(body=closed, n_carry=n, n_xs=len(rest), reverse=reverse),
                       [*init, *rest, *outer], where)
    stacked = [output_of(node, n + k) for k in range(n)]
    if initializer is None:  # the first acc is part of the result
        stacked = [functional.cat([s, i.unsqueeze(0)] if reverse else [i.unsqueeze(0), s])
                   for s, i in zip(stacked, init)]
    return _packed(stacked, init_sequence)


def _python_scan(fn, xs, rest, init, init_sequence, xs_sequence, initializer, reverse):
    """sg.scan on eager tensors or arrays: a Python loop, stacked at the end."""
    acc = list(init)
    length = len(rest[0])
    accs: list[list] = []
    for k in (range(length - 1, -1, -1) if reverse else range(length)):
        acc = to_values(fn(_packed(acc, init_sequence),
                           _packed([x[k] for x in rest], xs_sequence)), "sg.scan's fn")[0]
        accs.append(acc)
    if reverse:
        accs.reverse()
    if initializer is None:
        accs = [*accs, list(init)] if reverse else [list(init), *accs]
    stacked = [_stack([a[i] for a in accs], init[i]) for i in range(len(init))]
    return _packed(stacked, init_sequence)


def _stack(values: list, like: Any):
    if hasattr(like, "_apply"):  # an eager tensor: its own stack records the graph
        return functional.stack(values) if values else like.unsqueeze(0)[:0]
    return np.stack(values) if values else np.asarray(like)[None][:0]
