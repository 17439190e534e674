"""The op-spec table through define-and-run: shape rules at build time, forward values and
first/second-order symbolic gradients against finite differences, and equality with eager."""

from __future__ import annotations

import numpy as np
import pytest
from opspecs import EAGER_F, SPEC_IDS, SPECS, OpSpec
from test_eager_ops import _diff_indices, _numeric_gradient, _sample

import eager
import staticgraph as sg


def _build(spec: OpSpec, arrays, unknown_batch: bool = False):
    """Placeholders for the inputs (optionally with the first dimension unknown: of the first
    input only where the others are parameters, whose shapes are known)."""
    graph = sg.Graph()
    batched = 1 if "parameters" in spec.tags else len(arrays)
    with graph.as_default():
        xs = [sg.placeholder((None,) + a.shape[1:] if unknown_batch and a.ndim and k < batched
                             else a.shape, a.dtype, name=f"x{k}")
              for k, a in enumerate(arrays)]
        out = spec.fn(EAGER_F, *xs)
    return graph, xs, out


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_build_time_shape_and_dtype_match_the_run(spec: OpSpec) -> None:
    arrays = _sample(spec)
    graph, xs, out = _build(spec, arrays)
    value = sg.Session(graph).run(out, dict(zip(xs, arrays)))
    # None only where the data decides (how many elements a boolean mask selects)
    assert len(out.shape) == value.ndim and out.dtype == value.dtype
    assert all(s == v or (s is None and spec.name == "mask")
               for s, v in zip(out.shape, value.shape))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_unknown_batch_dimension(spec: OpSpec) -> None:
    """With a None batch dimension the static shape keeps None where it cannot know, agrees
    with the run elsewhere, and the values and gradients are unchanged."""
    arrays = _sample(spec)
    graph, xs, out = _build(spec, arrays, unknown_batch=True)
    with graph.as_default():
        diff = [x for x, i in zip(xs, spec.inputs) if i.differentiable]
        grads = sg.gradients(out.sum() if out.ndim else out, diff, unconnected="zero")
    value, *grad_values = sg.Session(graph).run([out] + grads, dict(zip(xs, arrays)))
    assert len(out.shape) == value.ndim
    assert all(s is None or s == v for s, v in zip(out.shape, value.shape))
    np.testing.assert_allclose(value, spec.ref(*arrays), rtol=1e-12, atol=1e-12)
    for g, gv in zip(grads, grad_values):
        assert all(s is None or s == v for s, v in zip(g.shape, gv.shape))


def _weights(spec: OpSpec, arrays) -> np.ndarray:
    """Random cotangent weights, shaped like the output (which eager knows exactly)."""
    shape = spec.fn(EAGER_F, *[eager.tensor(a) for a in arrays]).shape
    return np.random.default_rng(1).standard_normal(shape)


def _graph_loss(spec: OpSpec, arrays, weights):
    graph, xs, out = _build(spec, arrays)
    with graph.as_default():
        loss = (out * sg.constant(weights)).sum()
    diff = [xs[k] for k in _diff_indices(spec)]
    return graph, xs, loss, diff


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_gradients_match_finite_differences_and_eager(spec: OpSpec) -> None:
    arrays = _sample(spec)
    weights = _weights(spec, arrays)
    graph, xs, loss, diff = _graph_loss(spec, arrays, weights)
    with graph.as_default():
        grads = sg.gradients(loss, diff, unconnected="zero")
    session = sg.Session(graph)
    values = session.run(grads, dict(zip(xs, arrays)))

    def f(a):
        return float(session.run(loss, dict(zip(xs, a))))
    for k, value in zip(_diff_indices(spec), values):
        assert value.shape == arrays[k].shape
        np.testing.assert_allclose(value, _numeric_gradient(f, arrays, k), rtol=1e-6, atol=1e-7)
    # the same rules in eager give the same numbers
    tensors = [eager.tensor(a, requires_grad=i.differentiable)
               for a, i in zip(arrays, spec.inputs)]
    (spec.fn(EAGER_F, *tensors) * eager.tensor(weights)).sum().backward()
    for k, value in zip(_diff_indices(spec), values):
        expected = tensors[k].grad.numpy() if tensors[k].grad is not None else 0 * value
        np.testing.assert_allclose(value, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_second_order_gradients_match_finite_differences(spec: OpSpec) -> None:
    arrays = _sample(spec)
    weights = _weights(spec, arrays)
    directions = [np.random.default_rng(2 + k).standard_normal(arrays[k].shape)
                  for k in _diff_indices(spec)]
    graph, xs, loss, diff = _graph_loss(spec, arrays, weights)
    with graph.as_default():
        grads = sg.gradients(loss, diff, unconnected="zero")
        directional = sum((g * sg.constant(v)).sum() for g, v in zip(grads, directions))
        hvps = sg.gradients(directional, diff, unconnected="zero")
    session = sg.Session(graph)
    values = session.run(hvps, dict(zip(xs, arrays)))

    def f(a):
        return float(session.run(directional, dict(zip(xs, a))))
    for k, value in zip(_diff_indices(spec), values):
        np.testing.assert_allclose(value, _numeric_gradient(f, arrays, k), rtol=1e-5, atol=1e-6)
