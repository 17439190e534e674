"""PyTorch's autograd semantics, as users observe them, in eager.

Every program here takes the library as its argument (``L`` is ``eager`` or ``torch``) and is
run against both: the expected results are pinned as literals (they are what PyTorch 2.13
gives), so the eager runs check eager without torch installed, and the torch runs check that
the pins are PyTorch's behaviour.

Documented differences (docs/eager.md) are tested as eager's own behaviour, not torch's:
eager's version-counter message has no " Hint: ..." sentence and names ``eager.FloatTensor``;
eager's warnings have no " (Triggered internally at ...)" suffix; a Python number is an input
(a None edge in ``next_functions``) even where torch has a Scalar overload (``2 - x``,
``x ** 3``); ops that are several nodes in one library and one in the other have other grad_fn
names, so they are left out of the name tables (``2 / x``, ``stack``, ``clamp``, ``softmax``,
batched ``matmul``, ...).
"""

from __future__ import annotations

import re
import threading
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest

import eager

try:
    import torch
except ImportError:  # the eager runs need no torch; the torch runs are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# -- running one program on both libraries --------------------------------------------------------
def libs():
    """Parametrize a test over the two libraries."""
    return pytest.mark.parametrize("L", [
        pytest.param(eager, id="eager"),
        pytest.param(torch, id="torch", marks=needs_torch)])


def grid(table: dict[str, Any]):
    """Parametrize over (library, case) for a table of cases."""
    params = []
    for name, case in table.items():
        params.append(pytest.param(eager, case, id=f"eager-{name}"))
        params.append(pytest.param(torch, case, id=f"torch-{name}", marks=needs_torch))
    return pytest.mark.parametrize("L, case", params)


class T(NamedTuple):
    """What a user sees of a tensor's data: its dtype name and its values."""
    values: Any
    dtype: str = "float32"


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def is_tensor(x: Any) -> bool:
    return isinstance(x, eager.Tensor) or (torch is not None and isinstance(x, torch.Tensor))


def obs(x: Any) -> Any:
    """Tensors (nested in tuples/lists/dicts) as T(values, dtype); everything else as is."""
    if is_tensor(x):
        return T(x.detach().numpy().tolist(), dtype_name(x.dtype))
    if isinstance(x, (tuple, list)):
        return tuple(obs(v) for v in x)
    if isinstance(x, dict):
        return {k: obs(v) for k, v in x.items()}
    return x


def tree(fn: Any) -> Any:
    """A grad_fn and everything behind it, as nested (class name, (parents...))."""
    if fn is None:
        return None
    assert all(index == 0 for _, index in fn.next_functions)
    return (type(fn).__name__, tuple(tree(parent) for parent, _ in fn.next_functions))


def version(t: Any) -> int:
    # torch's ``_version`` is an int; eager keeps the counter in a box shared with its views.
    v = t._version
    return v[0] if isinstance(v, list) else v


def leaf(L, *shape: int):
    return L.ones(*shape, requires_grad=True)


def vec(L, *values: float, requires_grad: bool = True):
    return L.tensor(list(values), requires_grad=requires_grad)


def raised(program, L) -> tuple[str, str]:
    """The type name and message of what ``program(L)`` raises, in eager's words: torch's
    'torch.' becomes 'eager.' and torch's trailing ' Hint: ...' sentence is dropped."""
    with pytest.raises(Exception) as info:
        program(L)
    message = str(info.value)
    if L is not eager:
        message = message.split(" Hint:")[0].replace("torch.", "eager.")
    return type(info.value).__name__, message


_TRIGGERED = re.compile(r" \(Triggered internally at .*\)$", re.S)


