"""Control flow on the OpenCL runtime (the bodies as device kernels, the loop on the host)
against the numpy runtime: sg.cond both ways, while loops of 0, 1 and many trips, scans
forward and reverse, nesting, first- and second-order gradients, Variables read in a body
and trained through it; on the shared-memory path (PoCL) and on the GPU paths (every trip's
values copied in and out); float64 bodies refused on a device without fp64, and errors in a
body naming its node and line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_opencl
from test_opencl import gpu_paths  # noqa: F401  (a fixture: the code a GPU gets)

import staticgraph as sg
from staticgraph.runtime import opencl

pytestmark = requires_opencl

rng = np.random.default_rng(7)


def _randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture(params=["shared", "gpu_paths"])
def paths(request) -> str:
    """Where the device shares the host's memory (no copies per trip), and the GPU paths."""
    if request.param == "gpu_paths":
        request.getfixturevalue("gpu_paths")
    return request.param


def _compare(graph, fetches, feed_list, rtol=1e-5, atol=1e-5) -> sg.Session:
    """Every feed of ``feed_list`` through one numpy and one OpenCL session (each compiles
    once per shape); the results must agree."""
    want, got = sg.Session(graph), sg.Session(graph, backend="opencl")
    for feeds in feed_list:
        for w, g in zip(want.run(fetches, feeds), got.run(fetches, feeds)):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return got


def test_cond_takes_either_branch_and_differentiates(paths) -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((4, 3), name="x")
        w = sg.placeholder((3,), name="w")
        y = sg.cond(x.sum() > 0, lambda: sg.tanh(x * w) + 1.0, lambda: x.exp() - w)
        grads = sg.gradients((y * y).sum(), [x, w])
    value = np.abs(_randn(4, 3))
    feeds = [{x: value, w: _randn(3)}, {x: -value, w: _randn(3)}]
    _compare(g, [y, *grads], feeds)


def test_while_loop_runs_zero_one_and_many_trips(paths) -> None:
    """The trip count comes from a fed value; the gradients reverse over the history."""
    with sg.Graph().as_default() as g:
        x = sg.placeholder((2, 3), name="x")
        w = sg.placeholder((3,), name="w")
        n = sg.placeholder((), "int64", name="n")
        i, h = sg.while_loop(lambda i, h: i < n, lambda i, h: (i + 1, sg.tanh(h * w) + x),
                             (0, x))
        grads = sg.gradients((h * h).sum(), [x, w])
    x_value, w_value = _randn(2, 3), _randn(3)
    _compare(g, [i, h, *grads], [{x: x_value, w: w_value, n: trips} for trips in (0, 1, 5)])


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_of_an_rnn_cell_and_its_gradients(paths, reverse) -> None:
    """A matmul in the body: the host's BLAS on a CPU device, the tiled kernel on a GPU; the
    weights a Variable, read where the device keeps it."""
    with sg.Graph().as_default() as g:
        xs = sg.placeholder((5, 2, 3), name="xs")
        h0 = sg.placeholder((2, 4), name="h0")
        w = sg.Variable(_randn(4, 4) * 0.5, name="w")
        u = sg.Variable(_randn(3, 4) * 0.5, name="u")
        hs = sg.scan(lambda h, x: sg.tanh(h @ w + x @ u), xs, initializer=h0, reverse=reverse)
        loss = (hs * hs).mean()
        grads = sg.gradients(loss, [xs, h0, w, u])
    feeds = {xs: _randn(5, 2, 3), h0: _randn(2, 4)}
    _compare(g, [hs, *grads], [feeds])


def test_training_through_a_scan_matches_step_by_step() -> None:
    """Variables updated by an optimizer from gradients through a loop: the new values stay
    on the device, the next run's loop reads them there."""
    with sg.Graph().as_default() as g:
        xs = sg.placeholder((6, 3), name="xs")
        w = sg.Variable(_randn(3) * 0.5, name="w")
        final = sg.scan(lambda a, x: sg.tanh(a * w + x), xs, initializer=sg.zeros((3,)))[-1]
        loss = (final * final).sum()
        step = sg.optim.SGD(0.1).minimize(loss)
    feeds = {xs: _randn(6, 3)}
    sessions = [sg.Session(g), sg.Session(g, backend="opencl")]
    for _ in range(3):
        losses = [s.run([loss, step], feeds)[0] for s in sessions]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    np.testing.assert_allclose(sessions[1].run(w), sessions[0].run(w), rtol=1e-5)


