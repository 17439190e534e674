"""The examples of two PyTorch tutorial articles, run in eager.

000 "Understanding Autograd" (Alex Abades Grimes, 2023) and 001 "Getting Started with PyTorch
Part 1: Understanding How Automatic Differentiation Works" (Ayoosh Kathuria). Their code is
copied here with the module passed in as ``torch``, so each example runs unchanged on eager and
on PyTorch. The expected outputs are pinned as literals: they are what PyTorch 2.13 prints
(where the article shows something else, the comment says what and why); the torch runs,
skipped without torch, check the pins against the real thing.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import eager

try:
    import torch as real_torch
except ImportError:
    real_torch = None

needs_torch = pytest.mark.skipif(real_torch is None, reason="torch is not installed")
LIBS = pytest.mark.parametrize("lib", [pytest.param(eager, id="eager"),
                                       pytest.param(real_torch, id="torch", marks=needs_torch)])

NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad field "
    "to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you "
    "access the non-leaf Tensor by mistake, make sure you access the leaf Tensor instead. See "
    "github.com/pytorch/pytorch/pull/30531 for more information.")
_TRIGGERED = re.compile(r" \(Triggered internally at .*\)$", re.S)


def run_printing(example, lib, capsys):
    """What ``example(lib)`` prints, and the warnings it gives as (category, text, file)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        example(lib)
    printed = capsys.readouterr().out
    return printed, [(w.category, _TRIGGERED.sub("", str(w.message)), w.filename) for w in log]


# -- article 000: Understanding Autograd ----------------------------------------------------------
def a000_tensor(torch):
    x = torch.ones(2, 2, requires_grad=True)
    print(x)


def a000_add(torch):
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    print(y)


def a000_mul_mean(torch):
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()

    print(z)
    print(out)


def a000_backward(torch):
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    out.backward()
    print(x.grad)


def a000_exercise(torch):
    x2 = torch.ones(5,5, requires_grad = True)  # noqa: E231,E251 (the article's spelling)
    y2 = x2 + 2
    g2 = y2*2
    z2 = y2.sum()

    print(x2, x2.grad)
    print(y2, y2.grad)
    print(g2, g2.grad)
    print(z2, z2.grad)

    z2.backward()

    print(x2.grad)
    print(y2.grad)
    print(g2.grad)
    print(z2.grad)


def a000_exercise_with_retain_grad(torch):
    # Step 5 of the article: "for each new python variable that you define, call .retain_grad()"
    x2 = torch.ones(5,5, requires_grad = True)  # noqa: E231,E251
    x2.retain_grad()  # a leaf: a no-op
    y2 = x2 + 2
    y2.retain_grad()
    g2 = y2*2
    g2.retain_grad()
    z2 = y2.sum()
    z2.retain_grad()

    print(x2, x2.grad)
    print(y2, y2.grad)
    print(g2, g2.grad)
    print(z2, z2.grad)

    z2.backward()

    print(x2.grad)
    print(y2.grad)
    print(g2.grad)
    print(z2.grad)


ONES_5x5 = """\
tensor([[1., 1., 1., 1., 1.],
        [1., 1., 1., 1., 1.],
        [1., 1., 1., 1., 1.],
        [1., 1., 1., 1., 1.],
        [1., 1., 1., 1., 1.]]"""
EXERCISE_BEFORE_BACKWARD = f"""\
{ONES_5x5}, requires_grad=True) None
tensor([[3., 3., 3., 3., 3.],
        [3., 3., 3., 3., 3.],
        [3., 3., 3., 3., 3.],
        [3., 3., 3., 3., 3.],
        [3., 3., 3., 3., 3.]], grad_fn=<AddBackward0>) None
tensor([[6., 6., 6., 6., 6.],
        [6., 6., 6., 6., 6.],
        [6., 6., 6., 6., 6.],
        [6., 6., 6., 6., 6.],
        [6., 6., 6., 6., 6.]], grad_fn=<MulBackward0>) None
tensor(75., grad_fn=<SumBackward0>) None
"""

