"""Regression tests for what the differential fuzzer (tests/fuzz.py) found: each bug as the
smallest program that showed it, checked against the interpreter, a second run, or torch."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

import eager
import staticgraph as sg
from staticgraph.passes import PASSES


def _gradient_graph():
    """Gradients whose unbroadcasting has nothing to sum at run time (unknown dimensions:
    sum_to once returned its input), two fused kernels on the same inputs, an update."""
    g = sg.Graph()
    with g.as_default():
        a = sg.placeholder((None, 3), "float64", name="a")
        b = sg.placeholder((None, 3), "float64", name="b")
        v = sg.Variable(np.full(3, 0.5), name="v")
        loss = ((a * b + b) * v).exp().sum()
        grads = sg.gradients(loss, [a, b, v])
        step = sg.assign(v, v - 0.1 * grads[2])
        twins = [(a + b).exp(), (a - b).tanh()]
    return g, (a, b), [loss, *grads, step, *twins]


PIPELINES = [(), ("plan_memory",), ("cse", "fuse", "plan_memory"), ("fuse", "cse"),
             ("fuse", "simplify", "dce"), ("fuse", "fuse", "plan_memory")]
# Every order of the passes that rewrite this graph (fold_channel_affine has no conv and batch
# norm to fold here, hoist no loop, bucket no all-reduce; tests/test_passes.py runs them on
# every spec, tests/test_cnn.py, tests/test_control_flow.py and tests/test_bucketing.py where
# they rewrite).
ORDERS = [(*order, "plan_memory")
          for order in itertools.permutations(
              p for p in PASSES if p not in ("fold_channel_affine", "hoist", "bucket"))]


@pytest.mark.parametrize("passes", PIPELINES + ORDERS, ids=lambda p: "-".join(p) or "none")
def test_every_pipeline_gives_the_interpreters_values_and_keeps_held_results(passes) -> None:
    g, (a, b), fetches = _gradient_graph()
    feeds = {a: np.arange(6.0).reshape(2, 3), b: np.ones((2, 3))}
    expected = sg.Session(g, backend="interpreter", passes=()).run(fetches, feeds)
    session = sg.Session(g, passes=passes, debug=True)
    got = session.run(fetches, feeds)
    held = [np.copy(x) for x in got]
    for x, y in zip(got, expected):
        np.testing.assert_allclose(x, y, rtol=1e-13)
    session.run(fetches, {a: -feeds[a], b: 2 * feeds[b]})  # reuses every planned buffer
    for x, y in zip(got, held):
        np.testing.assert_array_equal(x, y)


def test_a_fetched_view_of_a_variables_new_value_is_the_callers_own() -> None:
    g = sg.Graph()
    with g.as_default():
        v = sg.Variable(np.zeros(4), name="v")
        new = v + 1
        update, view = sg.assign(v, new), new.reshape(2, 2)
    session = sg.Session(g)
    fetched_view, fetched_update = session.run([view, update])
    fetched_view[0, 0] = fetched_update[1] = 100.0
    np.testing.assert_array_equal(session.run(v), np.ones(4))


def test_one_compiled_function_called_from_many_threads() -> None:
    rng = np.random.default_rng(0)
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 32), name="x")
        w = sg.Variable(rng.standard_normal((32, 32)).astype(np.float32))
        out = sg.softmax((x @ w).relu() @ w, -1).sum(1)
    f = sg.compile(out, [x], session=sg.Session(g))
    inputs = [rng.standard_normal((16, 32)).astype(np.float32) for _ in range(24)]
    expected = [f(a) for a in inputs]
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for _ in range(5):
            results[k] = f(inputs[k])
            np.testing.assert_array_equal(results[k], expected[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(results[k], expected[k]) for k in range(len(inputs)))


def _both_modes(fn, *arrays, grad: bool = True):
    """fn's value and gradient in eager, and as a compiled graph."""
    tensors = [eager.tensor(a, requires_grad=grad) for a in arrays]
    out = fn(*tensors)
    eager_grads = eager.autograd.grad(out.sum(), tensors) if grad else []
    g = sg.Graph()
    with g.as_default():
        xs = [sg.placeholder(a.shape, a.dtype) for a in arrays]
        node = fn(*xs)
        grads = sg.gradients(node.sum(), xs) if grad else []
    graph_values = sg.Session(g).run([node, *grads], dict(zip(xs, arrays)))
    return [out.detach().numpy(), *(t.numpy() for t in eager_grads)], graph_values


