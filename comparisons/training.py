"""Training, both ways: an MLP and a CNN classifier of the 8x8 handwritten digits, each from
the same initial weights in eager mode, as a compiled graph, and in PyTorch when installed."""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import eager
import staticgraph as sg
from staticgraph.compiler import Compiled
from staticgraph.ops import functional as F

from . import plots
from .common import interleaved, shown, table
from .models import cnn_weights, mlp_weights

SIZES = (64, 256, 10)
BATCH, LR, MOMENTUM = 64, 0.05, 0.9


def load_digits(seed: int = 0):
    """The 1,797 digits shipped in ``comparisons/data``: 80% to train, 20% to test."""
    data = np.load(Path(__file__).parent / "data" / "digits.npz")
    images = (data["images"].reshape(-1, 64) / 16.0).astype(np.float32)
    labels = data["labels"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    split = int(0.8 * len(labels))
    return (images[order[:split]], labels[order[:split]],
            images[order[split:]], labels[order[split:]])


def logits_of(x, w1, b1, w2, b2):
    """Written once on the shared surface: runs on eager Tensors, graph Nodes, torch."""
    return (x @ w1 + b1).relu() @ w2 + b2


def cnn_logits_of(F, x, c1, k1, c2, k2, w, b):
    """conv 16@3x3, relu, 2x2 max pool, conv 32@3x3, relu, 2x2 max pool, linear: written once
    with ``F``, torch.nn.functional's names (ours for eager and graphs, torch's for torch)."""
    h = F.max_pool2d(F.conv2d(x.reshape(-1, 1, 8, 8), c1, k1, padding=1).relu(), 2)
    h = F.max_pool2d(F.conv2d(h, c2, k2, padding=1).relu(), 2)
    return h.flatten(1) @ w + b


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    weights: Callable[[], list[np.ndarray]]
    logits: Callable[..., object]  # logits(F, images (N, 64), *weights)


MLP = Model("MLP", f"MLP {'-'.join(map(str, SIZES))}", lambda: mlp_weights(SIZES),
            lambda F, x, *params: logits_of(x, *params))
CNN = Model("CNN", "CNN conv 16@3x3-pool-conv 32@3x3-pool-10", cnn_weights, cnn_logits_of)


@dataclass
class Run:
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)  # each step as training ran
    accuracy: float = 0.0
    peak_bytes: int | None = None
    kernels_per_step: int | None = None
    step_ms: dict | None = None  # one more step, timed with the modes taking turns


Step = Callable[[np.ndarray], float]  # a training step on a batch's indices, returning the loss


def batches(n: int, epochs: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - BATCH + 1, BATCH):
            yield order[start:start + BATCH]


def _fit(step, n: int, epochs: int, progress) -> Run:
    """Run ``step(batch indices) -> loss`` over the epochs, timing each step."""
    run = Run()
    for k, idx in enumerate(batches(n, epochs)):
        start = time.perf_counter()
        run.losses.append(step(idx))
        run.step_seconds.append(time.perf_counter() - start)
        progress(k)
    return run


def _train_by_run(lib, functional, model: Model, data, epochs: int, progress):
    """Define-by-run training, the same code for eager and torch (``lib``, with its
    ``functional``); returns the run and the step function (for the measurements made
    after it)."""
    x_train, y_train, x_test, y_test = data
    params = [lib.tensor(w, requires_grad=True) for w in model.weights()]
    opt = lib.optim.SGD(params, lr=LR, momentum=MOMENTUM)

    def step(idx):
        opt.zero_grad()
        loss = functional.cross_entropy(model.logits(functional, lib.from_numpy(x_train[idx]),
                                                     *params), lib.from_numpy(y_train[idx]))
        loss.backward()
        opt.step()
        return loss.item()
    run = _fit(step, len(y_train), epochs, progress)
    with lib.no_grad():
        predicted = model.logits(functional, lib.from_numpy(x_test), *params).argmax(1).numpy()
    run.accuracy = float(np.mean(predicted == y_test))
    return run, step