ARTICLE_000 = {
    # example -> (what PyTorch 2.13 prints, how many non-leaf .grad warnings it gives)
    "ones-requires-grad": (a000_tensor, """\
tensor([[1., 1.],
        [1., 1.]], requires_grad=True)
""", 0),
    # The article prints "grad_fn=< AddBackward0 >" (spaces added by its HTML); torch has none.
    "add": (a000_add, """\
tensor([[3., 3.],
        [3., 3.]], grad_fn=<AddBackward0>)
""", 0),
    "mul-mean": (a000_mul_mean, """\
tensor([[27., 27.],
        [27., 27.]], grad_fn=<MulBackward0>)
tensor(27., grad_fn=<MeanBackward0>)
""", 0),
    "backward": (a000_backward, """\
tensor([[4.5000, 4.5000],
        [4.5000, 4.5000]])
""", 0),
    # The article shows `print(x2, x2.grad)` as "..., requires_grad=True),  None"; print()
    # separates its arguments by one space. After z2.backward() it shows y2.grad as a tensor
    # of 2s: real PyTorch prints None there, with a UserWarning, because y2 is a non-leaf
    # without retain_grad() (and d(z2)/d(y2) would be 1s, not 2s: g2 is not part of z2). The
    # six reads of y2.grad, g2.grad and z2.grad (non-leaves) each warn.
    "exercise": (a000_exercise, EXERCISE_BEFORE_BACKWARD + f"""\
{ONES_5x5})
None
None
None
""", 6),
    # Following the article's instruction to call .retain_grad() on every new variable:
    # y2.grad is all ones, g2.grad stays None (g2 does not lead to z2) and z2.grad is 1.
    "exercise-with-retain_grad": (a000_exercise_with_retain_grad,
                                  EXERCISE_BEFORE_BACKWARD + f"""\
{ONES_5x5})
{ONES_5x5})
None
tensor(1.)
""", 0),
}


@LIBS
@pytest.mark.parametrize("name", list(ARTICLE_000))
def test_article_000_prints_what_pytorch_prints(lib, name, capsys):
    example, expected, warning_count = ARTICLE_000[name]
    printed, warned = run_printing(example, lib, capsys)
    assert printed == expected
    # each warning is the non-leaf .grad one, pointing at the example's line in this file
    assert warned == [(UserWarning, NON_LEAF_GRAD, __file__)] * warning_count


def test_article_000_gradient_by_hand():
    # out = mean(3 (x + 2)^2) over 4 elements: d(out)/dx = 6 (x + 2) / 4 = 4.5 at x = 1
    x = eager.ones(2, 2, requires_grad=True)
    out = (3 * (x + 2) * (x + 2)).mean()
    out.backward()
    assert x.grad.tolist() == [[4.5, 4.5], [4.5, 4.5]]
    assert x.grad.dtype == eager.float32


# -- article 001: Getting Started with PyTorch Part 1 ---------------------------------------------
# The article's `np.random.randn((3,5))` is not valid numpy (and its output is 4x3); these are
# the values it shows.
ARTICLE_ARRAY = [[-1.00034281, -0.07042071, 0.81870386],
                 [-0.86401346, -1.4290267, -1.12398822],
                 [-1.14619856, 0.39963316, -1.11038695],
                 [0.00215314, 0.68790149, -0.55967659]]

# The article shows PyTorch 0.3's printout ("[torch.DoubleTensor of size 4x3]"); this is what
# today's PyTorch prints, with eager's module name.
FROM_NUMPY_REPR = """\
tensor([[-1.0003, -0.0704,  0.8187],
        [-0.8640, -1.4290, -1.1240],
        [-1.1462,  0.3996, -1.1104],
        [ 0.0022,  0.6879, -0.5597]], dtype=eager.float64)"""
LONG_REPR = """\
tensor([[2, 4],
        [5, 6]])"""


@LIBS
def test_article_001_from_numpy(lib):
    arr = np.array(ARTICLE_ARRAY)
    tens = lib.from_numpy(arr)
    assert repr(tens).replace("torch.", "eager.") == FROM_NUMPY_REPR
    assert tens.dtype == lib.float64
    assert tuple(tens.shape) == (4, 3)
    arr[0, 0] = 7.0  # from_numpy shares the array's memory
    assert tens[0, 0].item() == 7.0


def test_article_001_from_numpy_dtype_is_numpys():
    tens = eager.from_numpy(np.array(ARTICLE_ARRAY))
    assert tens.dtype == np.dtype("float64") == eager.float64 == eager.double


@LIBS
def test_article_001_long_tensor(lib):
    # the article's torch.LongTensor([[2,4],[5,6]]); eager has no legacy constructors
    another_tensor = lib.tensor([[2, 4], [5, 6]])
    assert repr(another_tensor) == LONG_REPR
    assert another_tensor.dtype == lib.int64 == lib.long
    assert another_tensor.tolist() == [[2, 4], [5, 6]]