def _torch_values(fn, *arrays, grad: bool = True):
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(a, requires_grad=grad) for a in arrays]
    out = fn(*tensors)
    grads = torch.autograd.grad(out.sum(), tensors) if grad else []
    return [out.detach().numpy(), *(t.numpy() for t in grads)]


@pytest.mark.parametrize("name, fn, arrays", [
    ("clamp at its bounds", lambda x: x.clamp(-0.5, 0.5), [np.array([-0.5, 0.0, 0.5, 2.0])]),
    ("clamp to tensors", lambda x, lo: x.clamp(lo, lo + 1), [np.array([0.0, 1.0, 3.0]),
                                                            np.array([0.0, 0.5, 1.0])]),
    ("relu at nan", lambda x: x.relu(), [np.array([np.nan, -1.0, 0.0, 2.0])]),
    ("maximum at nan", lambda x, y: x.maximum(y), [np.array([np.nan, 1.0, 2.0]),
                                                   np.array([1.0, np.nan, 2.0])]),
    ("minimum at nan", lambda x, y: x.minimum(y), [np.array([np.nan, 1.0, 2.0]),
                                                   np.array([1.0, np.nan, 2.0])]),
])
def test_gradients_where_torch_defines_them(name, fn, arrays) -> None:
    expected = _torch_values(fn, *arrays)
    for values in _both_modes(fn, *arrays):
        for got, want in zip(values, expected):
            np.testing.assert_array_equal(got, want)


EMPTY = np.zeros((0, 3))


@pytest.mark.parametrize("name, fn", [
    ("softmax", lambda x: x.softmax(1)), ("log_softmax", lambda x: x.log_softmax(-1)),
    ("amax", lambda x: x.amax(1)), ("max", lambda x: x.max(1).values),
    ("amin", lambda x: x.amin(-1, keepdim=True)), ("argmax", lambda x: x.argmax(1)),
    ("prod", lambda x: x.prod(1)),
])
def test_a_zero_size_dimension_that_is_not_reduced_gives_an_empty_result(name, fn) -> None:
    expected = _torch_values(fn, EMPTY, grad=False)[0]
    for values in _both_modes(fn, EMPTY, grad=False):
        assert values[0].shape == expected.shape and values[0].dtype.kind == expected.dtype.kind


def test_cross_entropy_of_no_rows_is_nan_as_in_torch() -> None:
    labels = np.zeros(0, np.int64)
    assert np.isnan(eager.nn.functional.cross_entropy(eager.tensor(EMPTY),
                                                      eager.tensor(labels)).item())
    with pytest.raises(sg.ShapeError, match=r"max\(\): Expected reduction dim 0 to have "
                                            "non-zero size"):
        eager.tensor(EMPTY).amax(0)


@pytest.mark.parametrize("name, fn", [
    ("sum(-1)", lambda x: x.sum(-1)), ("amax(0)", lambda x: x.amax(0)),
    ("softmax(0)", lambda x: x.softmax(0)), ("argmax(0)", lambda x: x.argmax(0)),
    ("max(0)", lambda x: x.max(0).values), ("mean(())", lambda x: x.mean(())),
])
def test_dim_0_and_minus_1_of_a_0d_value(name, fn) -> None:
    scalar = np.array(2.5)
    expected = _torch_values(fn, scalar, grad=False)[0]
    for values in _both_modes(fn, scalar, grad=False):
        np.testing.assert_array_equal(values[0], expected)
        assert values[0].shape == ()


def test_sum_over_no_dims_sums_everything_as_in_torch() -> None:
    x = np.arange(6.0).reshape(2, 3)
    for values in _both_modes(lambda t: t.sum(()), x):
        assert values[0] == 15.0 and values[1].tolist() == np.ones((2, 3)).tolist()


