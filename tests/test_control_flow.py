"""Graph control flow (sg.cond, sg.while_loop, sg.scan): values, first- and second-order
gradients against eager, torch and float64 finite differences; both runtimes and every pass
pipeline against the interpreter; training through a scan; build-time errors; sg.trace of
one function in both modes; and a long loop's memory."""

from __future__ import annotations

import functools
import os
import tracemalloc

import numpy as np
import pytest
from control_cases import CASE_IDS, CASES, Case, PythonFlow, as_array, autodiff_run, built
from test_eager_ops import _numeric_gradient

import eager
import staticgraph as sg
from staticgraph.passes import DEFAULT_PASSES, PASSES

THIS_FILE = os.path.basename(__file__)


def _at(line: int) -> str:
    """What a message says for a node built on ``line`` of this file."""
    return f"{THIS_FILE}:{line}"


def _names(case: Case) -> list[str]:
    """What each of ``Built.fetches`` is, for failure messages."""
    inputs = list(case.inputs)
    return [*(f"output {k}" for k in range(len(built(case).outputs))),
            *(f"d loss / d {n}" for n in inputs), *(f"H v for {n}" for n in inputs)]


def _assert_close(case: Case, got: list, expected: list, what: str, **tolerance) -> None:
    assert len(got) == len(expected)
    for name, g, e in zip(_names(case), got, expected):
        assert np.shape(g) == np.shape(e), f"{case.name}: {name} ({what})"
        np.testing.assert_allclose(g, e, err_msg=f"{case.name}: {name} ({what})", **tolerance)


@functools.cache
def _graph_values(case: Case) -> list[np.ndarray]:
    """Outputs, gradients and Hessian-vector products of the case's graph, compiled by the
    default pipeline to the numpy runtime."""
    b = built(case)
    return b.run(sg.Session(b.graph), list(case.inputs.values()), b.fetches)


