"""Where define-by-run wins, measured: data-dependent control flow (a Python loop, a graph's
sg.while_loop, an unrolled graph; an RNN as a Python loop and as sg.scan), printing an
intermediate value while debugging, and what compiling costs before it pays off.

    python -m comparisons.dynamic [--quick] [--threads N] [--out DIR]
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np

import eager
import staticgraph as sg

from staticgraph.ops import functional as F

from . import plots, rnn
from .common import Timing, interleaved, run_section, seconds_of, shown, table
from .models import mlp_weights
from .training import SIZES, build_graph, load_digits, logits_of


def norm(x):
    return (x * x).sum().sqrt()


def halve_until_small(x):
    """A loop whose length depends on the data: halve x until its norm is below 1."""
    steps = 0
    while norm(x) > 1:
        x = x * 0.5
        steps += 1
    return x, steps


def halve_while_loop(x):
    """The same loop as one graph node: sg.while_loop decides each trip from the data when the
    graph runs (one compiled body call per trip) and counts the trips."""
    return sg.while_loop(lambda x, trips: norm(x) > 1, lambda x, trips: (x * 0.5, trips + 1),
                         (x, 0))


def halve_as_graph(x, max_steps: int = 32):
    """The same without graph control flow: unrolled to a bound, each step kept or not by
    sg.where on the data (the values are equal; the work is always max_steps)."""
    for _ in range(max_steps):
        x = sg.where(norm(x) > 1, x * 0.5, x)
    return x


def loop_inputs() -> list[np.ndarray]:
    """16 normal numbers times 1, 100 and 1e6: inputs that need few, some and many trips."""
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(16) * scale).astype(np.float32) for scale in (1, 100, 1e6)]


def control_flow(ctx, repeats: int) -> dict:
    """The data-dependent loop three ways, on inputs that need few, some and many trips."""
    inputs = loop_inputs()
    try:
        sg.trace(lambda x: halve_until_small(x)[0], inputs[0])
        traced_error = "(no error)"
    except TypeError as error:
        traced_error = str(error).split(": Python")[0]
    looped, unrolled = sg.trace(halve_while_loop, inputs[0]), sg.trace(halve_as_graph, inputs[0])
    trips, gaps = [], []
    for v in inputs:  # the three give the same values, and the loop the same trip count
        expected, steps = halve_until_small(eager.tensor(v))
        value, graph_trips = looped(v)
        if int(graph_trips) != steps:
            raise AssertionError(f"sg.while_loop took {int(graph_trips)} trips on |x| = "
                                 f"{np.linalg.norm(v):.3g}, the Python loop {steps}")
        for got in (value, unrolled(v)):
            np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6)
            gaps.append(float(np.max(np.abs(got - expected.numpy()))))
        trips.append(steps)
    ways = {"eager": lambda v: halve_until_small(eager.tensor(v)),
            "sg.while_loop": looped, "unrolled (32 steps)": unrolled}
    times = interleaved({f"{way}, {n} trips": (lambda run=run, v=v: run(v))
                         for way, run in ways.items() for v, n in zip(inputs, trips)},
                        repeats * 10, "halve x until |x| < 1")
    us = {way: [times[f"{way}, {n} trips"].summary("us") for n in trips] for way in ways}
    figure = plots.lines(ctx.out / "while_loop.png", "halve x until |x| < 1: time per call",
                         {way: [s["median"] for s in summaries] for way, summaries in us.items()},
                         "trips the data needs", "us", x=trips)
    shapes = sg.trace(lambda x: (x * 2).sum(), np.zeros(4, np.float32))
    retraces = Timing(tuple(seconds_of(lambda n=n: shapes(np.zeros(n, np.float32)))
                            for n in range(5, 25)))  # each a new shape: traced and compiled
    return {"norms": [float(np.linalg.norm(v)) for v in inputs], "trips": trips,
            "max_difference": max(gaps), "tracing_it_raises": traced_error, "us": us,
            "traces_for_21_shapes": shapes.traces, "retrace_ms": retraces.summary("ms"),
            "figure": figure}


def _loop_table(flow: dict) -> list[str]:
    us = flow["us"]
    rows = [[f"{size:.3g}", str(n), *(shown(us[way][k]) for way in us),
             f"{us['eager'][k]['median'] / us['sg.while_loop'][k]['median']:.1f}x",
             f"{us['unrolled (32 steps)'][k]['median'] / us['sg.while_loop'][k]['median']:.1f}x"]
            for k, (size, n) in enumerate(zip(flow["norms"], flow["trips"]))]
    return table(rows, ["|x|", "trips", *us, "eager / while", "unrolled / while"]).splitlines()


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
    print("  a data-dependent loop three ways...", flush=True)
    flow = control_flow(ctx, repeats)
    print("  an RNN's training step: a Python loop against sg.scan...", flush=True)
    recurrent = rnn.run(ctx, 3 * repeats)
    debug, cost = debugging(), compile_cost(repeats)
    text = ["Data-dependent control flow: halve x until |x| < 1, three ways",
            "  eager runs the Python while loop as written; sg.trace of it stops at the "
            f"`while`: {flow['tracing_it_raises']}",
            "  sg.while_loop makes the loop one graph node: each trip is one call of its "
            "compiled body (the next trip's test included), so its time follows the trips "
            "the data needs;",
            "  unrolled to a bound (32) with sg.where instead, the graph does all 32 steps "
            "whatever the data.",
            f"  The three agree (largest difference {flow['max_difference']:.2g}); the loop's "
            f"trips, counted in the graph, are the Python loop's: {flow['trips']}.",
            *("  " + line for line in _loop_table(flow)),
            f"  shapes: sg.trace compiled {flow['traces_for_21_shapes']} graphs for 21 input "
            f"shapes, {shown(flow['retrace_ms'])} each",
            "", recurrent["text"],
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
    figures = [f for f in (flow.pop("figure"), recurrent["figure"]) if f]
    markdown = ["```text", *text, "```", ""] + [f"![{f.stem}]({f.name})" for f in figures]
    return {"text": "\n".join(text), "markdown": "\n".join(markdown),
            "data": {"control_flow": flow, "rnn": recurrent["data"], "debugging": debug,
                     "compile_cost": cost}}


def main(argv: list[str] | None = None) -> dict:
    return run_section(__doc__.splitlines()[0], "dynamic", run, argv)


if __name__ == "__main__":
    main()