def test_sigmoid_of_integers_is_a_float() -> None:
    x = np.array([-1, 0, 2])
    expected = _torch_values(lambda t: t.sigmoid(), x, grad=False)[0]
    for values in _both_modes(lambda t: t.sigmoid(), x, grad=False):
        assert values[0].dtype == np.float32
        np.testing.assert_allclose(values[0], expected, rtol=1e-6)


DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "lt"])
def test_the_compiled_runtime_promotes_as_the_interpreter(op) -> None:
    """torch's promotion rules give the result dtype; numpy's own differ for small ints and
    0-d values, which once broke writing into the planned buffer."""
    def build(x, y):
        return {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y, "pow": x ** y,
                "maximum": x.maximum(y), "lt": x < y}[op]
    failures = []
    for a, b in itertools.product(DTYPES, repeat=2):
        for y_shape in [(3,), ()]:
            if op == "sub" and "bool" in (a, b) or op == "pow" and b == "bool" == a:
                continue  # torch refuses these
            g = sg.Graph()
            with g.as_default():
                x, y = sg.placeholder((3,), a), sg.placeholder(y_shape, b)
                try:
                    out = build(x, y)
                except (TypeError, sg.DTypeError):
                    continue
            feeds = {x: np.array([0, 1, 1]).astype(a), y: np.ones(y_shape).astype(b)}
            want = sg.Session(g, backend="interpreter").run(out, feeds)
            got = sg.Session(g).run(out, feeds)
            if got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=True):
                failures.append(f"{a} {op} {b}{list(y_shape)}: {got!r} vs {want!r}")
    assert not failures, failures


def test_assign_and_restore_refuse_integers_that_would_wrap(tmp_path) -> None:
    g = sg.Graph()
    with g.as_default():
        v = sg.Variable(np.zeros(2, np.int8), name="v")
    session = sg.Session(g)
    with pytest.raises(ValueError, match=r"Cannot assign values outside \[-128, 127\] to "
                                         "variable 'v'"):
        session.assign(v, np.array([1, 300]))
    np.savez(tmp_path / "big.npz", v=np.array([1, 300]))
    with pytest.raises(ValueError, match="would wrap around"):
        session.restore(tmp_path / "big.npz")
    np.testing.assert_array_equal(session.run(v), [0, 0])


def test_eager_refuses_what_torch_refuses() -> None:
    x = eager.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="attempting to assign a gradient with dtype "
                                           "'double' to a tensor with grad_dtype 'Float'"):
        x.grad = eager.zeros(3, dtype=eager.float64)
    with pytest.raises(RuntimeError, match="Can't detach views in-place"):
        x[:2].detach_()
    y = x * 2
    z = y * y
    y.detach_()
    with pytest.raises(RuntimeError, match="saved tensor that has been detached in-place"):
        z.sum().backward()


def test_register_hook_as_in_torch() -> None:
    torch = pytest.importorskip("torch")
    results = []
    for lib in (torch, eager):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        seen = []
        handle = x.register_hook(lambda g: seen.append(g.tolist()) or g * 10)
        y = x * x
        y.register_hook(lambda g: g + 1)  # a non-leaf's hook changes what flows on
        y.sum().backward()
        handle.remove()
        (x * 3).sum().backward()
        results.append((x.grad.tolist(), seen))
    assert results[0] == results[1] == ([43.0, 83.0], [[4.0, 8.0]])
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        eager.zeros(2).register_hook(print)


@pytest.mark.parametrize("name, fn, array", [
    ("relu then a square", lambda lib, x: x.relu() ** 2, [0.3, -0.7, 1.2]),
    ("softplus at nan", lambda lib, x: lib.nn.functional.softplus(x), [np.nan, 1.0, 30.0]),
])
def test_second_order_and_nan_gradients_as_in_torch(name, fn, array) -> None:
    """relu's gradient saves its input (a second order through it was zeros); softplus's
    gradient at nan is nan."""
    torch = pytest.importorskip("torch")
    results = []
    for lib in (torch, eager):
        x = lib.tensor(array, requires_grad=True)
        (g,) = lib.autograd.grad(fn(lib, x).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), x)
        results.append([fn(lib, x).tolist(), g.tolist(), h.tolist()])
    for got, want in zip(*results):  # nan where torch has nan
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sign_of_nan_is_0_as_in_torch() -> None:
    for values in _both_modes(lambda t: t.sign(), np.array([np.nan, -2.0, 0.0]), grad=False):
        assert values[0].tolist() == [0.0, -1.0, 0.0]


