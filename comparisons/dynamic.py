"""Where define-by-run wins, measured: data-dependent Python control flow, printing an
intermediate value while debugging, and what compiling costs before it pays off."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np

import eager
import staticgraph as sg

from staticgraph.ops import functional as F

from .common import Timing, interleaved, seconds_of, shown
from .models import mlp_weights
from .training import SIZES, build_graph, load_digits, logits_of


def halve_until_small(x):
    """A loop whose length depends on the data: halve x until its norm is below 1."""
    steps = 0
    while (x * x).sum().sqrt() > 1:
        x = x * 0.5
        steps += 1
    return x, steps


def halve_as_graph(x, max_steps: int = 32):
    """The same as a graph: the loop is unrolled to a bound, and each step is kept or not by
    sg.where on the data (the values are equal; the work is always max_steps)."""
    for _ in range(max_steps):
        norm = (x * x).sum().sqrt()
        x = sg.where(norm > 1, x * 0.5, x)
    return x


def control_flow(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(16) * scale for scale in (0.1, 10.0, 1000.0)]
    eager_steps = [halve_until_small(eager.tensor(v))[1] for v in inputs]
    try:
        sg.trace(lambda x: halve_until_small(x)[0], inputs[0])
        traced_error = "(no error)"
    except TypeError as error:
        traced_error = str(error).split(": Python")[0]
    unrolled = sg.trace(halve_as_graph, inputs[0])
    for v in inputs:
        np.testing.assert_allclose(unrolled(v), halve_until_small(eager.tensor(v))[0].numpy(),
                                   rtol=1e-6)
    times = interleaved(
        {f"eager, x of norm ~{np.linalg.norm(v):.0f}": (lambda v=v: halve_until_small(
            eager.tensor(v))) for v in inputs} |
        {f"graph (32 steps unrolled), norm ~{np.linalg.norm(v):.0f}": (lambda v=v: unrolled(v))
         for v in inputs}, repeats * 10, "halve x until |x| < 1")
    shapes = sg.trace(lambda x: (x * 2).sum(), np.zeros(4, np.float32))
    retraces = Timing(tuple(seconds_of(lambda n=n: shapes(np.zeros(n, np.float32)))
                            for n in range(5, 25)))  # each a new shape: traced and compiled
    return {"loop_steps_per_input": eager_steps, "tracing_it_raises": traced_error,
            "us": {k: t.summary("us") for k, t in times.items()},
            "traces_for_21_shapes": shapes.traces, "retrace_ms": retraces.summary("ms")}


def debugging() -> dict:
    """What printing an intermediate shows in each mode."""
    x_train, y_train, _, _ = load_digits()
    params = [eager.tensor(w) for w in mlp_weights(SIZES)]
    out = io.StringIO()
    with redirect_stdout(out):
        hidden = (eager.tensor(x_train[:2]) @ params[0] + params[1]).relu()
        print(hidden[:, :4])
    eager_print = out.getvalue().strip()
    g, x, y, logits, loss, update = build_graph()
    hidden_node = next(n for n in g.nodes if n.prim is sg.ops.P.relu)
    graph_print = repr(hidden_node)
    fetched = sg.Session(g).run(hidden_node, {x: x_train[:2]})[:, :4]
    return {"eager_print": eager_print, "graph_print": graph_print,
            "graph_fetch": np.array2string(fetched, precision=4)}


def compile_cost(repeats: int) -> dict:
    """Time to the first result (compiling included) and per step after it."""
    data = load_digits()
    x_train, y_train = data[0][:64], data[1][:64]
    g, x, y, logits, loss, update = build_graph()
    session = sg.Session(g)
    first = seconds_of(lambda: session.run([loss, update], {x: x_train, y: y_train}))
    params = [eager.tensor(w, requires_grad=True) for w in mlp_weights(SIZES)]
    opt = eager.optim.SGD(params, lr=0.05, momentum=0.9)

    def eager_step():
        opt.zero_grad()
        F.cross_entropy(logits_of(eager.tensor(x_train), *params), eager.tensor(y_train)
                        ).backward()
        opt.step()
    eager_first = seconds_of(eager_step)
    times = interleaved({"compiled": lambda: session.run([loss, update],
                                                         {x: x_train, y: y_train}),
                         "eager": eager_step}, repeats * 10, "digits step after the first")
    saved = times["eager"].median - times["compiled"].median
    return {"compiled_first_step_ms": first * 1e3, "eager_first_step_ms": eager_first * 1e3,
            "compiled_step_ms": times["compiled"].summary("ms"),
            "eager_step_ms": times["eager"].summary("ms"),
            "steps_to_break_even": (first - eager_first) / saved if saved > 0 else None}


def run(ctx) -> dict:
    repeats = 3 if ctx.quick else 9
    flow, debug, cost = control_flow(repeats), debugging(), compile_cost(repeats)
    text = ["Data-dependent control flow: halve x until |x| < 1 (a Python while loop)",
            f"  eager runs it as written: {flow['loop_steps_per_input']} steps for three "
            "inputs",
            f"  sg.trace of the same function stops at the `while`: {flow['tracing_it_raises']}",
            "  as a graph it must be unrolled to a bound (32) with sg.where, doing all 32 steps:"]
    text += [f"    {k:45} {shown(t)}" for k, t in flow["us"].items()]
    text += [f"  shapes: sg.trace compiled {flow['traces_for_21_shapes']} graphs for 21 input "
             f"shapes, {shown(flow['retrace_ms'])} each",
             "", "Printing an intermediate (the first hidden layer, 2 images x 4 units):",
             "  eager:", *("    " + line for line in debug["eager_print"].splitlines()),
             f"  graph, print(node): {debug['graph_print']}",
             "  graph, after sess.run(node, feed):",
             *("    " + line for line in debug["graph_fetch"].splitlines()),
             "", "What compiling costs (the digits MLP training step, batch 64):",
             f"  first step: compiled {cost['compiled_first_step_ms']:.1f} ms (compiling "
             f"included), eager {cost['eager_first_step_ms']:.1f} ms",
             f"  each step after: compiled {shown(cost['compiled_step_ms'])}, eager "
             f"{shown(cost['eager_step_ms'])}"]
    if cost["steps_to_break_even"] is not None:
        text.append(f"  compiling pays for itself after {cost['steps_to_break_even']:.0f} steps")
    markdown = ["```text", *text, "```"]
    return {"text": "\n".join(text), "markdown": "\n".join(markdown),
            "data": {"control_flow": flow, "debugging": debug, "compile_cost": cost}}
