"""Eager Tensor basics: factories and dtype inference, memory sharing, conversions, and the
errors a user meets first (all as PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

import eager

FACTORIES = [
    ("tensor_floats", lambda m: m.tensor([1.5, 2.0])),
    ("tensor_ints", lambda m: m.tensor([[2, 4], [5, 6]])),
    ("tensor_bools", lambda m: m.tensor([True, False])),
    ("tensor_scalar", lambda m: m.tensor(3.25)),
    ("tensor_f64", lambda m: m.tensor([0.1, 0.2], dtype=m.float64)),
    ("tensor_int_as_float", lambda m: m.tensor([1, 2], dtype=m.float32)),
    ("ones", lambda m: m.ones(2, 3)),
    ("zeros_tuple", lambda m: m.zeros((3,), dtype=m.int64)),
    ("full", lambda m: m.full((2, 2), 7)),
    ("full_float", lambda m: m.full((2,), 1.5)),
    ("arange", lambda m: m.arange(5)),
    ("arange_float", lambda m: m.arange(0, 1, 0.25)),
    ("linspace", lambda m: m.linspace(0, 1, 5)),
    ("eye", lambda m: m.eye(3)),
    ("ones_like", lambda m: m.ones_like(m.tensor([[1, 2]]))),
]


@pytest.mark.parametrize("make", [f for _, f in FACTORIES], ids=[n for n, _ in FACTORIES])
def test_factories_match_torch(make) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = make(eager), make(torch)
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == np.dtype(str(theirs.dtype).removeprefix("torch."))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert repr(ours) == repr(theirs).replace("torch.", "eager.")


def test_float64_data_is_not_rounded_through_float32() -> None:
    assert eager.tensor(0.1, dtype=eager.float64).item() == 0.1
    assert eager.tensor(np.array([0.1])).dtype == eager.float64  # numpy data keeps its dtype


def test_from_numpy_and_views_share_memory_and_version() -> None:
    array = np.zeros(4, np.float32)
    t = eager.from_numpy(array)
    view = t.view(2, 2)
    view[0, 0] = 5.0
    assert array[0] == 5.0 and t[0].item() == 5.0
    assert t._version[0] == view._version[0] == 1
    assert np.shares_memory(t.numpy(), array)


def test_conversions() -> None:
    t = eager.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert t[1, 0].item() == 3.0 and isinstance(t.sum().item(), float)
    assert float(t[0, 0]) == 1.5 and int(eager.tensor(3)) == 3
    assert len(t) == 2 and [row.tolist() for row in t] == [[1.5, 2.0], [3.0, 4.0]]
    assert np.asarray(t).dtype == np.float32
    assert list(range(10))[eager.tensor(2)] == 2
    with pytest.raises(RuntimeError, match="a Tensor with 4 elements cannot be converted"):
        t.item()
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one"):
        bool(t > 0)


@pytest.mark.parametrize("program, message", [
    (lambda m: m.ones(3) + m.ones(4),
     r"The size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton "
     "dimension 0"),
    (lambda m: m.ones(2, 3) @ m.ones(4, 5),
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    (lambda m: m.ones(2, 3).reshape(4), r"shape '\[4\]' is invalid for input of size 6"),
    (lambda m: m.ones(2, 3).sum(2),
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda m: m.ones(2, 3)[5], "index 5 is out of bounds for dimension 0 with size 2"),
])
def test_shape_errors_read_like_torch(program, message) -> None:
    with pytest.raises((RuntimeError, IndexError), match=message):
        program(eager)
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, IndexError), match=message):
        program(torch)


def test_errors_are_not_numpy_tracebacks() -> None:
    with pytest.raises(RuntimeError) as info:
        eager.ones(3) + eager.ones(4)
    assert "numpy" not in str(info.value) and info.value.__cause__ is None


def test_unsupported_data_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="can't convert"):
        eager.tensor(["a", "b"])
    with pytest.raises(TypeError, match="unsupported dtype complex64"):
        eager.ones(2, dtype=np.complex64)


@pytest.mark.parametrize("make, expected", [
    (lambda: eager.full((1,), 0.1, dtype=eager.float64), 0.1),
    (lambda: eager.linspace(0, 1, 4, dtype=eager.float64)[1], 1 / 3),
    (lambda: eager.arange(0, 0.3, 0.1, dtype=eager.float64)[1], 0.1),
])
def test_factories_compute_in_the_requested_dtype(make, expected) -> None:
    t = make()
    assert t.dtype == eager.float64 and float(t.reshape(-1)[0]) == expected
    assert eager.randn(3, dtype=eager.float64).dtype == eager.float64


def test_the_tensor_class_constructor_gives_the_default_float_like_torch() -> None:
    assert eager.Tensor([1, 2]).dtype == eager.float32  # torch.Tensor([1, 2]) is float32
    assert eager.tensor([1, 2]).dtype == eager.int64


def test_clamp_needs_a_bound_and_masks_need_bools() -> None:
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        eager.ones(2).clamp()
    mask = eager.tensor([True, False])
    assert (mask & eager.tensor([True, True])).tolist() == [True, False]
    assert (~mask).tolist() == [False, True]
    with pytest.raises(TypeError, match="work on bool tensors"):
        eager.tensor([1, 2]) & eager.tensor([2, 2])  # torch's bitwise and: not provided


def test_advanced_indexing_makes_a_copy_not_a_view() -> None:
    w = eager.ones(3, 3, requires_grad=True)
    y = (w * w).sum()
    with eager.no_grad():
        picked = w[:, [0, 1]]
        picked.add_(1)  # a copy: w is untouched, its version too
    y.backward()
    assert w.grad.tolist() == [[2.0] * 3] * 3 and w._version[0] == 0


def test_setitem_with_repeated_indices_gives_no_gradient_to_overwritten_elements() -> None:
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (eager, torch):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
        y = x * 1
        y[lib.tensor([0, 0, 2])] = lib.tensor([1.0, 2.0, 3.0])
        (y * lib.arange(10.0, 15.0)).sum().backward()
        grads.append(x.grad.tolist())
    assert grads[0] == grads[1] == [0.0, 11.0, 0.0, 13.0, 14.0]


def test_cross_entropy_refuses_labels_out_of_range() -> None:
    with pytest.raises(IndexError, match="Target 12 is out of bounds"):
        eager.nn.functional.cross_entropy(eager.zeros(2, 10), eager.tensor([3, 12]))