def test_where_with_a_number_promotes_as_torch() -> None:
    x = np.array([1, -2])
    for values in _both_modes(lambda t: t.where(t > 0, -1.5), x, grad=False):
        assert values[0].dtype == np.float32 and values[0].tolist() == [1.0, -1.5]


def test_results_never_share_memory_with_feeds_or_each_other() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3,), "float64", name="x")
        outs = [x * 1, x.exp(), x.exp(), x.T / 1]  # simplified to x; CSE'd to one value
    feed = np.arange(3.0)
    for backend in ("numpy", "interpreter"):
        got = sg.Session(g, backend=backend).run(outs, {x: feed})
        for i, a in enumerate(got):
            assert not np.shares_memory(a, feed)
            assert not any(np.shares_memory(a, b) for b in got[:i])
        got[0][0] = 100.0
        assert feed[0] == 0.0


def test_fusing_twice_and_empty_rows() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 3), "float64", name="x")
        fetches = [1 / (x.abs() + 1), (x * 2).amax(0), (x * 2).sum(0), x.log_softmax(0)]
    for rows in (0, 4):
        feeds = {x: np.ones((rows, 3))}
        want = sg.Session(g, backend="interpreter", passes=()).run(fetches[:1], feeds)
        got = sg.Session(g, passes=("fuse", "simplify", "fuse")).run(fetches[:1], feeds)
        np.testing.assert_array_equal(got[0], want[0])
    empty = {x: np.ones((0, 3))}
    with pytest.raises(sg.RunError, match="Expected reduction dim 0 to have non-zero size"):
        sg.Session(g).run(fetches[1], empty)
    assert sg.Session(g).run(fetches[2], empty).tolist() == [0.0, 0.0, 0.0]
    assert sg.Session(g).run(fetches[3], empty).shape == (0, 3)


def test_cross_entropy_at_minus_infinity_compiled_as_eager() -> None:
    logits, labels = np.array([[-np.inf, 1.9], [1.9, -0.0]]), np.array([0, 1])
    values = _both_modes(lambda x: eager.nn.functional.cross_entropy(x, eager.tensor(labels))
                         if isinstance(x, eager.Tensor) else sg.cross_entropy(x, labels),
                         logits, grad=False)
    assert values[0][0] == values[1][0] == np.inf


def test_concat_gradient_with_unknown_sizes_counts_bool_inputs_right() -> None:
    """Positions past a bool input were counted in bool (size 2 became True)."""
    g = sg.Graph()
    with g.as_default():
        c = sg.placeholder((None,), "bool")
        x = sg.placeholder((None,), "float64")
        (dx,) = sg.gradients((sg.concat([c, x], 0) * sg.constant(np.arange(4.0))).sum(), [x])
    assert sg.Session(g).run(dx, {c: [True, False], x: [1.0, 2.0]}).tolist() == [2.0, 3.0]


def test_sign_gradient_is_zeros_even_for_infinite_cotangents() -> None:
    x = eager.tensor([1.0, -2.0], requires_grad=True)
    (g,) = eager.autograd.grad(x.sign(), x, grad_outputs=eager.tensor([np.inf, np.nan]))
    assert g.tolist() == [0.0, 0.0]


def test_comparisons_promote_as_torch() -> None:
    """A float32 tensor against a float64 0-d value compares in float32, as in torch."""
    a = np.array([-0.6518987417221069], np.float32)
    b = np.array(float(a[0]) + 1e-12)
    for values in _both_modes(lambda x, y: (x != y).to(eager.float64), a, b, grad=False):
        assert values[0].tolist() == [0.0]


# Control flow: a result nothing reads got a zero cotangent, and an operand no wanted result
# reads a zero gradient; pulled back through `* c` with c = inf, 0 * inf made the gradient
# NaN where eager (and torch) send none.
def _unread_scan_carry(x, c):
    return sg.scan(lambda acc, e: (acc[0] * c, acc[1] + e), x,
                   initializer=(x.sum(), x.sum() * 0))[1]