@needs_torch
def test_article_001_long_tensor_as_the_article_writes_it():
    another_tensor = real_torch.LongTensor([[2, 4], [5, 6]])
    assert repr(another_tensor) == LONG_REPR
    assert repr(eager.tensor([[2, 4], [5, 6]])) == repr(another_tensor)


@LIBS
@pytest.mark.parametrize("size", [((4, 3),), (4, 3)], ids=["tuple", "ints"])
def test_article_001_randn(lib, size):
    # values are random (and eager draws them with numpy's generator, so they are not torch's
    # even for the same seed): only the shape and dtype are checked
    random_tensor = lib.randn(*size)
    assert tuple(random_tensor.shape) == (4, 3)
    assert random_tensor.dtype == lib.float32
    assert not random_tensor.requires_grad


# The model of the article's computation graph: b = w1*a; c = w2*a; d = w3*b + w4*c; L = f(d)
A, W1, W2, W3, W4 = 1.5, 0.5, -1.5, 3.0, 0.25
B, C = W1 * A, W2 * A
D = W3 * B + W4 * C  # 1.6875

F = {  # f -> (f on tensors, f' on floats)
    "square": (lambda d: d ** 2, lambda d: 2 * d),
    "tanh": (lambda d: d.tanh(), lambda d: 1 - math.tanh(d) ** 2),
    "sigmoid": (lambda d: d.sigmoid(), lambda d: (s := 1 / (1 + math.exp(-d))) * (1 - s)),
    "exp": (lambda d: d.exp(), math.exp),
}


def article_001_graph(torch, f):
    a, w1, w2, w3, w4 = (torch.tensor(v, requires_grad=True) for v in (A, W1, W2, W3, W4))
    b = w1 * a
    c = w2 * a
    d = (w3 * b) + (w4 * c)
    for t in (b, c, d):
        t.retain_grad()
    L = f(d)
    L.backward()
    tensors = {"a": a, "w1": w1, "w2": w2, "w3": w3, "w4": w4, "b": b, "c": c, "d": d}
    return tensors, {name: t.grad.item() for name, t in tensors.items()}


@pytest.mark.parametrize("f", list(F))
def test_article_001_chain_rule_by_hand(f):
    _, grads = article_001_graph(eager, F[f][0])
    df = F[f][1](D)  # dL/dd
    # dL/da adds the two paths L -> d -> b -> a and L -> d -> c -> a
    expected = {"a": (W3 * W1 + W4 * W2) * df,
                "w1": df * W3 * A, "w2": df * W4 * A, "w3": df * B, "w4": df * C,
                "b": df * W3, "c": df * W4, "d": df}
    assert grads == pytest.approx(expected, rel=1e-6)


@needs_torch
@pytest.mark.parametrize("f", list(F))
def test_article_001_gradients_match_torch(f):
    _, ours = article_001_graph(eager, F[f][0])
    _, theirs = article_001_graph(real_torch, F[f][0])
    assert ours == pytest.approx(theirs, rel=1e-6)


@LIBS
def test_article_001_graph_structure(lib):
    tensors, _ = article_001_graph(lib, F["square"][0])
    a, w1, b, c, d = (tensors[k] for k in ("a", "w1", "b", "c", "d"))
    assert type(d.grad_fn).__name__ == "AddBackward0"
    assert [type(n).__name__ for n, _ in d.grad_fn.next_functions] == ["MulBackward0"] * 2
    w3_times_b, w4_times_c = (n for n, _ in d.grad_fn.next_functions)
    assert w3_times_b.next_functions[1][0] is b.grad_fn
    assert w4_times_c.next_functions[1][0] is c.grad_fn
    # b = w1 * a: the edges end in the leaves' AccumulateGrad nodes
    (to_w1, _), (to_a, _) = b.grad_fn.next_functions
    assert type(to_w1).__name__ == type(to_a).__name__ == "AccumulateGrad"
    assert to_w1.variable is w1 and to_a.variable is a
    # the two paths from L to a meet at a's one accumulator
    assert c.grad_fn.next_functions[1][0] is to_a
    assert all(t.is_leaf for t in (a, w1)) and not any(t.is_leaf for t in (b, c, d))
