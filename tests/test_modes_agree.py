"""The point of the shared table: one model trained in eager and as a compiled graph, from
the same initial weights, follows the same loss curve step by step."""

from __future__ import annotations

import numpy as np
import pytest

import eager
import staticgraph as sg
from staticgraph.ops import functional as F

STEPS = 15


def _data(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(dtype)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    weights = [rng.standard_normal(s).astype(dtype) * 0.5 for s in ((6, 16), (16,), (16, 3), (3,))]
    return x, y, weights


def mlp(x, w1, b1, w2, b2):
    """Written once with the shared surface: runs on Tensors and on Nodes."""
    return (x @ w1 + b1).relu() @ w2 + b2


def _eager_losses(optimizer, dtype):
    x, y, weights = _data(dtype)
    params = [eager.tensor(w, requires_grad=True) for w in weights]
    opt = optimizer(eager.optim, params)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(mlp(eager.tensor(x), *params), eager.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _graph_losses(optimizer, dtype):
    x, y, weights = _data(dtype)
    g = sg.Graph()
    with g.as_default():
        xs = sg.placeholder((None, 6), dtype, name="x")
        ys = sg.placeholder((None,), "int64", name="y")
        params = [sg.Variable(w) for w in weights]
        loss = sg.cross_entropy(mlp(xs, *params), ys)
        update = optimizer(sg.optim, None).minimize(loss)
    sess = sg.Session(g)
    return [float(sess.run([loss, update], {xs: x, ys: y})[0]) for _ in range(STEPS)]


OPTIMIZERS = {
    "sgd": lambda m, p: m.SGD(*([p] if p else []), lr=0.1),
    "sgd_momentum_decay": lambda m, p: m.SGD(*([p] if p else []), lr=0.1, momentum=0.9,
                                             weight_decay=1e-3),
    "sgd_nesterov": lambda m, p: m.SGD(*([p] if p else []), lr=0.05, momentum=0.9,
                                       nesterov=True),
    "sgd_dampening": lambda m, p: m.SGD(*([p] if p else []), lr=0.1, momentum=0.9,
                                        dampening=0.3),
    "adam": lambda m, p: m.Adam(*([p] if p else []), lr=0.01),
    "adam_decay": lambda m, p: m.Adam(*([p] if p else []), lr=0.01, betas=(0.8, 0.99),
                                      weight_decay=1e-2),
    "adam_amsgrad": lambda m, p: m.Adam(*([p] if p else []), lr=0.01, amsgrad=True),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float64_loss_curves_are_the_same(name: str) -> None:
    ours = _eager_losses(OPTIMIZERS[name], np.float64)
    theirs = _graph_losses(OPTIMIZERS[name], np.float64)
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", ["sgd_momentum_decay", "adam"])
def test_float32_loss_curves_agree_to_float32_precision(name: str) -> None:
    np.testing.assert_allclose(_graph_losses(OPTIMIZERS[name], np.float32),
                               _eager_losses(OPTIMIZERS[name], np.float32), rtol=1e-5)