def _unread_loop_variable(x, c):
    return sg.while_loop(lambda p, s: s < 3.0, lambda p, s: (p * c, s + x.sum()),
                         (x.sum(), x.sum() * 0), maximum_iterations=2)[1]


def _operand_no_wanted_branch_result_reads(x, c):
    y = x * c
    return sg.cond(x.sum() > 0, lambda: (y.sum(), x.exp()), lambda: (y.sum(), x))[1]


@pytest.mark.parametrize("fn", [_unread_scan_carry, _unread_loop_variable,
                                _operand_no_wanted_branch_result_reads],
                         ids=lambda f: f.__name__.strip("_"))
def test_control_flow_gradients_send_nothing_where_nothing_is_read(fn) -> None:
    x_value, c_value = np.array([0.5, 1.0]), np.array(np.inf)
    x = eager.tensor(x_value, requires_grad=True)
    (expected,) = eager.autograd.grad(fn(x, eager.tensor(c_value)).sum(), [x])
    assert np.isfinite(expected.numpy()).all()
    g = sg.Graph()
    with g.as_default():
        xs, c = sg.placeholder((2,), "float64"), sg.placeholder((), "float64")
        (dx,) = sg.gradients(fn(xs, c).sum(), [xs])
    for session in (sg.Session(g, backend="interpreter", passes=()), sg.Session(g)):
        np.testing.assert_allclose(session.run(dx, {xs: x_value, c: c_value}), expected.numpy())


def test_a_branch_returning_one_array_twice_gives_two() -> None:
    """A branch whose two results are one node handed out the same array twice; an in-place
    kernel on one result then overwrote the other."""
    def twice():
        z = x * 2
        return z, z
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3,), "float64")
        a, b = sg.cond(x.sum() > 0, twice, lambda: (x, x))
        fetches = [(a + 1).exp(), b]
    feeds = {x: np.array([1.0, 2.0, 3.0])}
    expected = sg.Session(g, backend="interpreter", passes=()).run(fetches, feeds)
    for got, want in zip(sg.Session(g).run(fetches, feeds), expected):
        np.testing.assert_array_equal(got, want)


def test_equal_gradients_of_a_branch_inside_a_scan_stay_apart() -> None:
    """How the fuzzer met the bug above: CSE made a cond gradient branch's cotangents of x and
    c (both -g) one node, and the reverse scan's in-place running sum of one changed the
    other: c's gradient came out as x's."""
    g = sg.Graph()
    with g.as_default():
        x, c = sg.placeholder((), "float64"), sg.placeholder((), "float64")
        v = sg.placeholder((2,), "float64")
        out = sg.scan(lambda a, e: sg.cond(a > -0.7, lambda: a - x - c, lambda: a - x), v,
                      initializer=v[0])
        grads = sg.gradients(out.sum(), [x, c])
    feeds = {x: np.array(1.0), c: np.array(0.0), v: np.array([0.0, -0.1])}
    expected = sg.Session(g, backend="interpreter", passes=()).run(grads, feeds)
    assert [float(e) for e in expected] == [-3.0, -2.0]
    for got, want in zip(sg.Session(g, passes=("cse", "plan_memory")).run(grads, feeds),
                         expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("inner", [
    lambda e: sg.cond(e < 0.3, lambda: e * 2, lambda: e),
    lambda e: sg.while_loop(lambda u: u < 0.3, lambda u: u * 2, e)], ids=["cond", "while_loop"])
def test_a_scan_over_a_vector_adds_what_a_body_hands_back_to_its_carry(inner) -> None:
    """An element of a vector reached the scan's body as a numpy scalar, not a 0-d array; a
    cond (or a loop of no trips) handed it back as its result, and the in-place add into that
    result raised "return arrays must be of ArrayType"."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None,), "float64")
        out = sg.scan(lambda a, e: a + inner(e), x, initializer=sg.constant(np.float64(0)))
    feeds = {x: np.ones(2)}
    expected = sg.Session(g, backend="interpreter", passes=()).run(out, feeds)
    assert expected.tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(sg.Session(g).run(out, feeds), expected)
