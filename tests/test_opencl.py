"""The OpenCL runtime against the numpy runtime (the reference meaning): the op-spec table's
values and gradients, fused kernels as single launches, Variables kept on the device, the
generated source in explain(), and the errors a user meets without a device. The session,
optimizer and random-graph tests run on both runtimes through the ``backend`` fixture."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import requires_opencl
from opspecs import SPEC_IDS, SPECS, OpSpec, spec_graph

import staticgraph as sg
from staticgraph.ops import functional as F
from staticgraph.runtime import opencl
from staticgraph.runtime.opencl import DeviceArray, OpenCLUnavailable


def _both(graph, fetches, feeds):
    want = sg.Session(graph).run(fetches, feeds)
    got = sg.Session(graph, backend="opencl").run(fetches, feeds)
    return got, want


@requires_opencl
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_op_specs_and_their_gradients_match_the_numpy_runtime(spec: OpSpec) -> None:
    built = spec_graph(spec, np.float32)
    feeds = dict(zip(built.placeholders, built.arrays))
    got, want = _both(built.out.graph, [built.out, *built.grads], feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


# The specs whose programs lay out windows with im2col and add them back with col2im (a
# pool whose windows tile the image reshapes it instead).
WINDOWED = ["conv2d", "conv2d_strided_grouped", "conv2d_same", "conv_transpose2d",
            "conv_transpose2d_apart", "max_pool2d", "max_pool2d_padded", "max_pool2d_dilated",
            "avg_pool2d"]


@requires_opencl
@pytest.mark.parametrize("paths,dtype", [("device", np.float64), ("gpu_paths", np.float32)],
                         ids=["float64", "gpu_paths"])
@pytest.mark.parametrize("name", WINDOWED)
def test_convolutions_and_pools_gather_their_windows_on_the_device(name, paths, dtype,
                                                                   request) -> None:
    """im2col and col2im are device kernels (padding, stride, dilation, ceil_mode's extra
    row, -inf padding for max pooling), forward and backward; where matmul is the tiled
    kernel too (the GPU paths), the whole program stays on the device."""
    if paths == "gpu_paths":
        request.getfixturevalue("gpu_paths")
    built = spec_graph(SPECS[SPEC_IDS.index(name)], dtype)
    feeds = dict(zip(built.placeholders, built.arrays))
    fetches = [built.out, *built.grads]
    compiled = sg.Session(built.out.graph, backend="opencl").compiled(fetches, feeds)
    windows = [n for n in compiled.graph.nodes if n.op in ("im2col", "col2im")]
    assert {n.op for n in windows} == {"im2col", "col2im"}
    assert not set(windows) & set(compiled.placement.on_host)
    if paths == "gpu_paths":
        assert not compiled.executable.on_host
    got, want = _both(built.out.graph, fetches, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-12 if dtype == np.float64 else 1e-5,
                                   atol=1e-12 if dtype == np.float64 else 1e-5)


@requires_opencl
def test_windows_apart_and_windows_wholly_in_the_padding() -> None:
    """Pixels no window covers get no gradient (stride past the dilated kernel), and a
    window that lies wholly in the padding reads only padding."""
    rng = np.random.default_rng(12)
    with sg.Graph().as_default() as g:
        x = sg.placeholder((2, 3, 7, 8), "float64", name="x")
        w = sg.placeholder((4, 3, 2, 2), "float64", name="w")
        conv, pool = F.conv2d(x, w, stride=3, padding=3, dilation=2), F.max_pool2d(x, 2, 3)
        fetches = [conv, pool, *sg.gradients((conv * conv).sum(), [x, w]),
                   *sg.gradients((pool * pool).sum(), [x])]
    feeds = {x: rng.standard_normal((2, 3, 7, 8)), w: rng.standard_normal((4, 3, 2, 2))}
    compiled = sg.Session(g, backend="opencl").compiled(fetches, feeds)
    assert not {n.op for n in compiled.placement.on_host} & {"im2col", "col2im"}
    got, want = _both(g, fetches, feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert (got[0][:, :, 0] == 0).all()  # the first row of windows: all padding
    pool_grad = got[-1]  # rows and columns 2 and 5 lie between the pool's windows
    assert not pool_grad[:, :, 2::3].any() and not pool_grad[:, :, :, 2::3].any()
    assert pool_grad[:, :, :2, :2].any()


def _normalised():
    rng = np.random.default_rng(0)
    with sg.Graph().as_default() as g:
        x = sg.placeholder((64, 48), name="x")
        w = sg.Variable(rng.standard_normal(48).astype(np.float32), name="w")
        b = sg.Variable(rng.standard_normal(48).astype(np.float32), name="b")
        outs = {"layer_norm": sg.layer_norm(x, (48,), w, b), "softmax": sg.softmax(x, -1),
                "log_softmax": sg.log_softmax(x, 1), "gelu": sg.gelu(x, approximate="tanh")}
    return g, x, outs, rng.standard_normal((64, 48)).astype(np.float32)


@requires_opencl
@pytest.mark.parametrize("name", ["layer_norm", "softmax", "log_softmax", "gelu"])
def test_a_row_composite_is_one_kernel_launch(name) -> None:
    """The point of the backend: a row's reductions and its elementwise prologue and
    epilogue in one generated kernel, one pass over memory per row."""
    g, x, outs, value = _normalised()
    sess = sg.Session(g, backend="opencl")
    compiled = sess.compiled(outs[name], {x: value})
    assert compiled.executable.kernels_per_run == 1
    assert compiled.executable.source.count("__kernel void") == 1
    if name == "softmax" and opencl.get_device().kind == "cpu":  # exp(x - max) kept in the
        assert compiled.executable.source.count("exp(") == 1     # output between passes
    np.testing.assert_allclose(sess.run(outs[name], {x: value}),
                               sg.Session(g).run(outs[name], {x: value}), rtol=1e-5, atol=1e-6)


@requires_opencl
def test_explain_shows_the_generated_opencl_and_what_runs_on_the_host() -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((4, 3), name="x")
        out = (x.exp() + 1).log() @ sg.constant(np.ones((3, 2), np.float32))
        picked = x[x > 0]  # its size is the data's: the host computes it
    feeds = {x: np.arange(12, dtype=np.float32).reshape(4, 3) - 6}
    text = sg.Session(g, backend="opencl").explain([out, picked], feeds)
    assert "OpenCL C" in text and "__kernel void k(" in text and "log(" in text
    assert "on the host:" in text and "a shape the data decides" in text
    got, want = _both(g, [out, picked], feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _trained(backend: str, steps: int):
    rng = np.random.default_rng(3)
    with sg.Graph().as_default() as g:
        x = sg.placeholder((16, 5), name="x")
        w = sg.Variable(rng.standard_normal((5, 3)).astype(np.float32), name="w")
        b = sg.Variable(np.zeros(3, np.float32), name="b")
        loss = sg.cross_entropy(x @ w + b, sg.constant(rng.integers(0, 3, 16)))
        update = sg.optim.Adam(0.05).minimize(loss)
    sess = sg.Session(g, backend=backend)
    data = rng.standard_normal((16, 5)).astype(np.float32)
    losses = [float(sess.run([loss, update], {x: data})[0]) for _ in range(steps)]
    return g, sess, w, b, losses


@requires_opencl
def test_variables_stay_on_the_device_between_runs_and_read_back_on_demand(tmp_path) -> None:
    g, sess, w, b, losses = _trained("opencl", 5)
    _, reference, rw, rb, want = _trained("numpy", 5)
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    held = sess._value(w)
    assert isinstance(held, DeviceArray)  # no copy to the host after a step
    fetched = sess.run(w)
    assert isinstance(fetched, np.ndarray)
    np.testing.assert_allclose(fetched, reference.run(rw), rtol=1e-5, atol=1e-6)
    sess.save(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as saved:
        np.testing.assert_array_equal(saved["w"], fetched)


@requires_opencl
def test_a_value_still_held_survives_the_reuse_of_its_buffer() -> None:
    """A Variable has two device buffers, written in turn; a value someone still holds is
    read back to the host before its buffer is written again."""
    g, sess, w, b, _ = _trained("opencl", 1)
    held = sess._value(w)
    before = np.array(np.asarray(held))
    update = [n for n in g.nodes if n.op == "group"][0]
    x = [n for n in g.nodes if n.op == "placeholder"][0]
    for _ in range(3):
        sess.run(update, {x: np.ones((16, 5), np.float32)})
    np.testing.assert_array_equal(np.asarray(held), before)
    assert not np.array_equal(sess.run(w), before)


@requires_opencl
def test_onnx_export_reads_the_trained_values_from_the_device(tmp_path) -> None:
    pytest.importorskip("onnx")
    g, sess, w, b, _ = _trained("opencl", 3)
    x = [n for n in g.nodes if n.op == "placeholder"][0]
    logits = x @ w + b
    path = tmp_path / "model.onnx"
    sg.onnx.export(logits, [x], path, session=sess)
    data = np.ones((16, 5), np.float32)
    (got,) = sg.onnx.import_model(path)(data)
    np.testing.assert_allclose(got, sess.run(logits, {x: data}), rtol=1e-6)


@requires_opencl
def test_each_kernel_is_built_once_per_process() -> None:
    g, x, outs, value = _normalised()
    device = opencl.get_device()
    sg.Session(g, backend="opencl").run(outs["softmax"], {x: value})
    built = len(device.programs)
    sg.Session(g, backend="opencl").run(outs["softmax"], {x: value})
    assert len(device.programs) == built


@requires_opencl
def test_device_choices_are_checked_with_a_listing_of_what_exists() -> None:
    g, x, outs, value = _normalised()
    with pytest.raises(OpenCLUnavailable, match="index 99 is out of range: there are"):
        sg.Session(g, backend="opencl", device=99)
    with pytest.raises(ValueError, match="device must be 'cpu', 'gpu', an index or None"):
        sg.Session(g, backend="opencl", device="tpu")
    first = opencl.get_device(0)
    assert sg.Session(g, backend="opencl", device=first.kind).run(
        outs["gelu"], {x: value}).shape == (64, 48)


def test_device_is_only_for_the_opencl_backend() -> None:
    with pytest.raises(ValueError, match="device='gpu' is for backend='opencl'"):
        sg.Session(sg.Graph(), device="gpu")


def test_without_pyopencl_the_error_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyopencl", None)  # import pyopencl -> ImportError
    with pytest.raises(OpenCLUnavailable, match="pyopencl is not installed.*pocl-opencl-icd"):
        sg.Session(sg.Graph(), backend="opencl")


@requires_opencl
def test_float64_on_a_device_without_fp64_names_the_node(monkeypatch) -> None:
    monkeypatch.setattr(opencl.Device, "has_fp64", property(lambda self: False))
    with sg.Graph().as_default() as g:
        x = sg.placeholder((3,), "float64", name="x")
        y = x * 2
    with pytest.raises(TypeError, match=r"'x' \(built at .*test_opencl.py:\d+\) is float64"):
        sg.Session(g, backend="opencl").run(y, {x: np.ones(3)})


@pytest.fixture
def gpu_paths(monkeypatch):
    """The code a GPU gets (a work-group per row with trees in local memory, grid-stride
    full reductions, the tiled matmul kernel, feeds copied in and fetches copied out), run
    on whatever device there is."""
    monkeypatch.setattr(opencl.Device, "kind", property(lambda self: "gpu"))
    monkeypatch.setattr(opencl.Device, "shares_host_memory", property(lambda self: False))


@requires_opencl
@pytest.mark.parametrize("a_shape,b_shape", [
    ((5, 7), (7, 3)), ((37, 40), (40, 18)), ((2, 3, 4), (4, 5)), ((4,), (4, 6)),
    ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
], ids=["small", "ragged_tiles", "batched", "vector_matrix", "matrix_vector", "dot",
        "broadcast_batch"])
def test_the_tiled_matmul_kernel_matches_numpy(gpu_paths, a_shape, b_shape) -> None:
    rng = np.random.default_rng(0)
    with sg.Graph().as_default() as g:
        a = sg.placeholder(a_shape, name="a")
        b = sg.placeholder(b_shape, name="b")
        out = a @ b
    feeds = {a: rng.standard_normal(a_shape).astype(np.float32),
             b: rng.standard_normal(b_shape).astype(np.float32)}
    sess = sg.Session(g, backend="opencl")
    assert not sess.compiled(out, feeds).executable.on_host  # the kernel, not the host
    np.testing.assert_allclose(sess.run(out, feeds), feeds[a] @ feeds[b], rtol=1e-5, atol=1e-5)


@requires_opencl
@pytest.mark.parametrize("name", ["layer_norm", "softmax", "log_softmax", "gelu"])
def test_row_composites_on_the_gpu_paths(gpu_paths, name) -> None:
    g, x, outs, value = _normalised()
    with g.as_default():
        (dx,) = sg.gradients(outs[name].sum(), [x])
    got, want = _both(g, [outs[name], dx], {x: value})
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@requires_opencl
def test_a_training_step_on_the_gpu_paths(gpu_paths) -> None:
    _, _, _, _, got = _trained("opencl", 4)
    _, _, _, _, want = _trained("numpy", 4)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@requires_opencl
@pytest.mark.parametrize("width", [48, 45], ids=["vector_rows", "scalar_rows"])
def test_row_kernels_with_their_gradients_and_special_values(width) -> None:
    """On a CPU a row loop steps over float16 vectors where the row's length allows (48), and
    stays scalar where it does not (45); either way the values are the numpy runtime's, inf
    and nan included (a nan row's max is nan, as numpy's and torch's)."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((6, width)).astype(np.float32)
    data[1, 3], data[2, 7], data[3, :] = np.inf, np.nan, -np.inf
    with sg.Graph().as_default() as g:
        x = sg.placeholder((6, width), name="x")
        w = sg.constant(rng.standard_normal(width).astype(np.float32))
        outs = [sg.softmax(x, -1), sg.log_softmax(x, -1), sg.layer_norm(x, (width,), w),
                x.amax(1), x.amin(1, keepdim=True)]
        grads = sg.gradients(sum((o * 1.5).sum() for o in outs[:3]), [x])
    got, want = _both(g, outs + grads, {x: data})
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    source = sg.Session(g, backend="opencl").compiled(outs, {x: data}).executable.source
    if opencl.get_device().kind == "cpu":
        assert ("vload16" in source) == (width % 16 == 0)


@requires_opencl
def test_a_transpose_read_only_by_matmuls_is_folded_into_their_indexing(gpu_paths) -> None:
    rng = np.random.default_rng(2)
    with sg.Graph().as_default() as g:
        x = sg.placeholder((6, 5), name="x")
        w = sg.Variable(rng.standard_normal((3, 5)).astype(np.float32), name="w")
        y = x @ w.T  # torch's Linear
        (dx, dw) = sg.gradients((y * y).sum(), [x, w])  # dx = g @ w, dw = g.T @ x
    feeds = {x: rng.standard_normal((6, 5)).astype(np.float32)}
    compiled = sg.Session(g, backend="opencl").compiled([y, dx, dw], feeds)
    folded = compiled.placement.folded
    assert len(folded) == 2 and {n.op for n in folded} == {"transpose"}  # w.T and x.T
    assert compiled.executable.source.count("= transpose") == 1  # dw's own, fetched
    got, want = _both(g, [y, dx, dw], feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@requires_opencl
def test_empty_feeds_give_what_numpy_gives() -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((None, 3), name="x")
        outs = [(x * 2).exp().sum(1), x.T @ x, (x * x).mean(0), x.sum(), x.softmax(-1)]
    got, want = _both(g, outs, {x: np.zeros((0, 3), np.float32)})
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def _softmax_3d():
    with sg.Graph().as_default() as g:
        x = sg.placeholder((2, 3, 16), name="x")
        y = sg.softmax(x, -1)
        mean_free = x - x.mean(1, keepdim=True)
        (dx,) = sg.gradients((y * y).sum() + (mean_free * mean_free).sum(), [x])
    return g, x, [y, mean_free, dx]


@requires_opencl
@pytest.mark.parametrize("paths", ["device", "gpu_paths"])
def test_reductions_over_inner_axes_of_3d_values(paths, request) -> None:
    """Attention-shaped softmax: a reduction whose kept and reduced indices combine (the index
    arithmetic must bracket them)."""
    if paths == "gpu_paths":
        request.getfixturevalue("gpu_paths")
    g, x, outs = _softmax_3d()
    data = np.random.default_rng(9).standard_normal((2, 3, 16)).astype(np.float32)
    got, want = _both(g, outs, {x: data})
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@requires_opencl
def test_a_view_read_by_host_steps_keeps_its_input_alive() -> None:
    """On a CPU device matmul runs on the host and reads a.T as a numpy view of a's buffer:
    the kernels between must not take that buffer over."""
    rng = np.random.default_rng(10)
    with sg.Graph().as_default() as g:
        x, y = sg.placeholder((4, 4), name="x"), sg.placeholder((4, 4), name="y")
        a = (x * 2).exp()
        outs = [a.T @ (y + 1).exp(), a.reshape((2, 8)) @ (y * 3).exp().reshape((8, 2))]
    feeds = {x: rng.standard_normal((4, 4)).astype(np.float32),
             y: rng.standard_normal((4, 4)).astype(np.float32)}
    for out in outs:  # one at a time: each plan then gives exp(y..) the buffer a had
        (got,), (want,) = _both(g, [out], feeds)
        np.testing.assert_allclose(got, want, rtol=1e-5)


@requires_opencl
def test_a_stored_value_read_by_another_output_is_not_overwritten() -> None:
    rng = np.random.default_rng(11)
    with sg.Graph().as_default() as g:
        x, y = sg.placeholder((3, 1, 16), name="x"), sg.placeholder((3, 4, 16), name="y")
        e = (x - x.amax(2, keepdim=True)).exp()
        outs = [e / e.sum(2, keepdim=True), e * y]
    feeds = {x: rng.standard_normal((3, 1, 16)).astype(np.float32),
             y: rng.standard_normal((3, 4, 16)).astype(np.float32)}
    got, want = _both(g, outs, feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@requires_opencl
def test_a_device_array_reads_back_a_copy_when_asked() -> None:
    g, sess, w, b, _ = _trained("opencl", 1)
    held = sess._value(w)
    first, second = np.array(held), np.array(held)
    assert first is not second and first.flags.writeable
    first[...] = 0
    assert np.array(held).any()
