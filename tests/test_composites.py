"""Composite primitives (softmax, log_softmax, gelu, layer_norm, the losses, gather, the
convolutions and pools): one
kernel and one recorded node in eager, a decomposition the compiler expands, and the same
values and gradients either way."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from opspecs import SPECS, spec_graph

import eager
import staticgraph as sg
from staticgraph.graph import Role
from staticgraph.ops import PRIMITIVES
from staticgraph.ops.autodiff import toposort

COMPOSITES = sorted(name for name, p in PRIMITIVES.items() if p.decomposition is not None)
COMPOSITE_SPECS = [s for s in SPECS if any(
    n.role is Role.OP and n.prim.decomposition is not None
    for n in toposort([spec_graph(s).out], lambda n: n.inputs))]


def test_the_composites_are_the_ones_torch_records_as_one_node() -> None:
    assert COMPOSITES == ["avg_pool2d", "batch_norm", "binary_cross_entropy", "conv2d",
                          "conv_transpose2d",
                          "gather", "gelu", "layer_norm", "log_softmax", "max_pool2d",
                          "mse_loss", "nll_loss", "softmax"]


@pytest.mark.parametrize("spec", COMPOSITE_SPECS, ids=[s.name for s in COMPOSITE_SPECS])
def test_the_decomposition_computes_what_the_kernel_computes(spec) -> None:
    """As one node (no passes) and decomposed (the default pipeline), values and gradients
    agree."""
    built = spec_graph(spec)
    fetches = [built.out, *built.grads]
    feeds = dict(zip(built.placeholders, built.arrays))
    whole = sg.Session(built.out.graph, passes=()).run(fetches, feeds)
    decomposed = sg.Session(built.out.graph, debug=True).run(fetches, feeds)
    for a, b in zip(whole, decomposed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    compiled = sg.Session(built.out.graph).compiled(fetches, feeds)
    assert not [n.op for n in compiled.graph.nodes
                if n.role is Role.OP and n.prim.decomposition is not None]


def test_eager_records_one_node_per_composite_as_torch_does() -> None:
    torch = pytest.importorskip("torch")
    names = []
    for lib in (torch, eager):
        x = lib.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        loss = lib.nn.functional.cross_entropy(x, lib.tensor([0, 2]))
        chain, node = [], loss.grad_fn
        while node is not None:
            chain.append(node.name())
            node = next((n for n, _ in node.next_functions if n is not None), None)
        names.append(chain)
    assert names[0] == names[1] == ["NllLossBackward0", "LogSoftmaxBackward0",
                                    "torch::autograd::AccumulateGrad"]


def test_second_order_through_relu_is_zeros_as_in_torch() -> None:
    """relu's gradient keeps its input connected (threshold_backward), so differentiating it
    again gives zeros, not an unused input."""
    torch = pytest.importorskip("torch")
    results = []
    for lib in (torch, eager):
        x = lib.tensor([0.3, -0.7, 1.2, -0.1], requires_grad=True)
        (g,) = lib.autograd.grad(x.relu().sum(), x, create_graph=True)
        (h,) = lib.autograd.grad((g * x).sum(), x)
        results.append((g.tolist(), h.tolist()))
    assert results[0] == results[1] == ([1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0])
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4,), "float64")
        (dx,) = sg.gradients(x.relu().sum(), [x])
        (ddx,) = sg.gradients((dx * x).sum(), [x])
    assert sg.Session(g).run(ddx, {x: [0.3, -0.7, 1.2, -0.1]}).tolist() == [1.0, 0, 1.0, 0]


def test_a_composite_built_by_the_compiler_names_the_users_line() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((2, 3), name="x")
        out, line = sg.softmax(x), inspect.currentframe().f_lineno
    compiled = sg.Session(g, passes=("decompose",)).compiled(out, {x: np.ones((2, 3))})
    lines = {n.location for n in compiled.graph.nodes if n.role is Role.OP}
    assert lines == {out.location} and out.location.endswith(f"test_composites.py:{line}")
    assert {n.origin for n in compiled.graph.nodes if n.role is Role.OP} == {out}