# =============================================================================================
# Values and gradients against independent oracles
# =============================================================================================

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_and_two_orders_of_gradients_match_eager(case: Case) -> None:
    """The same function on eager tensors runs as Python (the branch taken, the loop
    unrolled); eager's double backward gives the Hessian-vector products."""
    got = _graph_values(case)
    if case.trips is not None:
        assert got[0] == case.trips, f"{case.name} took {got[0]} trips, not {case.trips}"
    expected = autodiff_run(eager, sg, case, built(case).floating)
    _assert_close(case, got, expected, "graph vs eager", rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_and_two_orders_of_gradients_match_torch(case: Case) -> None:
    torch = pytest.importorskip("torch")
    expected = autodiff_run(torch, PythonFlow, case, built(case).floating)
    _assert_close(case, _graph_values(case), expected, "graph vs torch", rtol=1e-10,
                  atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_match_finite_differences_of_the_graph(case: Case) -> None:
    """Central differences of the graph's own loss give its gradient; of (gradient . v),
    its Hessian-vector product. The inputs sit away from where a trip count changes."""
    b = built(case)
    session = sg.Session(b.graph)
    arrays = [a.copy() for a in case.inputs.values()]
    n = len(arrays)
    computed = _graph_values(case)[len(b.outputs):]
    for order, scalar in ((1, b.loss), (2, b.directional)):
        def f(a, scalar=scalar):
            return float(b.run(session, a, scalar))
        for k, name in enumerate(case.inputs):
            np.testing.assert_allclose(
                computed[(order - 1) * n + k], _numeric_gradient(f, arrays, k), rtol=1e-6,
                atol=1e-8, err_msg=f"{case.name}: order {order} with respect to {name}")


# =============================================================================================
# Runtimes and pass pipelines
# =============================================================================================

PIPELINES = [(), *((p,) for p in [*PASSES, "plan_memory"]), DEFAULT_PASSES]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_runtimes_and_every_pass_pipeline_agree_with_the_interpreter(case: Case) -> None:
    """The interpreter with no passes is the reference; the numpy runtime under no passes,
    each pass alone, and the default pipeline (also with debug=True, which checks the graph's
    invariants after every pass and the memory plan), and the interpreter under the default
    pipeline, compute the same outputs, gradients and Hessian-vector products."""
    b = built(case)
    arrays = list(case.inputs.values())

    def run(**options):
        return b.run(sg.Session(b.graph, **options), arrays, b.fetches)
    reference = run(backend="interpreter", passes=())
    runs = [dict(backend="interpreter"), *(dict(passes=p) for p in PIPELINES),
            dict(debug=True)]
    for options in runs:
        _assert_close(case, run(**options), reference, f"Session(**{options})", rtol=1e-12,
                      atol=1e-14)


# =============================================================================================
# Training through a scan
# =============================================================================================

RNN_DATA = dict(h0=np.random.default_rng(50).standard_normal(4) * 0.5,
                xs=np.random.default_rng(51).standard_normal((5, 3)),
                target=np.random.default_rng(52).uniform(-0.8, 0.8, (5, 4)))
RNN_WEIGHTS = dict(W=np.random.default_rng(53).standard_normal((4, 4)) * 0.4,
                   U=np.random.default_rng(54).standard_normal((3, 4)) * 0.4,
                   b=np.zeros(4))
OPTIMIZERS = {"SGD": dict(lr=0.2, momentum=0.9), "Adam": dict(lr=0.05)}
STEPS = 8


def rnn_loss(flow, h0, xs, target, W, U, b):
    """A tiny RNN over five steps: the mean squared error of its states to a target."""
    states = flow.scan(lambda h, x: (h @ W + x @ U + b).tanh(), xs, initializer=h0)
    return ((states - target) ** 2).mean()


def _train_graph(optimizer: str) -> tuple[list[float], list[np.ndarray]]:
    graph = sg.Graph()
    with graph.as_default():
        weights = [sg.Variable(v, name=n) for n, v in RNN_WEIGHTS.items()]
        loss = rnn_loss(sg, *(sg.constant(v) for v in RNN_DATA.values()), *weights)
        step = getattr(sg.optim, optimizer)(**OPTIMIZERS[optimizer]).minimize(loss)
    session = sg.Session(graph)
    losses = [float(session.run([loss, step])[0]) for _ in range(STEPS)]
    return losses, session.run(weights)


def _train_autograd(L, flow, optimizer: str) -> tuple[list[float], list[np.ndarray]]:
    """The same steps with a tensor library's own optimizer (eager or torch)."""
    weights = [L.tensor(v, requires_grad=True) for v in RNN_WEIGHTS.values()]
    opt = getattr(L.optim, optimizer)(weights, **OPTIMIZERS[optimizer])
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = rnn_loss(flow, *(L.tensor(v) for v in RNN_DATA.values()), *weights)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [as_array(w) for w in weights]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_sg_optim_trains_an_rnn_built_with_scan_as_eager_and_torch_do(optimizer: str) -> None:
    losses, weights = _train_graph(optimizer)
    assert losses[-1] < 0.7 * losses[0], losses
    oracles = [("eager", _train_autograd(eager, sg, optimizer))]
    try:
        import torch
    except ImportError:  # the eager oracle still runs
        torch = None
    if torch is not None:
        oracles.append(("torch", _train_autograd(torch, PythonFlow, optimizer)))
    for name, (their_losses, their_weights) in oracles:
        np.testing.assert_allclose(losses, their_losses, rtol=1e-10, err_msg=name)
        for ours, theirs, w in zip(weights, their_weights, RNN_WEIGHTS):
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name}: {w}")


# =============================================================================================
# Build-time errors
# =============================================================================================

@pytest.fixture
def graph():
    """A fresh graph, the default one for the whole test."""
    g = sg.Graph()
    with g.as_default():
        yield g


def _x_and_w() -> tuple[sg.Node, sg.Node]:
    """A placeholder x (3,) float64 and a Variable w, in the default graph."""
    return sg.placeholder((3,), "float64", name="x"), sg.Variable(np.ones(3), name="w")


ERRORS = {
    "cond_shapes": (lambda x, w: sg.cond(x.sum() > 0, lambda: x, lambda: x[:2]), ValueError,
                    ["sg.cond", "result 0 is (3,) float64 in true_fn",
                     "(2,) float64 in false_fn"]),
    "cond_dtypes": (lambda x, w: sg.cond(x.sum() > 0, lambda: x, lambda: sg.cast(x, "float32")),
                    ValueError, ["sg.cond", "(3,) float64 in true_fn", "(3,) float32 in false_fn"]),
    "cond_counts": (lambda x, w: sg.cond(x.sum() > 0, lambda: (x, x), lambda: x), ValueError,
                    ["sg.cond", "true_fn gives 2 values and false_fn 1"]),
    "while_shape": (lambda x, w: sg.while_loop(lambda v: v.sum() > 0,
                                               lambda v: sg.concat([v, v]), [x]),
                    ValueError, ["sg.while_loop", "loop variable 0 is (3,) float64 in loop_vars",
                                 "(6,) float64 in body"]),
    "while_dtype": (lambda x, w: sg.while_loop(lambda v: v.sum() > 0,
                                               lambda v: sg.cast(v, "float32"), [x]),
                    ValueError, ["loop variable 0 is (3,) float64", "(3,) float32 in body"]),
    "scan_accumulator": (lambda x, w: sg.scan(lambda a, e: a[:1] + e, x.reshape((3, 1)),
                                              initializer=x),
                         ValueError, ["sg.scan", "accumulator 0 is (3,) float64 in initializer",
                                      "(1,) float64 in fn"]),
    "scan_lengths": (lambda x, w: sg.scan(lambda a, e: a + e[0] * e[1], (x, x[:2]),
                                          initializer=w[0]),
                     ValueError, ["sg.scan", "same first dimension", "(3,)", "(2,)"]),
    "cond_float_pred": (lambda x, w: sg.cond(x.sum(), lambda: x, lambda: -x), TypeError,
                        ["sg.cond", "pred must be a bool scalar", "() float64"]),
    "cond_vector_pred": (lambda x, w: sg.cond(x > 0, lambda: x, lambda: -x), TypeError,
                         ["sg.cond", "pred must be a bool scalar", "(3,) bool"]),
    "while_float_test": (lambda x, w: sg.while_loop(lambda v: v.sum(), lambda v: v, [x]),
                         TypeError, ["sg.while_loop", "cond's result must be a bool scalar"]),
    "while_vector_test": (lambda x, w: sg.while_loop(lambda v: v > 0, lambda v: v, [x]),
                          TypeError, ["sg.while_loop", "must be a bool scalar", "(3,) bool"]),
    "placeholder_in_cond": (lambda x, w: sg.cond(x.sum() > 0, lambda: sg.placeholder((3,)),
                                                 lambda: x),
                            sg.GraphError, ["a placeholder cannot be created inside a "
                                            "control-flow body"]),
    "variable_in_while": (lambda x, w: sg.while_loop(lambda v: v.sum() > 0,
                                                     lambda v: v + sg.Variable(np.ones(3)), [x]),
                          sg.GraphError, ["a variable cannot be created inside a control-flow "
                                          "body"]),
    "assign_in_scan": (lambda x, w: sg.scan(lambda a, e: sg.assign(w, a + e),
                                            sg.stack([x, x]), initializer=x),
                       sg.GraphError, ["'w' cannot be assigned inside a control-flow body"]),
    "assign_outer_value_in_cond": (lambda x, w: sg.cond(x.sum() > 0, lambda: sg.assign(w, x),
                                                        lambda: x),
                                   sg.GraphError,
                                   ["'w' cannot be assigned inside a control-flow body"]),
}


@pytest.mark.parametrize("name", ERRORS)
def test_build_errors_say_what_is_wrong_and_where(graph, name: str) -> None:
    build, kind, fragments = ERRORS[name]
    x, w = _x_and_w()
    with pytest.raises(kind) as info:
        build(x, w)
    message = str(info.value)
    lines = {line for _, _, line in build.__code__.co_lines() if line}
    assert any(_at(line) in message for line in lines), message  # the user's line
    for fragment in fragments:
        assert fragment in message, message


LEAKS = {
    "outer_op_reads_it": lambda leaked, x, session: x + leaked,
    "its_own_op": lambda leaked, x, session: leaked + x,
    "its_own_reduction": lambda leaked, x, session: leaked.sum(),
    "another_cond_returns_it": lambda leaked, x, session: sg.cond(x.sum() > 0, lambda: leaked,
                                                                  lambda: x),
    "fetched": lambda leaked, x, session: session.run(leaked, {x: np.ones(3)}),
}


@pytest.mark.parametrize("use", LEAKS)
def test_a_value_built_inside_a_body_cannot_be_used_outside_it(graph, use: str) -> None:
    """A body is closed once built: whatever touches one of its nodes from outside (an op
    on it, a fetch of it) raises, naming it and saying it was built inside a body."""
    x, _ = _x_and_w()
    leaked = []

    def halve(v):
        leaked.append(v * 2)
        return v * 0.5
    sg.while_loop(lambda v: (v * v).sum() > 1.0, halve, x)
    before = len(leaked[0].graph.nodes)
    with pytest.raises(sg.GraphError) as info:
        LEAKS[use](leaked[0], x, sg.Session(graph))
    assert leaked[0].name in str(info.value) and "control-flow body" in str(info.value)
    assert len(leaked[0].graph.nodes) == before  # the finished body did not grow


# =============================================================================================
# sg.trace: one function, both modes
# =============================================================================================

def _flip_with_python_if(x):
    if x.sum() > 0:
        return x * 2
    return -x


def _flip_with_cond(x):
    return sg.cond(x.sum() > 0, lambda: x * 2, lambda: -x)


def test_trace_of_a_python_if_on_a_node_points_to_sg_cond_and_sg_while_loop() -> None:
    with pytest.raises(TypeError) as info:
        sg.trace(_flip_with_python_if, np.ones(3))
    assert "sg.cond" in str(info.value) and "sg.while_loop" in str(info.value)
    traced = sg.trace(_flip_with_cond, np.ones(3))
    for a in (np.array([1.0, -0.5, 2.0]), np.array([-1.0, 0.5, -2.0])):
        expected = a * 2 if a.sum() > 0 else -a
        np.testing.assert_array_equal(traced(a), expected)
        np.testing.assert_array_equal(_flip_with_cond(eager.tensor(a)).numpy(), expected)
        np.testing.assert_array_equal(_flip_with_python_if(eager.tensor(a)).numpy(), expected)
    assert traced.traces == 1


def _shrink_then_running_sums(x):
    """Halve x until its squared norm is below 1 (counting), then a decaying running sum."""
    trips, v = sg.while_loop(lambda i, v: (v * v).sum() > 1.0,
                             lambda i, v: (i + 1, v * 0.5), (0, x))
    return trips, sg.scan(lambda acc, e: acc * 0.9 + e.tanh(), v, reverse=True)


def test_trace_runs_while_loop_and_scan_as_calling_them_on_eager_tensors_does() -> None:
    traced = sg.trace(_shrink_then_running_sums, np.zeros(4))
    inputs = [np.array([0.1, -0.2, 0.3, 0.1]), np.array([1.0, 1.0, -0.5, 0.2]),
              np.random.default_rng(60).standard_normal(4) * 30]
    trip_counts = []
    for a in inputs:
        trips, sums = traced(a)
        eager_trips, eager_sums = _shrink_then_running_sums(eager.tensor(a))
        assert trips == eager_trips
        np.testing.assert_allclose(sums, eager_sums.numpy(), rtol=1e-15, atol=1e-15)
        trip_counts.append(int(trips))
    assert trip_counts[:2] == [0, 1] and trip_counts[2] > 3
    assert traced.traces == 1  # the trip count is data: one trace serves every one


# =============================================================================================
# Memory
# =============================================================================================

def _peak_bytes(session: sg.Session, fetch: sg.Node, feeds: dict) -> int:
    session.run(fetch, feeds)  # compile first: measure a run, not the compiler
    tracemalloc.start()
    try:
        session.run(fetch, feeds)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_loop_allocates_per_trip_only_when_a_gradient_needs_its_history() -> None:
    trips, size = 1000, 256
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder((size,), "float64", name="x")
        _, v = sg.while_loop(lambda i, v: i < trips, lambda i, v: (i + 1, v * 0.999 + 0.001),
                             (0, x))
        (dx,) = sg.gradients(v.sum(), [x])
    session = sg.Session(graph)
    feeds = {x: np.linspace(-1, 1, size)}
    vector = size * 8
    assert _peak_bytes(session, v, feeds) < 50 * vector  # 1000 kept values would be 2 MB
    # the gradient reads every trip's input: the same measurement sees the history
    assert _peak_bytes(session, dx, feeds) > trips * vector
    np.testing.assert_allclose(session.run(dx, feeds), np.full(size, 0.999 ** trips),
                               rtol=1e-12)