def train_eager(data, epochs: int, progress, model: Model = MLP) -> tuple[Run, Step]:
    run, step = _train_by_run(eager, F, model, data, epochs, progress)
    idx = next(batches(len(data[1]), 1))  # measured on extra steps, after the test
    run.peak_bytes = peak_bytes(lambda: step(idx))
    run.kernels_per_step = count_eager_ops(lambda: step(idx))
    return run, step


def build_graph(model: Model = MLP):
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, SIZES[0]), name="images")
        y = sg.placeholder((None,), "int64", name="labels")
        params = [sg.Variable(w, name=f"w{k}") for k, w in enumerate(model.weights())]
        logits = model.logits(F, x, *params)
        loss = sg.cross_entropy(logits, y)
        update = sg.optim.SGD(LR, momentum=MOMENTUM).minimize(loss)
    return g, x, y, logits, loss, update


def train_compiled(data, epochs: int, progress, model: Model = MLP
                   ) -> tuple[Run, Step, Compiled]:
    x_train, y_train, x_test, y_test = data
    g, x, y, logits, loss, update = build_graph(model)
    session = sg.Session(g)

    def step(idx):
        return float(session.run([loss, update], {x: x_train[idx], y: y_train[idx]})[0])
    run = _fit(step, len(y_train), epochs, progress)
    run.accuracy = float(np.mean(session.run(logits, {x: x_test}).argmax(1) == y_test))
    idx = next(batches(len(y_train), 1))  # measured on an extra step, after the test
    run.peak_bytes = peak_bytes(lambda: step(idx))
    compiled = session.compiled([loss, update], {x: x_train[idx], y: y_train[idx]})
    run.kernels_per_step = compiled.executable.kernels_per_run
    return run, step, compiled


def train_torch(torch, data, epochs: int, progress, model: Model = MLP) -> tuple[Run, Step]:
    run, step = _train_by_run(torch, torch.nn.functional, model, data, epochs, progress)
    idx = next(batches(len(data[1]), 1))
    run.kernels_per_step = _count_torch_ops(torch, lambda: step(idx))
    return run, step