def caught(program, L) -> list[tuple[type, str, str]]:
    """Every warning ``program(L)`` gives: (category, message, filename)."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        program(L)
    return [(w.category, _TRIGGERED.sub("", str(w.message)), w.filename) for w in log]


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    yield
    assert eager.is_grad_enabled()
    assert torch is None or torch.is_grad_enabled()


# -- what an operation records --------------------------------------------------------------------
def _no_grad_result(L):
    x = leaf(L, 2)
    with L.no_grad():
        return x * 2


FLAGS = {  # program -> (is_leaf, requires_grad, type(grad_fn).__name__ or None)
    "factory": (lambda L: L.ones(2), (True, False, None)),
    "factory-requires-grad": (lambda L: leaf(L, 2), (True, True, None)),
    "requires_grad_": (lambda L: L.tensor([1.0, 2.0]).requires_grad_(), (True, True, None)),
    "op-on-plain-tensors": (lambda L: L.ones(2) * 2, (True, False, None)),
    "op-on-leaf": (lambda L: leaf(L, 2) * 2, (False, True, "MulBackward0")),
    "plain-plus-leaf": (lambda L: L.ones(2) + leaf(L, 2), (False, True, "AddBackward0")),
    "integer-op": (lambda L: L.tensor([1, 2]) * 2, (True, False, None)),
    "comparison-of-leaf": (lambda L: leaf(L, 2) > 0, (True, False, None)),
    "argmax-of-leaf": (lambda L: leaf(L, 2).argmax(), (True, False, None)),
    "under-no_grad": (_no_grad_result, (True, False, None)),
    "detach": (lambda L: (leaf(L, 2) * 2).detach(), (True, False, None)),
    "cast-of-leaf": (lambda L: leaf(L, 2).double(), (False, True, "ToCopyBackward0")),
}


@grid(FLAGS)
def test_leaf_and_requires_grad_flags(L, case):
    program, (is_leaf, requires_grad, node) = case
    t = program(L)
    assert (t.is_leaf, t.requires_grad) == (is_leaf, requires_grad)
    assert (None if t.grad_fn is None else type(t.grad_fn).__name__) == node


def _inplace(method, *args):
    def program(L):
        y = leaf(L, 2) * 2
        getattr(y, method)(*args)
        return y
    return program


def _setitem(L):
    y = leaf(L, 2) * 2
    y[0] = 5.0
    return y


# program -> grad_fn.name() (the class is named by the part after the last '::')
NAMES = {
    "add": (lambda L: leaf(L, 2) + 2, "AddBackward0"),
    "sub": (lambda L: leaf(L, 2) - leaf(L, 2), "SubBackward0"),
    "rsub": (lambda L: 1 - leaf(L, 2), "RsubBackward1"),
    "mul": (lambda L: leaf(L, 2) * leaf(L, 2), "MulBackward0"),
    "div": (lambda L: leaf(L, 2) / 2, "DivBackward0"),
    "neg": (lambda L: -leaf(L, 2), "NegBackward0"),
    "pow-number": (lambda L: leaf(L, 2) ** 3, "PowBackward0"),
    "pow-tensor": (lambda L: leaf(L, 2) ** leaf(L, 2), "PowBackward1"),
    "rpow": (lambda L: 2 ** leaf(L, 2), "PowBackward2"),
    "sum": (lambda L: leaf(L, 2).sum(), "SumBackward0"),
    "sum-dim": (lambda L: leaf(L, 2, 2).sum(0), "SumBackward1"),
    "mean": (lambda L: leaf(L, 2).mean(), "MeanBackward0"),
    "mean-dim": (lambda L: leaf(L, 2, 2).mean(1), "MeanBackward1"),
    "max": (lambda L: leaf(L, 2).max(), "MaxBackward1"),
    "exp": (lambda L: leaf(L, 2).exp(), "ExpBackward0"),
    "log": (lambda L: leaf(L, 2).log(), "LogBackward0"),
    "sqrt": (lambda L: leaf(L, 2).sqrt(), "SqrtBackward0"),
    "tanh": (lambda L: leaf(L, 2).tanh(), "TanhBackward0"),
    "sigmoid": (lambda L: leaf(L, 2).sigmoid(), "SigmoidBackward0"),
    "relu": (lambda L: leaf(L, 2).relu(), "ReluBackward0"),
    "abs": (lambda L: leaf(L, 2).abs(), "AbsBackward0"),
    "maximum": (lambda L: L.maximum(leaf(L, 2), L.zeros(2)), "MaximumBackward0"),
    "where": (lambda L: L.where(L.ones(2) > 0, leaf(L, 2), L.zeros(2)), "WhereBackward0"),
    "select": (lambda L: leaf(L, 2)[0], "SelectBackward0"),
    "slice": (lambda L: leaf(L, 3)[1:], "SliceBackward0"),
    "t": (lambda L: leaf(L, 2, 3).t(), "TBackward0"),
    "transpose": (lambda L: leaf(L, 2, 3).transpose(0, 1), "TransposeBackward0"),
    "permute": (lambda L: leaf(L, 2, 3).permute(1, 0), "PermuteBackward0"),
    "view": (lambda L: leaf(L, 2, 3).view(3, 2), "ViewBackward0"),
    "reshape": (lambda L: leaf(L, 2, 3).reshape(6), "ViewBackward0"),
    "unsqueeze": (lambda L: leaf(L, 2).unsqueeze(0), "UnsqueezeBackward0"),
    "squeeze-dim": (lambda L: leaf(L, 1, 2).squeeze(0), "SqueezeBackward1"),
    "expand": (lambda L: leaf(L, 1, 2).expand(3, 2), "ExpandBackward0"),
    "mm": (lambda L: leaf(L, 2, 3) @ L.ones(3, 2), "MmBackward0"),
    "mv": (lambda L: leaf(L, 2, 3) @ L.ones(3), "MvBackward0"),
    "dot": (lambda L: leaf(L, 3) @ leaf(L, 3), "DotBackward0"),
    "cat": (lambda L: L.cat([leaf(L, 2), L.ones(2)]), "CatBackward0"),
    "clone": (lambda L: leaf(L, 2).clone(), "CloneBackward0"),
    "double": (lambda L: leaf(L, 2).double(), "ToCopyBackward0"),
    "add_": (_inplace("add_", 1), "AddBackward0"),
    "mul_": (_inplace("mul_", 2), "MulBackward0"),
    "sub_": (_inplace("sub_", 1), "SubBackward0"),
    "div_": (_inplace("div_", 2), "DivBackward0"),
    "zero_": (_inplace("zero_"), "ZeroBackward0"),
    "fill_": (_inplace("fill_", 3.0), "FillBackward2"),
    "copy_": (lambda L: _inplace("copy_", L.zeros(2))(L), "torch::autograd::CopyBackwards"),
    "setitem": (_setitem, "torch::autograd::CopySlices"),
    "leaf-accumulator": (lambda L: (leaf(L, 2) * 2).grad_fn.next_functions[0][0],
                         "torch::autograd::AccumulateGrad"),
}


@grid(NAMES)
def test_grad_fn_name(L, case):
    program, name = case
    result = program(L)
    node = result.grad_fn if is_tensor(result) else result
    class_name = name.split("::")[-1]
    assert type(node).__name__ == class_name
    assert node.name() == name
    assert repr(node).startswith(f"<{class_name} object at 0x")
    if is_tensor(result):  # the tensor's repr shows the class name, not name()
        assert f"grad_fn=<{class_name}>" in repr(result)


def _zero_inplace(L):
    y = leaf(L, 2) * 2
    return y.zero_()


ACC = ("AccumulateGrad", ())
# program -> the grad_fn tree (class names; None where an input has no history)
GRAPHS = {
    "tensor-plus-number": (lambda L: leaf(L, 2) + 2, ("AddBackward0", (ACC, None))),
    "tensor-times-number": (lambda L: leaf(L, 2) * 2, ("MulBackward0", (ACC, None))),
    "plain-times-leaf": (lambda L: L.ones(2) * leaf(L, 2), ("MulBackward0", (None, ACC))),
    "leaf-minus-leaf": (lambda L: leaf(L, 2) - leaf(L, 2), ("SubBackward0", (ACC, ACC))),
    "article-y*y*3": (lambda L: (lambda y: y * y * 3)(leaf(L, 2, 2) + 2),
                      ("MulBackward0", (("MulBackward0", (("AddBackward0", (ACC, None)),
                                                          ("AddBackward0", (ACC, None)))),
                                        None))),
    "mean-of-product": (lambda L: (leaf(L, 2) * 2).mean(),
                        ("MeanBackward0", (("MulBackward0", (ACC, None)),))),
    "mm-with-constant": (lambda L: leaf(L, 2, 3) @ L.ones(3, 2), ("MmBackward0", (ACC, None))),
    "cat-with-constant": (lambda L: L.cat([leaf(L, 2), L.ones(2)]), ("CatBackward0", (ACC, None))),
    "add_-on-non-leaf": (_inplace("add_", 1), ("AddBackward0", (("MulBackward0", (ACC, None)),
                                                                 None))),
    "setitem-on-non-leaf": (_setitem, ("CopySlices", (("MulBackward0", (ACC, None)), None))),
    # torch records the Python number of `2 * x` / `1 + x` second, as x.__rmul__(2) does
    "number-times-tensor": (lambda L: 2 * leaf(L, 2), ("MulBackward0", (ACC, None))),
    "number-plus-tensor": (lambda L: 1 + leaf(L, 2), ("AddBackward0", (ACC, None))),
    # the bool condition of where(), and zero_'s (internal) zeros, are not edges in torch
    "where": (lambda L: L.where(L.ones(2) > 0, leaf(L, 2), L.zeros(2)),
              ("WhereBackward0", (ACC, None))),
    "zero_-on-non-leaf": (_zero_inplace, ("ZeroBackward0", (("MulBackward0", (ACC, None)),))),
}


@grid(GRAPHS)
def test_next_functions(L, case):
    program, expected = case
    assert tree(program(L).grad_fn) == expected


# docs/eager.md: Python numbers are lifted to constants, so an op whose number operand torch
# takes as a Scalar overload (`2 - x`, `x ** 3`, `2 ** x`) has an edge (None) for it in eager.
DOCUMENTED_GRAPHS = {  # program -> (torch's tree, eager's tree)
    "number-minus-tensor": (lambda L: 1 - leaf(L, 2), ("RsubBackward1", (ACC,)),
                            ("RsubBackward1", (None, ACC))),
    "pow-number": (lambda L: leaf(L, 2) ** 3, ("PowBackward0", (ACC,)),
                   ("PowBackward0", (ACC, None))),
    "number-pow-tensor": (lambda L: 2 ** leaf(L, 2), ("PowBackward2", (ACC,)),
                          ("PowBackward2", (None, ACC))),
}


@grid(DOCUMENTED_GRAPHS)
def test_next_functions_of_number_operands(L, case):
    program, torch_tree, eager_tree = case
    assert tree(program(L).grad_fn) == (eager_tree if L is eager else torch_tree)


@libs()
def test_accumulate_grad_is_the_leafs_one_node(L):
    x, w = leaf(L, 2), L.ones(2)
    a, b = x * 2, x * w
    acc = a.grad_fn.next_functions[0][0]
    assert type(acc).__name__ == "AccumulateGrad"
    assert acc.variable is x
    assert acc.next_functions == ()
    assert b.grad_fn.next_functions[0][0] is acc  # one accumulator per leaf
    assert b.grad_fn.next_functions[1] == (None, 0)  # w does not require grad
    assert x.grad_fn is None


# -- backward() -----------------------------------------------------------------------------------
def _backward_with_gradient(L):
    x = vec(L, 1.0, 2.0, 3.0)
    (x * x).backward(L.tensor([1.0, 0.5, 2.0]))
    return x.grad


def _backward_with_gradient_keyword(L):
    x = vec(L, 1.0, 2.0, 3.0)
    (x * x).backward(gradient=L.tensor([1.0, 0.5, 2.0]))
    return x.grad


def _scalar_backward_with_gradient(L):
    x = vec(L, 1.0, 2.0, 3.0)
    (x * x).sum().backward(L.tensor(3.0))
    return x.grad


def _leaf_backward(L):
    x = vec(L, 1.0, 2.0, 3.0)
    x.backward(L.ones(3))
    return x.grad


def _accumulates(L):
    x = vec(L, 1.0, 2.0, 3.0)
    (x * x).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    return {"same object": first is x.grad, "grad": x.grad}


def _accumulates_onto_assigned_grad(L):
    x = leaf(L, 2)
    x.grad = L.ones(2) * 5
    (x * 2).sum().backward()
    return x.grad


def _grad_zeroed(L):
    x = leaf(L, 2)
    (x * 2).sum().backward()
    x.grad.zero_()
    (x * 3).sum().backward()
    return x.grad


def _grad_reset(L):
    x = leaf(L, 2)
    (x * 2).sum().backward()
    x.grad = None
    (x * 3).sum().backward()
    return x.grad


def _retain_graph(L):
    x = vec(L, 1.0, 2.0)
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    return x.grad


def _additions_only_twice(L):
    # add and sum save no tensors, so their graph can be walked again (as in torch)
    x = leaf(L, 2)
    z = (x + 2 + x).sum()
    z.backward()
    z.backward()
    return x.grad


def _detached_branch(L):
    x = L.tensor(3.0, requires_grad=True)
    (x * x).detach().mul(x).backward()  # d/dx (c * x) with c = x*x held constant
    return x.grad


def _float64_leaf(L):
    x = L.ones(2, dtype=L.float64, requires_grad=True)
    (x * 2).sum().backward()
    return x.grad


def _grad_is_plain(L):
    x = leaf(L, 2)
    (x * 2).sum().backward()
    return (x.grad.requires_grad, x.grad.is_leaf, x.grad.grad_fn)


BACKWARD = {
    "gradient-positional": (_backward_with_gradient, T([2.0, 2.0, 12.0])),
    "gradient-keyword": (_backward_with_gradient_keyword, T([2.0, 2.0, 12.0])),
    "scalar-with-gradient": (_scalar_backward_with_gradient, T([6.0, 12.0, 18.0])),
    "backward-of-a-leaf": (_leaf_backward, T([1.0, 1.0, 1.0])),
    "accumulates": (_accumulates, {"same object": True, "grad": T([5.0, 7.0, 9.0])}),
    "accumulates-onto-assigned": (_accumulates_onto_assigned_grad, T([7.0, 7.0])),
    "after-grad.zero_()": (_grad_zeroed, T([3.0, 3.0])),
    "after-grad=None": (_grad_reset, T([3.0, 3.0])),
    "retain_graph=True-twice": (_retain_graph, T([4.0, 8.0])),
    "additions-only-twice": (_additions_only_twice, T([4.0, 4.0])),
    "detached-branch-is-constant": (_detached_branch, T(9.0)),
    "grad-dtype-is-leaf-dtype": (_float64_leaf, T([2.0, 2.0], "float64")),
    "grad-is-a-plain-tensor": (_grad_is_plain, (False, True, None)),
}


@grid(BACKWARD)
def test_backward(L, case):
    program, expected = case
    assert obs(program(L)) == expected


@libs()
def test_backward_gradient_of_the_wrong_shape(L):
    x = leaf(L, 2)
    with pytest.raises(RuntimeError, match=re.escape(
            "Mismatch in shape: grad_output[0] has a shape of ")):
        (x * x).backward(L.ones(3))


# -- retain_grad() --------------------------------------------------------------------------------
def _retain_intermediate_and_root(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.retain_grad()
    z = (y * y).sum()
    z.retain_grad()
    before = (y.retains_grad, z.retains_grad, x.retains_grad, y.grad, z.grad)
    z.backward(retain_graph=True)
    once = (y.grad.clone(), z.grad.clone(), x.grad.clone())
    z.backward()  # retained grads accumulate like a leaf's
    return {"before": before, "once": once, "twice": (y.grad, z.grad, x.grad)}


def _retain_leaf(L):
    x = vec(L, 1.0, 2.0, 3.0)
    x.retain_grad()  # a no-op on a leaf
    (x * 2).sum().backward()
    return (x.retains_grad, x.grad)


def _retain_then_inplace(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.retain_grad()
    y.add_(1)  # y's grad is now d/dy of the new y
    (y * y).sum().backward()
    return (y.grad, x.grad)


RETAIN = {
    "intermediate-and-root": (_retain_intermediate_and_root, {
        "before": (True, True, False, None, None),
        "once": (T([4.0, 8.0, 12.0]), T(1.0), T([8.0, 16.0, 24.0])),
        "twice": (T([8.0, 16.0, 24.0]), T(2.0), T([16.0, 32.0, 48.0]))}),
    "leaf": (_retain_leaf, (False, T([2.0, 2.0, 2.0]))),
    "then-inplace": (_retain_then_inplace, (T([6.0, 10.0, 14.0]), T([12.0, 20.0, 28.0]))),
}


@grid(RETAIN)
def test_retain_grad(L, case):
    program, expected = case
    assert obs(program(L)) == expected


# -- detach() and requires_grad_() ----------------------------------------------------------------
def _detach(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    d = y.detach()
    return (d, d.is_leaf, d.requires_grad, d.grad_fn, y.requires_grad)


def _detach_shares_memory_and_version(L):
    x = vec(L, 1.0, 2.0, 3.0)
    d = x.detach()
    d[0] = 10.0
    return (x, version(x), version(d), x.requires_grad)


def _requires_grad_on_non_leaf(L):
    y = leaf(L, 2) * 2
    return (y.requires_grad_() is y, y.requires_grad_(True) is y, y.is_leaf)


def _requires_grad_flip(L):
    x = L.ones(2)
    first = (x.requires_grad_() is x, x.requires_grad, x.is_leaf)
    recorded = (x * 2).grad_fn is not None
    return (first, recorded, x.requires_grad_(False) is x, x.requires_grad)


DETACH = {
    "detach": (_detach, (T([2.0, 4.0, 6.0]), True, False, None, True)),
    "shares-memory-and-version": (_detach_shares_memory_and_version,
                                  (T([10.0, 2.0, 3.0]), 1, 1, True)),
    "requires_grad_-non-leaf": (_requires_grad_on_non_leaf, (True, True, False)),
    "requires_grad_-leaf": (_requires_grad_flip, ((True, True, True), True, True, False)),
}


@grid(DETACH)
def test_detach_and_requires_grad_(L, case):
    program, expected = case
    assert obs(program(L)) == expected


# -- grad mode ------------------------------------------------------------------------------------
def _nested_context_managers(L):
    x, seen = leaf(L, 2), []
    with L.no_grad():
        seen.append((x * 2).requires_grad)
        with L.enable_grad():
            seen.append((x * 2).requires_grad)
            with L.set_grad_enabled(False):
                seen.append((x * 2).requires_grad)
            seen.append(L.is_grad_enabled())
        seen.append(L.is_grad_enabled())
    seen.append(L.is_grad_enabled())
    return seen


def _nested_decorators(L):
    x = leaf(L, 2)

    @L.enable_grad()
    def inner():
        return (x * 2).requires_grad, L.is_grad_enabled()

    @L.no_grad()
    def outer():
        return (x * 2).requires_grad, inner(), L.is_grad_enabled()

    @L.set_grad_enabled(False)
    def disabled():
        return L.is_grad_enabled()

    return (outer(), L.is_grad_enabled(), disabled(), inner())


def _recursive_decorated(L):
    @L.no_grad()
    def depth(n):
        return [L.is_grad_enabled()] + (depth(n - 1) if n else [])
    return (depth(2), L.is_grad_enabled())


def _enable_grad_records_inside_no_grad(L):
    x = leaf(L, 2)
    with L.no_grad():
        with L.enable_grad():
            y = x * 3
    y.sum().backward()
    return (y.requires_grad, x.grad)


def _restored_after_exception(L):
    try:
        with L.no_grad():
            raise KeyError("boom")
    except KeyError:
        pass
    return L.is_grad_enabled()


def _thread_local(L):
    seen = []
    with L.no_grad():
        thread = threading.Thread(target=lambda: seen.append(L.is_grad_enabled()))
        thread.start()
        thread.join()
        seen.append(L.is_grad_enabled())
    return seen


def _inplace_update_under_no_grad(L):
    # the SGD step: a leaf that requires grad may be updated in place under no_grad
    x = vec(L, 1.0, 2.0, 3.0)
    versions = [version(x)]
    with L.no_grad():
        x.add_(1)
        versions.append(version(x))
        x.mul_(2)
        x[0] = 1.0
        x.zero_()
        versions.append(version(x))
    return (versions, x, x.is_leaf, x.requires_grad, x.grad_fn)


def _set_grad_enabled_as_a_function(L):
    x = leaf(L, 2)
    try:
        L.set_grad_enabled(False)
        y, enabled = x * 2, L.is_grad_enabled()
    finally:
        L.set_grad_enabled(True)
    return (y.requires_grad, enabled, L.is_grad_enabled())


def _bare_decorators(L):
    x = leaf(L, 2)

    @L.no_grad
    def off():
        return (x * 2).requires_grad

    @L.enable_grad
    def on():
        return (x * 2).requires_grad

    with L.no_grad():
        inner = on()
    return (off(), inner)


GRAD_MODE = {
    "nested-context-managers": (_nested_context_managers, (False, True, False, True, False,
                                                           True)),
    "nested-decorators": (_nested_decorators, ((False, (True, True), False), True, False,
                                               (True, True))),
    "recursive-decorated-function": (_recursive_decorated, ((False, False, False), True)),
    "enable_grad-inside-no_grad": (_enable_grad_records_inside_no_grad, (True, T([3.0, 3.0]))),
    "restored-after-exception": (_restored_after_exception, True),
    "thread-local": (_thread_local, (True, False)),
    "inplace-update-under-no_grad": (_inplace_update_under_no_grad,
                                     ((0, 1, 4), T([0.0, 0.0, 0.0]), True, True, None)),
    "set_grad_enabled-as-a-function": (_set_grad_enabled_as_a_function, (False, False, True)),
    "decorators-without-parentheses": (_bare_decorators, (False, True)),
}


@grid(GRAD_MODE)
def test_grad_mode(L, case):
    program, expected = case
    assert obs(program(L)) == expected


# -- autograd.grad --------------------------------------------------------------------------------
def _grad_non_leaf_inputs(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    grads = L.autograd.grad((y * y).sum(), [y, x])
    return (grads, x.grad)  # nothing is accumulated into .grad


def _grad_several_outputs(L):
    x = vec(L, 1.0, 2.0, 3.0)
    return L.autograd.grad([(x * x).sum(), (x * 3).sum()], x)


def _grad_outputs(L):
    x = vec(L, 1.0, 2.0, 3.0)
    return L.autograd.grad(x * x, x, grad_outputs=L.tensor([1.0, 0.0, 2.0]))


def _grad_keywords(L):
    x = leaf(L, 2)
    return L.autograd.grad(outputs=[(x * 2).sum()], inputs=[x], grad_outputs=[L.tensor(3.0)])


def _grad_tuple_inputs(L):
    x, w = vec(L, 1.0, 2.0), vec(L, 3.0, 4.0)
    return L.autograd.grad((x * w).sum(), (x, w))


def _grad_retain_graph(L):
    x = vec(L, 1.0, 2.0, 3.0)
    z = (x * x).sum()
    return (L.autograd.grad(z, x, retain_graph=True), L.autograd.grad(z, x))


def _grad_allow_unused(L):
    x, unused = leaf(L, 2), leaf(L, 2)
    return L.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)


def _grad_without_create_graph(L):
    x = L.tensor(2.0, requires_grad=True)
    (g,) = L.autograd.grad(x ** 3, x)
    return (g, g.requires_grad, g.grad_fn)


GRAD = {
    "non-leaf-inputs": (_grad_non_leaf_inputs,
                        ((T([4.0, 8.0, 12.0]), T([8.0, 16.0, 24.0])), None)),
    "several-outputs-add-up": (_grad_several_outputs, (T([5.0, 7.0, 9.0]),)),
    "grad_outputs": (_grad_outputs, (T([2.0, 0.0, 12.0]),)),
    "keywords": (_grad_keywords, (T([6.0, 6.0]),)),
    "tuple-inputs": (_grad_tuple_inputs, (T([3.0, 4.0]), T([1.0, 2.0]))),
    "retain_graph": (_grad_retain_graph, ((T([2.0, 4.0, 6.0]),), (T([2.0, 4.0, 6.0]),))),
    "allow_unused": (_grad_allow_unused, (T([2.0, 2.0]), None)),
    "result-without-create_graph": (_grad_without_create_graph, (T(12.0), False, None)),
}


@grid(GRAD)
def test_autograd_grad(L, case):
    program, expected = case
    assert obs(program(L)) == expected


# -- higher-order gradients -----------------------------------------------------------------------
def _third_derivative(L):
    x = L.tensor(2.0, requires_grad=True)
    (g1,) = L.autograd.grad(x ** 3, x, create_graph=True)
    (g2,) = L.autograd.grad(g1, x, create_graph=True)
    (g3,) = L.autograd.grad(g2, x)
    return (g1, g2, g3, g1.requires_grad, g2.requires_grad, g3.requires_grad)


def _third_derivative_elementwise(L):
    x = vec(L, 1.0, -2.0, 0.5)
    (g1,) = L.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (g2,) = L.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = L.autograd.grad(g2.sum(), x)
    return (g1, g2, g3)


def _third_derivative_by_backward(L):
    x = L.tensor(2.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns (once) about the reference cycle
        (x ** 3).backward(create_graph=True)
        g1, x.grad = x.grad, None
        g1.backward(create_graph=True)
        g2, x.grad = x.grad, None
        g2.backward()
    return (g1, g2, x.grad, g1.requires_grad)


HIGHER = {  # d/dx x**3 = 3x**2, then 6x, then 6
    "autograd.grad": (_third_derivative, (T(12.0), T(12.0), T(6.0), True, True, False)),
    "elementwise": (_third_derivative_elementwise,
                    (T([3.0, 12.0, 0.75]), T([6.0, -12.0, 3.0]), T([6.0, 6.0, 6.0]))),
    "backward(create_graph=True)": (_third_derivative_by_backward,
                                    (T(12.0), T(12.0), T(6.0), True)),
}


@grid(HIGHER)
def test_higher_order_derivatives(L, case):
    program, expected = case
    assert obs(program(L)) == expected


_rng = np.random.default_rng(0)
W1, B1, W2 = _rng.standard_normal((4, 3)), _rng.standard_normal(4), _rng.standard_normal((2, 4))
X_IN, V_W1 = _rng.standard_normal(3), _rng.standard_normal((4, 3))


def _mlp_loss(L, w1, b1, w2):
    hidden = (w1 @ L.tensor(X_IN) + b1).tanh()
    out = (w2 @ hidden).sigmoid()
    return (out * out).sum()


def _mlp_grads(L, w1_value: np.ndarray):
    params = [L.tensor(w1_value, requires_grad=True), L.tensor(B1, requires_grad=True),
              L.tensor(W2, requires_grad=True)]
    return L.autograd.grad(_mlp_loss(L, *params), params)


def _hessian_vector_product(L):
    """H v for the direction v = (V_W1, 0, 0), by double backward."""
    params = [L.tensor(W1, requires_grad=True), L.tensor(B1, requires_grad=True),
              L.tensor(W2, requires_grad=True)]
    grads = L.autograd.grad(_mlp_loss(L, *params), params, create_graph=True)
    hv = L.autograd.grad((grads[0] * L.tensor(V_W1)).sum(), params)
    return [g.detach().numpy() for g in grads], [h.numpy() for h in hv]


def test_hessian_vector_product_matches_finite_differences():
    grads, hv = _hessian_vector_product(eager)
    eps = 1e-5
    plus = _mlp_grads(eager, W1 + eps * V_W1)
    minus = _mlp_grads(eager, W1 - eps * V_W1)
    for h, p, m in zip(hv, plus, minus):
        fd = (p.numpy() - m.numpy()) / (2 * eps)
        np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-9)
    assert [h.dtype for h in hv] == [np.float64] * 3


@needs_torch
def test_hessian_vector_product_matches_torch():
    (eager_grads, eager_hv), (torch_grads, torch_hv) = (_hessian_vector_product(eager),
                                                        _hessian_vector_product(torch))
    for ours, theirs in zip(eager_grads + eager_hv, torch_grads + torch_hv):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


# -- errors: type and exact text ------------------------------------------------------------------
def _twice(L):
    x = leaf(L, 2)
    z = (x * x).sum()
    z.backward()
    z.backward()


def _grad_twice(L):
    x = leaf(L, 2)
    z = (x * x).sum()
    L.autograd.grad(z, x)
    L.autograd.grad(z, x)


def _backward_of_no_grad_result(L):
    x = leaf(L, 2)
    with L.no_grad():
        y = x * 2
    y.sum().backward()


def _set_requires_grad(value: bool):
    def program(L):
        y = leaf(L, 2) * 2
        y.requires_grad = value
    return program


def _set_int_requires_grad(L):
    x = L.tensor([1, 2])
    x.requires_grad = True


def _assign_wrong_shape_grad(L):
    x = leaf(L, 2)
    x.grad = L.ones(3)


FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
         "after they have already been freed). Saved intermediate values of the graph are freed "
         "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
         "backward through the graph a second time or if you need to access saved tensors after "
         "calling backward.")
NO_GRAD_FN = "element 0 of tensors does not require grad and does not have a grad_fn"
NUMPY = "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."
NON_LEAF_FLAG = "you can only change requires_grad flags of leaf variables."
DETACH_HINT = (" If you want to use a computed variable in a subgraph that doesn't require "
               "differentiation use var_no_grad = var.detach().")

ERRORS = {
    "backward-of-non-scalar": (lambda L: (leaf(L, 2) * 2).backward(),
                               "grad can be implicitly created only for scalar outputs"),
    "backward-twice-through-freed-graph": (_twice, FREED),
    "autograd.grad-twice-through-freed-graph": (_grad_twice, FREED),
    "backward-of-tensor-without-grad": (lambda L: L.ones(2).sum().backward(), NO_GRAD_FN),
    "backward-of-no_grad-result": (_backward_of_no_grad_result, NO_GRAD_FN),
    "numpy-of-leaf": (lambda L: leaf(L, 2).numpy(), NUMPY),
    "numpy-of-non-leaf": (lambda L: (leaf(L, 2) * 2).numpy(), NUMPY),
    "add_-on-leaf": (lambda L: leaf(L, 2).add_(1), LEAF_INPLACE),
    "mul_-on-leaf": (lambda L: leaf(L, 2).mul_(2), LEAF_INPLACE),
    "zero_-on-leaf": (lambda L: leaf(L, 2).zero_(), LEAF_INPLACE),
    "+=-on-leaf": (lambda L: leaf(L, 2).__iadd__(1), LEAF_INPLACE),
    "setitem-on-leaf": (lambda L: leaf(L, 2).__setitem__(0, 1.0),
                        "a view of a leaf Variable that requires grad is being used in an "
                        "in-place operation."),
    "item-of-two-elements": (lambda L: L.ones(2).item(),
                             "a Tensor with 2 elements cannot be converted to Scalar"),
    "requires_grad=False-on-non-leaf": (_set_requires_grad(False), NON_LEAF_FLAG + DETACH_HINT),
    "requires_grad_(False)-on-non-leaf": (lambda L: (leaf(L, 2) * 2).requires_grad_(False),
                                          NON_LEAF_FLAG + DETACH_HINT),
    "requires_grad=True-on-non-leaf": (_set_requires_grad(True), NON_LEAF_FLAG),
    "int-tensor(requires_grad=True)": (
        lambda L: L.tensor([1, 2], requires_grad=True),
        "Only Tensors of floating point and complex dtype can require gradients"),
    "int-ones(requires_grad=True)": (
        lambda L: L.ones(2, dtype=L.int64, requires_grad=True),
        "Only Tensors of floating point and complex dtype can require gradients"),
    "int-requires_grad=True": (
        _set_int_requires_grad,
        "only Tensors of floating point and complex dtype can require gradients"),
    "int-requires_grad_()": (lambda L: L.tensor([1, 2]).requires_grad_(),
                             "only Tensors of floating point dtype can require gradients"),
    "bool-requires_grad_()": (lambda L: L.tensor([True]).requires_grad_(),
                              "only Tensors of floating point dtype can require gradients"),
    "retain_grad-without-requires_grad": (
        lambda L: L.ones(2).retain_grad(),
        "can't retain_grad on Tensor that has requires_grad=False"),
    "grad-of-unused-input": (
        lambda L: L.autograd.grad((leaf(L, 2) * 2).sum(), [leaf(L, 2)]),
        "The differentiated Tensor at index 0 appears to not have been used in the graph. Set "
        "allow_unused=True if this is the desired behavior."),
    "grad-wrt-tensor-without-grad": (
        lambda L: L.autograd.grad(leaf(L, 2).sum(), [L.ones(2)]),
        "One of the differentiated Tensors does not require grad"),
    "assign-grad-of-wrong-shape": (
        _assign_wrong_shape_grad,
        "attempting to assign a gradient of size '[3]' to a tensor of size '[2]'. Please "
        "ensure that the gradient and the tensor are the same size"),
}


@grid(ERRORS)
def test_error(L, case):
    program, message = case
    assert raised(program, L) == ("RuntimeError", message)


# -- the version counter: saved tensors modified in place -----------------------------------------
def _modify(name: str):
    return {
        "add_": lambda L, t: t.add_(1),
        "mul_": lambda L, t: t.mul_(2),
        "sub_": lambda L, t: t.sub_(1),
        "zero_": lambda L, t: t.zero_(),
        "copy_": lambda L, t: t.copy_(L.zeros(2, 3)),
        "setitem": lambda L, t: t.__setitem__(0, 5.0),
    }[name]


def _saved_input_modified(op):
    def program(L):  # x * w saves w; w is a plain float64 tensor
        x, w = leaf(L, 2, 3), L.ones(2, 3, dtype=L.float64)
        z = x * w
        op(L, w)
        z.sum().backward()
    return program


def _saved_non_leaf_modified(op):
    def program(L):  # y * y saves y; the in-place op is recorded on y
        y = leaf(L, 2, 3) * 2
        z = y * y
        op(L, y)
        z.sum().backward()
    return program


def _saved_output_modified(op):
    def program(L):  # exp saves its output
        y = leaf(L, 2, 3).exp()
        op(L, y)
        y.sum().backward()
    return program


def _leaf_modified_under_no_grad(op):
    def program(L):  # x * x saves x; x is updated before backward
        x = leaf(L, 2, 3)
        z = x * x
        with L.no_grad():
            op(L, x)
        z.sum().backward()
    return program


def _modified_message(tensor: str, of: str | None) -> str:
    which = f", which is output 0 of {of}," if of else ""
    return ("one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [eager.{tensor}Tensor [2, 3]]{which} is at version 1; expected "
            "version 0 instead.")


_RECORDED_AS = {"add_": "Add", "mul_": "Mul", "sub_": "Sub", "zero_": "Zero",
                "copy_": "torch::autograd::CopyBackwards",
                "setitem": "torch::autograd::CopySlices"}
VERSION_CASES = {}
for _op in _RECORDED_AS:
    VERSION_CASES[f"{_op}-saved-input"] = (_saved_input_modified(_modify(_op)),
                                           _modified_message("Double", None))
    VERSION_CASES[f"{_op}-saved-non-leaf"] = (_saved_non_leaf_modified(_modify(_op)),
                                              _modified_message("Float", _RECORDED_AS[_op]))
    VERSION_CASES[f"{_op}-saved-output"] = (_saved_output_modified(_modify(_op)),
                                            _modified_message("Float", "Exp"))
    VERSION_CASES[f"{_op}-leaf-under-no_grad"] = (_leaf_modified_under_no_grad(_modify(_op)),
                                                  _modified_message("Float", None))


@grid(VERSION_CASES)
def test_modified_saved_tensor(L, case):
    program, message = case
    assert raised(program, L) == ("RuntimeError", message)


# -- in-place operations recorded on non-leaf tensors: values and gradients -----------------------
def _add_then_mul(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.add_(1)
    y.mul_(x)  # y = (2x + 1) * x, dy/dx = 4x + 1
    y.sum().backward()
    return (y, x.grad, y.is_leaf)


def _setitem_then_square(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y[0] = 5
    (y * y).sum().backward()  # y[0] no longer depends on x
    return (y, x.grad)


def _setitem_from_other_leaf(L):
    x, w = vec(L, 1.0, 2.0, 3.0), vec(L, 4.0, 5.0, 6.0)
    y = x * 2
    y[1:] = w[:2] * 3
    (y * y).sum().backward()
    return (y, x.grad, w.grad)


def _setitem_into_plain_tensor(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = L.zeros(3)
    y[1] = x[0] * 4  # y starts to require grad
    y.sum().backward()
    return (y, x.grad, y.is_leaf, y.requires_grad)


def _add_into_plain_tensor(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = L.zeros(3)
    y.add_(x * 2)
    y.sum().backward()
    return (y, x.grad, y.is_leaf, y.requires_grad)


def _sub_alpha_then_div(L):
    x = vec(L, 1.0, 2.0, 4.0)
    y = x * 2
    y.sub_(x, alpha=3)
    y.div_(2)  # y = -x / 2
    y.sum().backward()
    return (y, x.grad)


def _augmented_assignments(L):
    x = vec(L, 1.0, 2.0, 4.0)
    y = x * 2
    y += x
    y *= x
    y -= 1
    y /= x  # y = 3x - 1/x, dy/dx = 3 + 1/x**2
    y.sum().backward()
    return (y, x.grad)


def _zero_then_add(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.zero_()
    (y + x).sum().backward()
    return (y, x.grad)


def _fill_then_mul(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.fill_(3.0)
    (y * x).sum().backward()
    return (y, x.grad)


def _copy_constant(L):
    x = vec(L, 1.0, 2.0, 3.0)
    y = x * 2
    y.copy_(L.tensor([7.0, 8.0, 9.0]))
    y.sum().backward()  # the old y gets a zero gradient, so x.grad is zeros, not None
    return (y, x.grad)


def _copy_from_other_leaf(L):
    x, w = vec(L, 1.0, 2.0, 3.0), vec(L, 4.0, 5.0, 6.0)
    y = x * 2
    y.copy_(w * w)
    y.sum().backward()
    return (y, x.grad, w.grad)


INPLACE = {
    "add_-then-mul_": (_add_then_mul, (T([3.0, 10.0, 21.0]), T([5.0, 9.0, 13.0]), False)),
    "setitem-then-square": (_setitem_then_square, (T([5.0, 4.0, 6.0]), T([0.0, 16.0, 24.0]))),
    "setitem-from-other-leaf": (_setitem_from_other_leaf,
                                (T([2.0, 12.0, 15.0]), T([8.0, 0.0, 0.0]),
                                 T([72.0, 90.0, 0.0]))),
    "setitem-into-plain-tensor": (_setitem_into_plain_tensor,
                                  (T([0.0, 4.0, 0.0]), T([4.0, 0.0, 0.0]), False, True)),
    "add_-into-plain-tensor": (_add_into_plain_tensor,
                               (T([2.0, 4.0, 6.0]), T([2.0, 2.0, 2.0]), False, True)),
    "sub_(alpha)-then-div_": (_sub_alpha_then_div, (T([-0.5, -1.0, -2.0]),
                                                    T([-0.5, -0.5, -0.5]))),
    "augmented-assignments": (_augmented_assignments, (T([2.0, 5.5, 11.75]),
                                                       T([4.0, 3.25, 3.0625]))),
    "zero_": (_zero_then_add, (T([0.0, 0.0, 0.0]), T([1.0, 1.0, 1.0]))),
    "fill_": (_fill_then_mul, (T([3.0, 3.0, 3.0]), T([3.0, 3.0, 3.0]))),
    "copy_-constant": (_copy_constant, (T([7.0, 8.0, 9.0]), T([0.0, 0.0, 0.0]))),
    "copy_-from-other-leaf": (_copy_from_other_leaf,
                              (T([16.0, 25.0, 36.0]), T([0.0, 0.0, 0.0]), T([8.0, 10.0, 12.0]))),
}


@grid(INPLACE)
def test_inplace_on_non_leaf(L, case):
    program, expected = case
    assert obs(program(L)) == expected


# -- warnings -------------------------------------------------------------------------------------
NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad field "
    "to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you "
    "access the non-leaf Tensor by mistake, make sure you access the leaf Tensor instead. See "
    "github.com/pytorch/pytorch/pull/30531 for more information.")


def _read_non_leaf_grad(L):
    y = leaf(L, 2) * 2
    assert y.grad is None


def _read_non_leaf_grad_after_backward(L):
    y = leaf(L, 2) * 2
    y.sum().backward()
    assert y.grad is None


def _read_retained_grad(L):
    y = leaf(L, 2) * 2
    y.retain_grad()
    assert y.grad is None
    y.sum().backward()
    assert y.grad is not None


def _read_leaf_grads(L):
    x, c = leaf(L, 2), L.ones(2)
    assert x.grad is None and c.grad is None


WARNINGS = {
    "non-leaf": (_read_non_leaf_grad, 1),
    "non-leaf-after-backward": (_read_non_leaf_grad_after_backward, 1),
    "retained-non-leaf": (_read_retained_grad, 0),
    "leaves": (_read_leaf_grads, 0),
}


@grid(WARNINGS)
def test_reading_grad_of_a_non_leaf_warns(L, case):
    program, count = case
    # the warning points at the user's line (stacklevel), i.e. at this file
    assert caught(program, L) == [(UserWarning, NON_LEAF_GRAD, __file__)] * count


# -- type promotion -------------------------------------------------------------------------------
PROMOTION = {
    "int64-tensor*2.5": (lambda L: L.tensor([1, 2]) * 2.5, "float32"),
    "float32-tensor*python-float": (lambda L: L.tensor([1.0, 2.0]) * 2.5, "float32"),
    "float32+float64-0-dim": (lambda L: L.tensor([1.0]) + L.tensor(1.0, dtype=L.float64),
                              "float32"),
    "float32+float64-1-dim": (lambda L: L.tensor([1.0]) + L.tensor([1.0], dtype=L.float64),
                              "float64"),
    "int32+float64-0-dim": (lambda L: L.tensor([1], dtype=L.int32)
                            + L.tensor(1.0, dtype=L.float64), "float64"),
    "int32*int64-0-dim": (lambda L: L.tensor([1], dtype=L.int32) * L.tensor(3), "int32"),
    "int32*int64": (lambda L: L.tensor([1], dtype=L.int32) * L.tensor([3]), "int64"),
    "int32+python-int": (lambda L: L.tensor([1], dtype=L.int32) + 1, "int32"),
    "uint8+int8": (lambda L: L.tensor([1], dtype=L.uint8) + L.tensor([1], dtype=L.int8),
                   "int16"),
    "bool+python-int": (lambda L: L.tensor([True]) + 1, "int64"),
    "bool*python-float": (lambda L: L.tensor([True]) * 1.5, "float32"),
    "int/int": (lambda L: L.tensor([7, 2]) / L.tensor([2, 4]), "float32"),
    "int/python-int": (lambda L: L.tensor([7, 2]) / 2, "float32"),
    "sum-of-int32": (lambda L: L.tensor([1, 2], dtype=L.int32).sum(), "int64"),
    "sum-of-int16": (lambda L: L.tensor([1, 2], dtype=L.int16).sum(), "int64"),
    "sum-of-bool": (lambda L: L.tensor([True, True]).sum(), "int64"),
    "sum-of-float32": (lambda L: L.tensor([1.0, 2.0]).sum(), "float32"),
    "float-comparison": (lambda L: L.tensor([1.0, 2.0]) < 2, "bool"),
    "int-equality": (lambda L: L.tensor([1, 2]) == L.tensor([1, 3]), "bool"),
}


@grid(PROMOTION)
def test_type_promotion(L, case):
    program, dtype = case
    assert dtype_name(program(L).dtype) == dtype


PROMOTED_VALUES = {
    "int64-tensor*2.5": (lambda L: L.tensor([1, 2]) * 2.5, T([2.5, 5.0])),
    "int/int": (lambda L: L.tensor([7, 2]) / L.tensor([2, 4]), T([3.5, 0.5])),
    "sum-of-int32": (lambda L: L.tensor([1, 2], dtype=L.int32).sum(), T(3, "int64")),
    "comparison": (lambda L: L.tensor([1.0, 2.0]) < 2, T([True, False], "bool")),
}


@grid(PROMOTED_VALUES)
def test_promoted_values(L, case):
    program, expected = case
    assert obs(program(L)) == expected
