"""The op-spec table through eager mode: forward values against numpy, first- and
second-order gradients against float64 central finite differences, and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from opspecs import EAGER_F, SPEC_IDS, SPECS, OpSpec, torch_f

import eager

EPS = 1e-6


def _sample(spec: OpSpec, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [i.sample(rng, dtype) for i in spec.inputs]


def _tensors(spec: OpSpec, arrays: list[np.ndarray], requires_grad: bool = True):
    return [eager.tensor(a, requires_grad=requires_grad and i.differentiable)
            for i, a in zip(spec.inputs, arrays)]


def _weighted_loss(spec: OpSpec, arrays, weights, create_graph=False):
    """sum(fn(xs) * w): a scalar whose gradient is the VJP of fn with cotangent w."""
    xs = _tensors(spec, arrays)
    loss = (spec.fn(EAGER_F, *xs) * eager.tensor(weights)).sum()
    diff = [x for x, i in zip(xs, spec.inputs) if i.differentiable]
    return loss, diff


def _numeric_gradient(f, arrays, index):
    x = arrays[index]
    grad = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        saved = x[j]
        x[j] = saved + EPS
        plus = f(arrays)
        x[j] = saved - EPS
        minus = f(arrays)
        x[j] = saved
        grad[j] = (plus - minus) / (2 * EPS)
    return grad


def _diff_indices(spec: OpSpec) -> list[int]:
    return [k for k, i in enumerate(spec.inputs) if i.differentiable]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_forward_matches_numpy(spec: OpSpec) -> None:
    arrays = _sample(spec)
    out = spec.fn(EAGER_F, *_tensors(spec, arrays, requires_grad=False))
    expected = spec.ref(*arrays)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_float32_stays_float32(spec: OpSpec) -> None:
    arrays = _sample(spec, dtype=np.float32)
    out = spec.fn(EAGER_F, *_tensors(spec, arrays, requires_grad=False))
    assert out.dtype == eager.float32
    wide = [a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays]
    np.testing.assert_allclose(out.numpy(), spec.ref(*wide),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_first_order_gradients_match_finite_differences(spec: OpSpec) -> None:
    arrays = _sample(spec)
    out_shape = spec.fn(EAGER_F, *_tensors(spec, arrays, False)).shape
    weights = np.random.default_rng(1).standard_normal(out_shape)
    loss, diff = _weighted_loss(spec, arrays, weights)
    grads = eager.autograd.grad(loss, diff, allow_unused=True)

    def f(a):
        with eager.no_grad():
            return _weighted_loss(spec, a, weights)[0].item()
    for g, k in zip(grads, _diff_indices(spec)):
        numeric = _numeric_gradient(f, arrays, k)
        if g is None:  # an input that only lends its shape (expand_as) gets no gradient
            assert not numeric.any()
            continue
        assert g.shape == arrays[k].shape and g.dtype == eager.float64
        np.testing.assert_allclose(g.numpy(), numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_second_order_gradients_match_finite_differences(spec: OpSpec) -> None:
    arrays = _sample(spec)
    out_shape = spec.fn(EAGER_F, *_tensors(spec, arrays, False)).shape
    weights = np.random.default_rng(1).standard_normal(out_shape)
    directions = [np.random.default_rng(2 + k).standard_normal(arrays[k].shape)
                  for k in _diff_indices(spec)]

    def directional(a, create_graph):
        """sum_k <dL/dx_k, v_k>: its gradient is the Hessian-vector product H v."""
        loss, diff = _weighted_loss(spec, a, weights)
        grads = eager.autograd.grad(loss, diff, create_graph=create_graph, allow_unused=True)
        return sum((g * eager.tensor(v)).sum() for g, v in zip(grads, directions)
                   if g is not None), diff

    s, diff = directional(arrays, True)
    hvps = eager.autograd.grad(s, diff, allow_unused=True) if s.requires_grad else \
        [None] * len(diff)
    for hvp, k in zip(hvps, _diff_indices(spec)):
        numeric = _numeric_gradient(lambda a: directional(a, False)[0].item(), arrays, k)
        got = np.zeros_like(arrays[k]) if hvp is None else hvp.numpy()
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_matches_torch(spec: OpSpec) -> None:
    torch = pytest.importorskip("torch")
    arrays = _sample(spec)
    ours = _tensors(spec, arrays)
    theirs = [torch.tensor(a, requires_grad=i.differentiable)
              for a, i in zip(arrays, spec.inputs)]
    out, expected = spec.fn(EAGER_F, *ours), spec.fn(torch_f(), *theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    if spec.grad_name:
        assert expected.grad_fn.name() == spec.grad_name
        assert out.grad_fn.name() == spec.grad_name
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * eager.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for x, t in zip(ours, theirs):
        if t.grad is None:
            assert x.grad is None
        else:
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