def test_a_variable_assigned_a_loops_result(paths) -> None:
    """The loop's result (the host's) becomes the Variable's new value on the device."""
    with sg.Graph().as_default() as g:
        w = sg.Variable(np.linspace(-1, 1, 3, dtype=np.float32), name="w")
        n = sg.placeholder((), "int64", name="n")
        _, v = sg.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, sg.sin(v) * 2.0), (0, w))
        update = sg.assign(w, v)
    sessions = [sg.Session(g), sg.Session(g, backend="opencl")]
    for trips in (2, 0, 3):
        want, got = (s.run(update, {n: trips}) for s in sessions)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(sessions[1].run(w), sessions[0].run(w), rtol=1e-5)


def test_a_cond_inside_a_while_loop(paths) -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((5,), name="x")
        n = sg.placeholder((), "int64", name="n")

        def step(i, h):
            return i + 1, sg.cond(h.sum() > 0, lambda: h * 0.5 - 1.0, lambda: sg.sin(h) + 2.0)

        _, h = sg.while_loop(lambda i, h: i < n, step, (0, x))
        grads = sg.gradients((h * h).sum(), [x])
    _compare(g, [h, *grads], [{x: _randn(5), n: trips} for trips in (0, 3, 7)])


def test_a_scan_inside_a_scan(paths) -> None:
    """Rows scanned, each row's elements scanned within, forward outside and reverse inside."""
    with sg.Graph().as_default() as g:
        m = sg.placeholder((4, 3), name="m")
        c = sg.placeholder((), name="c")

        def row(acc, r):
            inner = sg.scan(lambda a, e: sg.tanh(a * c + e), r, initializer=acc, reverse=True)
            return inner[0] + acc * 0.5

        out = sg.scan(row, m, initializer=sg.zeros(()))
        grads = sg.gradients((out * out).sum(), [m, c])
    _compare(g, [out, *grads], [{m: _randn(4, 3), c: np.float32(0.7)}])


def test_second_order_gradient_through_a_while_loop() -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((3,), "float64", name="x")
        n = sg.placeholder((), "int64", name="n")
        _, h = sg.while_loop(lambda i, h: i < n, lambda i, h: (i + 1, sg.sin(h) * x), (0, x))
        (dx,) = sg.gradients(h.sum(), [x])
        (ddx,) = sg.gradients((dx * dx).sum(), [x])
    feeds = [{x: rng.standard_normal(3), n: trips} for trips in (1, 4)]
    _compare(g, [h, dx, ddx], feeds, rtol=1e-10, atol=1e-12)


def test_a_float64_body_is_refused_where_the_device_has_no_fp64(monkeypatch) -> None:
    """The graph's own values are float32; a node inside the body is float64."""
    monkeypatch.setattr(opencl.Device, "has_fp64", property(lambda self: False))
    with sg.Graph().as_default() as g:
        x = sg.placeholder((3,), name="x")
        y = sg.cond(x.sum() > 0, lambda: (x.double() * 2.0).float(),
                    lambda: x)
    with pytest.raises(TypeError, match=r"in the body of cond node 'cond' \(built at "
                                        r".*test_opencl_control.py:\d+\) is float64"):
        sg.Session(g, backend="opencl").run(y, {x: np.ones(3, np.float32)})


def test_an_error_in_a_body_names_its_node_and_line() -> None:
    with sg.Graph().as_default() as g:
        xs = sg.placeholder((4, 3), name="xs")
        n = sg.placeholder((), "int64", name="n")
        _, acc = sg.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + xs[i]),
                               (0, sg.zeros((3,))))
    sess = sg.Session(g, backend="opencl")
    feeds = {xs: np.ones((4, 3), np.float32)}
    np.testing.assert_array_equal(sess.run(acc, {**feeds, n: 4}), [4, 4, 4])
    with pytest.raises(sg.RunError, match=r"getitem node 'while_loop/body/getitem' \(built at "
                                          r".*test_opencl_control.py:\d+\).*out of bounds"):
        sess.run(acc, {**feeds, n: 5})


def test_explain_and_profile_include_the_bodies() -> None:
    """Every device kernel of this graph is in a body: its source is in explain(), its time
    in profile() under its kind, the loop's own (the host's) under "control"."""
    with sg.Graph().as_default() as g:
        xs = sg.placeholder((8, 16), name="xs")
        ys = sg.scan(lambda a, x: a * 0.5 + x, xs, initializer=sg.zeros((16,)))
    feeds = {xs: _randn(8, 16)}
    sess = sg.Session(g, backend="opencl")
    compiled = sess.compiled(ys, feeds)
    assert compiled.executable.kernels_per_run == 0
    assert "scan's body: " in compiled.executable.source
    assert "__kernel void" in sess.explain(ys, feeds)
    timings = sess.profile(ys, feeds)
    assert {"control", "elementwise"} <= set(timings)
