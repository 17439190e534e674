"""An RNN's training step both ways: h = tanh(x_t @ Wx + h @ Wh + b) over 50 steps, then
cross-entropy on a linear read-out of the last h. Eager (and PyTorch) run the Python loop and
record every op of every step on the tape; the graph is one ``sg.scan`` whose body (the cell)
is compiled once, and whose gradient is a reverse scan that recomputes each step's body from
its recorded input (our design: checkpoint each trip's inputs, recompute the body)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

import eager
import staticgraph as sg
from staticgraph.compiler import Compiled
from staticgraph.graph import Role
from staticgraph.ops import functional as F
from staticgraph.passes.memory import BUFFER, FRESH, nbytes

from . import plots
from .common import interleaved, seconds_of, shown, table
from .training import count_eager_ops, peak_bytes

STEPS, BATCH, INPUTS, HIDDEN, CLASSES = 50, 32, 16, 64, 10
LR = 0.05
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}  # float32 sums of 50 steps, in different orders


def rnn_weights(seed: int = 0) -> list[np.ndarray]:
    """Wx, Wh, b as torch.nn.RNN initialises them (uniform within 1/sqrt(hidden)), then the
    read-out Wo, bo as torch.nn.Linear does (the same bound here), float32."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(HIDDEN)
    shapes = [(INPUTS, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
    return [rng.uniform(-bound, bound, shape).astype(np.float32) for shape in shapes]


def sequences(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of random sequences (STEPS, BATCH, INPUTS), labels, and the first h (zeros)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((STEPS, BATCH, INPUTS)).astype(np.float32),
            rng.integers(0, CLASSES, BATCH), np.zeros((BATCH, HIDDEN), np.float32))


def cell(h, x, wx, wh, b):
    """One step, written once on the shared surface: eager Tensors, graph Nodes, torch."""
    return (x @ wx + h @ wh + b).tanh()


def readout_loss(functional, h, labels, wo, bo):
    return functional.cross_entropy(h @ wo + bo, labels)


def loss_by_run(functional, xs, labels, h, wx, wh, b, wo, bo):
    """Define-by-run: the Python loop runs now, each step's ops recorded as they run."""
    for t in range(STEPS):
        h = cell(h, xs[t], wx, wh, b)
    return readout_loss(functional, h, labels, wo, bo)


def loss_scanned(xs, labels, h0, wx, wh, b, wo, bo):
    """Define-and-run: the loop is one scan node, its body the cell; the loss reads the last
    of the stacked hs."""
    hs = sg.scan(lambda h, x: cell(h, x, wx, wh, b), xs, initializer=h0)
    return readout_loss(F, hs[-1], labels, wo, bo)


@dataclass
class Mode:
    """A way to train: one SGD step (returns the loss) and the loss and gradients at the
    current weights (without a step)."""
    step: Callable[[], float]
    gradients: Callable[[], tuple[float, list[np.ndarray]]]


def by_run(lib, functional, data) -> Mode:
    """Eager or torch (``lib``, with its ``functional``): the same code, the same loop."""
    xs, labels, h0 = (lib.from_numpy(a) for a in data)
    params = [lib.tensor(w, requires_grad=True) for w in rnn_weights()]
    opt = lib.optim.SGD(params, lr=LR)

    def backward():
        opt.zero_grad()
        loss = loss_by_run(functional, xs, labels, h0, *params)
        loss.backward()
        return loss

    def step() -> float:
        loss = backward()
        opt.step()
        return loss.item()

    def gradients():
        return backward().item(), [p.grad.numpy().copy() for p in params]
    return Mode(step, gradients)


def compiled(data) -> tuple[Mode, SimpleNamespace]:
    """The graph: the step, the loss and gradients, and the loss alone, each compiled when
    first run."""
    graph = sg.Graph()
    with graph.as_default():
        xs = sg.placeholder((STEPS, None, INPUTS), name="xs")
        labels = sg.placeholder((None,), "int64", name="labels")
        h0 = sg.placeholder((None, HIDDEN), name="h0")
        names = ("wx", "wh", "b", "wo", "bo")
        params = [sg.Variable(w, name=n) for w, n in zip(rnn_weights(), names)]
        loss = loss_scanned(xs, labels, h0, *params)
        grads = sg.gradients(loss, params)
        update = sg.optim.SGD(LR).minimize(loss)
    session = sg.Session(graph)
    feed = dict(zip((xs, labels, h0), data))

    def gradients():
        value, *arrays = session.run([loss, *grads], feed)
        return float(value), arrays
    mode = Mode(lambda: float(session.run([loss, update], feed)[0]), gradients)
    return mode, SimpleNamespace(forward=lambda: session.run(loss, feed),
                                 plan=lambda: session.compiled([loss, update], feed))


def _gaps(reference, other) -> dict:
    """How far ``other``'s loss and gradients are from ``reference``'s (largest absolute
    difference, and relative to the largest gradient)."""
    (loss_a, grads_a), (loss_b, grads_b) = reference, other
    grad_gap = max(float(np.max(np.abs(a - b))) for a, b in zip(grads_a, grads_b))
    return {"loss": abs(loss_a - loss_b), "gradients": grad_gap,
            "gradients_relative": grad_gap / max(float(np.max(np.abs(a))) for a in grads_a)}


def per_trip_values(plan: Compiled) -> list[sg.Node]:
    """The values the plan allocates that hold one entry per step of the sequence (the
    stacked hs, the history the backward reads, their cotangents)."""
    return [n for n in plan.graph.nodes if n.shape[:1] == (STEPS,)
            and plan.memory.storage.get(n) in (BUFFER, FRESH)]


def measure(ctx, repeats: int) -> dict:
    """Check the modes agree from the same weights, then time their steps taking turns (the
    same number of steps each), and measure memory and work per step."""
    data = sequences()
    modes = {"eager": by_run(eager, F, data)}
    modes["compiled"], graph = compiled(data)
    if ctx.torch is not None:
        modes["torch"] = by_run(ctx.torch, ctx.torch.nn.functional, data)
    start = {name: mode.gradients() for name, mode in modes.items()}  # the same weights
    gaps = {name: _gaps(start["eager"], start[name]) for name in modes if name != "eager"}
    for name in gaps:
        for ours, theirs in zip(start["eager"][1], start[name][1]):
            np.testing.assert_allclose(theirs, ours, **TOLERANCE,
                                       err_msg=f"RNN gradients: {name} against eager")
    first = {name: seconds_of(mode.step) for name, mode in modes.items()}  # compiling too
    programs = {name: mode.step for name, mode in modes.items()}
    programs["compiled, loss only"] = graph.forward
    times = interleaved(programs, repeats, "RNN training step (50 steps)")
    plan = graph.plan()
    after = {name: mode.gradients()[0] for name, mode in modes.items()}  # as many steps each
    return {
        "sizes": {"steps": STEPS, "batch": BATCH, "inputs": INPUTS, "hidden": HIDDEN,
                  "classes": CLASSES, "lr": LR},
        "loss_at_start": {name: loss for name, (loss, _) in start.items()},
        "gaps_from_eager": gaps, "tolerance": TOLERANCE,
        "loss_after_timed_steps": after,
        "first_step_ms": {name: s * 1e3 for name, s in first.items()},
        "ms": {name: t.summary("ms") for name, t in times.items()},
        "eager_peak_bytes": peak_bytes(modes["eager"].step),
        "compiled_peak_bytes": peak_bytes(modes["compiled"].step),
        "planned_peak_bytes": plan.planned_peak_bytes,
        "per_trip_arrays": [list(n.shape) for n in per_trip_values(plan)],
        "per_trip_bytes": sum(nbytes(n) for n in per_trip_values(plan)),
        "compiled_kernels": plan.executable.kernels_per_run,
        "compiled_body_calls": STEPS * sum(n.role is Role.CONTROL for n in plan.graph.nodes),
        "eager_ops": count_eager_ops(modes["eager"].step),
    }


SHORT = {"eager": "eager", "compiled": "sg.scan", "torch": "PyTorch",
         "compiled, loss only": "sg.scan, loss only"}


def _kb(n: int) -> str:
    return f"{n / 1e3:.0f}"


def run(ctx, repeats: int) -> dict:
    """The measurements, a table of them and what each side pays, in words."""
    r = measure(ctx, repeats)
    ms = {name: t["median"] for name, t in r["ms"].items()}
    peaks = {"eager": f"{_kb(r['eager_peak_bytes'])} (tracemalloc)",
             "compiled": f"{_kb(r['planned_peak_bytes'])} planned, "
                         f"{_kb(r['compiled_peak_bytes'])} measured"}
    labels = {"eager": "eager (Python loop)", "compiled": "compiled (sg.scan)",
              "compiled, loss only": "  compiled, loss only", "torch": "PyTorch (Python loop)"}
    rows = [[labels[name], f"{r['loss_at_start'][name]:.4f}" if name in r["loss_at_start"]
             else "", shown(r["ms"][name]), f"{ms[name] / ms['compiled']:.2f}x",
             f"{r['first_step_ms'][name]:.1f}" if name in r["first_step_ms"] else "",
             peaks.get(name, "-" if name == "torch" else "")] for name in labels if name in ms]
    header = ["mode", "loss at start", "time/step: median (min-max)", "/ compiled",
              "first step ms", "peak KB/step (numpy)"]
    gaps = "; ".join(f"{name} {g['gradients']:.2g} ({g['gradients_relative']:.1g} of the "
                     f"largest), loss {g['loss']:.2g}" for name, g in r["gaps_from_eager"].items())
    after = ", ".join(f"{name} {loss:.4f}" for name, loss in r["loss_after_timed_steps"].items())
    backward = ms["compiled"] - ms["compiled, loss only"]
    arrays = r["per_trip_arrays"]
    shapes = ", ".join(sorted({str(tuple(s)) for s in arrays}))
    first = r["first_step_ms"]["compiled"]
    compiling, saved = first - ms["compiled"], ms["eager"] - ms["compiled"]
    text = [
        f"An RNN, h = tanh(x_t @ Wx + h @ Wh + b) over {STEPS} steps (batch {BATCH}, "
        f"{INPUTS} inputs, {HIDDEN} hidden), cross-entropy on a read-out of the last h "
        f"({CLASSES} classes); one training step = forward, backward, SGD update, float32",
        table(rows, header),
        f"gradients from the same weights, largest difference from eager's: {gaps} "
        f"(checked within rtol {TOLERANCE['rtol']:g}, atol {TOLERANCE['atol']:g}); loss after "
        "the same number of steps each: " + after,
        "What each side pays:",
        f"  eager: Python for every op of every step, forward and backward: "
        f"{r['eager_ops']} recorded ops per training step, "
        f"{1e3 * ms['eager'] / STEPS:.0f} us per time step" +
        (f" (PyTorch keeps the same tape in C++: {1e3 * ms['torch'] / STEPS:.0f} us)."
         if "torch" in ms else "."),
        f"  compiled: one body call per trip, {r['compiled_body_calls']} per step, and "
        f"{r['compiled_kernels']} kernels outside the loops. The loss alone ({STEPS} calls of "
        f"the cell) takes {ms['compiled, loss only']:.2f} ms, "
        f"{1e3 * ms['compiled, loss only'] / STEPS:.0f} us a trip. A training step's forward "
        "scan also records h before each trip, and its gradient is a reverse scan that "
        "recomputes each trip's cell from that h and pulls the cotangent back through it "
        "(checkpoint each trip's inputs, recompute the body): with the update, "
        f"{backward:.2f} ms more, {1e3 * backward / STEPS:.0f} us a trip.",
        f"  memory: the plan holds {len(arrays)} values with one entry per time step "
        f"({shapes}: the stacked hs, h's history, their cotangents), "
        f"{_kb(r['per_trip_bytes'])} KB of its {_kb(r['planned_peak_bytes'])} KB; eager's "
        "tape keeps each step's intermediates instead.",
        f"  compiling: the first compiled step took {first:.1f} ms, {compiling:.1f} ms more "
        f"than a later one; " + (f"saving {saved:.2f} ms a step, it is paid back after "
                                 f"{compiling / saved:.0f} steps." if saved > 0 else
                                 "no step is faster than eager's: never paid back.")]
    figure = plots.bars(ctx.out / "rnn_step.png",
                        f"RNN training step ({STEPS} steps): median ms",
                        {SHORT[name]: m for name, m in ms.items()}, "ms")
    return {"text": "\n".join(text), "data": r, "figure": figure}