def _count_torch_ops(torch, step) -> int:
    """ATen operators one torch step dispatches, forward and backward, counted by a
    TorchDispatchMode (the level where torch picks a kernel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counting(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counting.count += 1
            return func(*args, **(kwargs or {}))
    with Counting():
        step()
    return Counting.count


def peak_bytes(step) -> int:
    """Bytes numpy allocated at the peak of one step (tracemalloc sees numpy's memory)."""
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def count_eager_ops(step) -> int:
    """Primitive kernels one eager step runs, forward and backward (counted by wrapping
    Tensor._apply for the duration of one step)."""
    count = 0
    original = eager.Tensor._apply

    def counting(self, *args, **kwargs):
        nonlocal count
        count += 1
        return original(self, *args, **kwargs)
    eager.Tensor._apply = counting
    try:
        step()
    finally:
        eager.Tensor._apply = original
    return count


def run(ctx) -> dict:
    epochs = 2 if ctx.quick else 40 if ctx.full else 12
    data = load_digits()
    sections = [_train_both_ways(ctx, model, data, epochs) for model in (MLP, CNN)]
    accuracies = {s["model"]: s["data"]["compiled"]["accuracy"] for s in sections}
    verdict = (f"The CNN's test accuracy {100 * accuracies['CNN']:.1f}% against the MLP's "
               f"{100 * accuracies['MLP']:.1f}% (compiled).")
    text = "\n\n".join([*(s["text"] for s in sections), verdict])
    return {"text": text, "markdown": "\n\n".join([*(s["markdown"] for s in sections), verdict]),
            "data": {s["model"]: s["data"] for s in sections} | {"accuracy": accuracies},
            "compiled": sections[0]["compiled"], "cnn_compiled": sections[1]["compiled"]}


def _train_both_ways(ctx, model: Model, data, epochs: int) -> dict:
    steps = epochs * (len(data[1]) // BATCH)
    runs: dict[str, Run] = {}

    def progress(name: str):
        def report(k: int) -> None:  # a live counter on a terminal, one line in a log
            if sys.stdout.isatty() and (k + 1) % max(1, steps // 20) == 0:
                print(f"\r  {model.name} {name}: step {k + 1}/{steps}", end="", flush=True)
            if k + 1 == steps:
                print(f"\r  {model.name} {name}: {steps} steps done", flush=True)
        return report
    steps_of: dict[str, Step] = {}
    runs["eager"], steps_of["eager"] = train_eager(data, epochs, progress("eager"), model)
    runs["compiled"], steps_of["compiled"], compiled = train_compiled(
        data, epochs, progress("compiled"), model)
    if ctx.torch is not None:
        runs["torch"], steps_of["torch"] = train_torch(ctx.torch, data, epochs,
                                                      progress("torch"), model)
    # Per-step times from steps taken in turns after training (the weights train on a little,
    # after the test): run one after the other, a busy minute would slow one mode alone.
    idx = next(batches(len(data[1]), 1))
    timings = interleaved({name: (lambda step=step: step(idx)) for name, step in
                           steps_of.items()}, 30 if ctx.quick else 150,
                          f"digits {model.name} training step")
    for name, timing in timings.items():
        runs[name].step_ms = timing.summary("ms")
    ours, theirs = np.array(runs["eager"].losses), np.array(runs["compiled"].losses)
    gap = float(np.max(np.abs(ours - theirs)))
    rows = [[name, f"{r.losses[-1]:.4f}", f"{100 * r.accuracy:.1f}%", shown(r.step_ms),
             "-" if r.peak_bytes is None else f"{r.peak_bytes / 1e3:.0f}",
             str(r.kernels_per_step)] for name, r in runs.items()]
    header = ["mode", "final loss", "test accuracy", "time/step: median (min-max)",
              "peak KB/step (numpy)", "kernels/step"]
    text = [f"{model.description} on 1,437 digits (360 held out), batch {BATCH}, "
            f"SGD lr {LR} momentum {MOMENTUM}, {epochs} epochs = {steps} steps, float32",
            table(rows, header),
            f"eager and compiled loss curves: largest difference {gap:.3g} over {steps} steps"
            + (" (identical)" if gap == 0 else "")]
    if "torch" in runs:
        torch_gap = float(np.max(np.abs(ours - np.array(runs["torch"].losses))))
        text.append(f"eager and PyTorch: largest difference {torch_gap:.3g} (float32 rounding "
                    "in a different order)")
    prefix = "" if model is MLP else f"{model.name.lower()}_"
    figures = [
        plots.lines(ctx.out / f"{prefix}loss_curves.png",
                    f"{model.name} training loss, same initial weights",
                    {k: r.losses for k, r in runs.items()}, "step", "cross-entropy", log=True),
        plots.lines(ctx.out / f"{prefix}time_per_step.png",
                    f"{model.name}: time per training step, as training ran",
                    {k: [1e3 * t for t in r.step_seconds] for k, r in runs.items()}, "step",
                    "ms", log=True),
        plots.bars(ctx.out / f"{prefix}memory_per_step.png",
                   f"{model.name}: peak numpy memory of one step (KB)",
                   {k: r.peak_bytes / 1e3 for k, r in runs.items() if r.peak_bytes}, "KB")]
    markdown = ["```text", *text, "```", ""] + [f"![{f.stem}]({f.name})" for f in figures if f]
    return {"model": model.name, "text": "\n".join(text), "markdown": "\n".join(markdown),
            "data": {name: vars(r) for name, r in runs.items()} | {"max_loss_gap": gap},
            "compiled": compiled}
