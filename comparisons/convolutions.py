"""Convolutions' speed targets, side by side in one run: a LeNet training step and one
conv2d forward and backward, compiled against PyTorch eager (and eager against both)."""

from __future__ import annotations

import numpy as np

import eager
import staticgraph as sg
from staticgraph.ops import functional as F

from .common import interleaved
from .models import lenet_logits, lenet_weights


def _graph_step(weights, images, labels):
    """A compiled SGD step of ``lenet_logits`` (as run() arguments)."""
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder((None, 1, 28, 28), name="images")
        y = sg.placeholder((None,), "int64", name="labels")
        loss = F.cross_entropy(lenet_logits(F, x, *(sg.Variable(w) for w in weights)), y)
        update = sg.optim.SGD(0.01).minimize(loss)
    session = sg.Session(graph)
    return lambda: session.run([loss, update], {x: images, y: labels})


def _eager_step(lib, functional, weights, images, labels):
    """An SGD step by run, the same code for eager and torch."""
    params = [lib.tensor(w, requires_grad=True) for w in weights]
    optimizer = lib.optim.SGD(params, lr=0.01)
    x, y = lib.tensor(images), lib.tensor(labels)

    def step():
        optimizer.zero_grad()
        functional.cross_entropy(lenet_logits(functional, x, *params), y).backward()
        optimizer.step()
    return step


def lenet_step(torch, repeats: int) -> dict:
    """One training step of LeNet on a batch of 64 1x28x28 images."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    weights = lenet_weights()
    steps = {"compiled": _graph_step(weights, images, labels),
             "eager": _eager_step(eager, F, weights, images, labels)}
    if torch is not None:
        steps["torch"] = _eager_step(torch, torch.nn.functional, weights, images, labels)
    return _compared(interleaved(steps, repeats, "LeNet step (batch 64)"))


def conv_forward_backward(torch, repeats: int) -> dict:
    """conv2d of a batch of 32 64x32x32 images with 64 3x3 filters (padding 1), and the
    gradients of its input and weights."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    weight = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    cotangent = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder(images.shape, name="x")
        w = sg.placeholder(weight.shape, name="w")
        out = F.conv2d(x, w, padding=1)
        grads = sg.gradients(out, [x, w], grad_ys=sg.constant(cotangent))
    session = sg.Session(graph)
    runs = {"compiled": lambda: session.run([out, *grads], {x: images, w: weight})}
    if torch is not None:
        tx, tw = (torch.tensor(a, requires_grad=True) for a in (images, weight))
        tg = torch.tensor(cotangent)

        def by_torch():
            result = torch.nn.functional.conv2d(tx, tw, padding=1)
            torch.autograd.grad(result, [tx, tw], tg)
        runs["torch"] = by_torch
    return _compared(interleaved(runs, repeats, "conv2d fwd+bwd 32x64x32x32, 3x3"))


def _compared(times: dict) -> dict:
    result = {f"{name}_ms": t.summary("ms") for name, t in times.items()}
    if "torch" in times:
        result["compiled_vs_torch"] = times["compiled"].median / times["torch"].median
    if "eager" in times and "torch" in times:
        result["eager_vs_torch"] = times["eager"].median / times["torch"].median
    return result
