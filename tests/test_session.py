"""Define-and-run as a user drives it: building graphs (names, inferred shapes, errors that
point at the user's line), sg.gradients, Session.run (fetch structures, pruning, the plan
cache, feed checks), Variables and checkpoints, sg.compile / sg.trace, and the graph
optimizers against torch.optim."""

from __future__ import annotations

import collections
import inspect
import math
import os
import re

import numpy as np
import pytest
from scipy import special

import eager
import eager.nn.functional as F
import staticgraph as sg
from staticgraph.ops import functional as SF
from staticgraph.runtime import interpreter

THIS_FILE = os.path.basename(__file__)


def _at(line: int) -> str:
    """What a message says for a node built on ``line`` of this file."""
    return f"{THIS_FILE}:{line}"


@pytest.fixture
def graph():
    """A fresh graph, the default one for the whole test."""
    g = sg.Graph()
    with g.as_default():
        yield g


@pytest.fixture
def kernel_calls(monkeypatch) -> list[str]:
    """Names of the nodes whose kernels the interpreter runs, in order (the tests that use it
    run the interpreter with no passes, so each node is its own kernel)."""
    calls: list[str] = []
    real = interpreter.run_kernel

    def counting(node, arrays):
        calls.append(node.name)
        return real(node, arrays)

    monkeypatch.setattr(interpreter, "run_kernel", counting)
    return calls


# =============================================================================================
# Building
# =============================================================================================

def test_nodes_go_to_the_default_graph_unless_another_is_made_default() -> None:
    sg.reset_default_graph()
    default = sg.get_default_graph()
    x = sg.placeholder((2,), name="x")
    assert x.graph is default and default.nodes == (x,)
    g, inner = sg.Graph(), sg.Graph()
    with g.as_default() as entered:
        assert entered is g and sg.get_default_graph() is g
        y = sg.placeholder((2,), name="y")
        with inner.as_default():
            z = sg.constant(1.0)
        w = y * 2
    assert sg.get_default_graph() is default
    assert y.graph is g and w.graph is g and z.graph is inner
    assert [n.name for n in g.nodes] == ["y", "constant", "mul"]
    assert inner.nodes == (z,) and default.nodes == (x,)
    sg.reset_default_graph()
    assert sg.get_default_graph() is not default and len(sg.get_default_graph()) == 0


@pytest.mark.parametrize("make", [
    lambda g: sg.placeholder((2,), graph=g), lambda g: sg.constant(1.0, graph=g),
    lambda g: sg.Variable([1.0], graph=g)], ids=["placeholder", "constant", "Variable"])
def test_an_explicit_graph_argument_is_used_even_when_that_graph_is_empty(graph, make) -> None:
    target = sg.Graph()
    node = make(target)
    assert node.graph is target and target.nodes == (node,) and len(graph) == 0


def test_node_names_are_unique_per_op_and_keep_user_names_and_scopes(graph) -> None:
    x = sg.placeholder((None, 4), name="x")
    w = sg.Variable(np.zeros((4, 3), np.float32), name="w")
    first, second = x @ w, x @ w
    assert (first.name, second.name) == ("matmul", "matmul_1")
    assert sg.matmul(x, w).name == "matmul_2"
    assert (x @ w).name == "matmul_3"
    assert sg.placeholder((1,), name="x").name == "x_1"  # a taken user name is made unique
    logits = sg.add(first, 1.0)
    assert logits.name == "add"
    with sg.name_scope("layer1") as scope:
        assert scope == "layer1"
        h = (x @ w).relu()
        b = sg.Variable(np.zeros(3, np.float32), name="b")
        with sg.name_scope("inner") as inner:
            assert inner == "layer1/inner"
            out = h + b
    assert h.name == "layer1/relu" and h.inputs[0].name == "layer1/matmul"
    assert b.name == "layer1/b" and out.name == "layer1/inner/add"
    assert (x @ w).name == "matmul_4"  # the scope ended
    assert graph.get("layer1/b") is b and graph.get("matmul_1") is second
    with pytest.raises(sg.GraphError, match="no node named 'layer2/b'"):
        graph.get("layer2/b")


def test_repr_shows_name_op_shape_and_dtype(graph) -> None:
    x = sg.placeholder((None, 784), name="x")
    y = x @ sg.Variable(np.zeros((784, 10), np.float32), name="w")
    assert repr(y) == "<sg.Node 'matmul' op=matmul shape=(None, 10) dtype=float32>"
    assert repr(sg.placeholder((3,), "int64", name="n")) == \
        "<sg.Node 'n' op=placeholder shape=(3,) dtype=int64>"
    assert repr(sg.constant(2.0)) == "<sg.Node 'constant' op=constant shape=() dtype=float32>"


def test_shapes_and_dtypes_are_inferred_with_unknown_dimensions_propagated(graph) -> None:
    x = sg.placeholder((None, 784), name="x")
    w = sg.Variable(np.zeros((784, 10), np.float32), name="w")
    b = sg.Variable(np.zeros(10, np.float32), name="b")
    labels = sg.placeholder((None,), "int64", name="labels")
    logits = x @ w + b
    built = {
        "logits": (logits, (None, 10), np.float32),
        "row_sums": (sg.sum(logits, axis=1), (None,), np.float32),
        "keepdims": (sg.sum(logits, axis=1, keepdims=True), (None, 1), np.float32),
        "col_means": (sg.mean(logits, axis=0), (10,), np.float32),
        "transposed": (sg.transpose(logits), (10, None), np.float32),
        "argmax": (sg.argmax(logits, axis=1), (None,), np.int64),
        "correct": (sg.argmax(logits, axis=1) == labels, (None,), np.bool_),
        "loss": (sg.cross_entropy(logits, labels), (), np.float32),
        "double": (sg.cast(logits, sg.float64), (None, 10), np.float64),
    }
    for name, (node, shape, dtype) in built.items():
        assert (node.shape, node.dtype, node.ndim) == (shape, np.dtype(dtype), len(shape)), name
    values = sg.Session(graph).run({k: v[0] for k, v in built.items()},
                                   {x: np.ones((5, 784), np.float32), labels: np.arange(5)})
    for name, (node, shape, dtype) in built.items():
        assert values[name].dtype == dtype, name
        assert values[name].shape == tuple(5 if d is None else d for d in shape), name


def test_a_shape_mismatch_raises_at_build_time_naming_op_shapes_and_line(graph) -> None:
    x = sg.placeholder((None, 784), name="x")
    w = sg.Variable(np.zeros((748, 10), np.float32), name="w")
    before = len(graph)
    with pytest.raises(sg.ShapeError) as info:
        line = inspect.currentframe().f_lineno + 1
        x @ w
    message = str(info.value)
    assert message.startswith("matmul at ") and _at(line) in message
    assert "(None, 784)" in message and "(748, 10)" in message
    assert "x (None, 784) float32" in message and "w (748, 10) float32" in message
    assert isinstance(info.value, ValueError)  # what numpy/TF habits catch
    assert len(graph) == before  # nothing half-built was added


@pytest.mark.parametrize("case", [
    pytest.param(("add", lambda a, b: a + b), id="add"),
    pytest.param(("concat", lambda a, b: sg.concat([a, b], axis=0)), id="concat"),
    pytest.param(("reshape", lambda a, b: sg.reshape(b, (4, 4))), id="reshape"),
    pytest.param(("layer_norm", lambda a, b: sg.layer_norm(a, 3)), id="layer_norm"),
])
def test_shape_errors_of_other_ops_name_op_shapes_and_line(graph, case) -> None:
    op, build = case
    a = sg.placeholder((None, 4), name="a")
    b = sg.placeholder((2, 3), name="b")
    with pytest.raises(sg.ShapeError) as info:
        build(a, b)
    message = str(info.value)
    assert op in message and _at(build.__code__.co_firstlineno) in message
    assert "(None, 4)" in message or "[None, 4]" in message or "(2, 3)" in message


@pytest.mark.parametrize("build", [
    lambda x: x * 2.5, lambda x: 2.5 * x, lambda x: x + 1, lambda x: x - np.float64(0.5),
    lambda x: x / 3, lambda x: x ** 2, lambda x: 1.0 / x, lambda x: sg.maximum(x, 0.5),
    lambda x: sg.where(x > 0, x, 0.0), lambda x: sg.mean(x * 1e-3),
], ids=["mul", "rmul", "add_int", "sub_np_float64", "div", "pow", "rdiv", "maximum", "where",
        "mean"])
def test_python_scalars_do_not_upcast_float32_graphs(graph, build) -> None:
    x = sg.placeholder((None, 3), name="x")
    out = build(x)
    assert out.dtype == np.float32
    value = sg.Session(graph).run(out, {x: np.full((2, 3), 1.5, np.float32)})
    assert value.dtype == np.float32


def test_a_float_scalar_makes_an_int_graph_default_float(graph) -> None:
    i = sg.placeholder((2,), "int64", name="i")
    assert (i + 1).dtype == np.int64 and (i * 2.5).dtype == np.float32
    np.testing.assert_array_equal(sg.Session(graph).run(i * 2.5, {i: [1, 2]}),
                                  np.float32([2.5, 5.0]))


def test_bool_of_a_node_raises_type_error_explaining_control_flow(graph) -> None:
    x = sg.placeholder((3,), name="x")
    total = x.sum()
    with pytest.raises(TypeError) as info:
        line = inspect.currentframe().f_lineno + 1
        if total > 0:
            pass
    message = str(info.value)
    assert "'gt'" in message and _at(line) in message  # where the comparison was built
    assert "not known until the graph runs" in message and "sg.where" in message
    with pytest.raises(TypeError, match=r"'sum' .* is not known until the graph runs"):
        bool(total)
    with pytest.raises(TypeError, match="first dimension is not known"):
        len(sg.placeholder((None, 2), name="batch"))
    assert len(x) == 3 and [n.shape for n in x] == [(), (), ()]


def test_mixing_nodes_of_two_graphs_raises_graph_error() -> None:
    g1, g2 = sg.Graph(), sg.Graph()
    with g1.as_default():
        a = sg.placeholder((2,), name="a")
    with g2.as_default():
        b = sg.placeholder((2,), name="b")
    for build in (lambda: a + b, lambda: b * a, lambda: sg.matmul(a, b),
                  lambda: sg.concat([a, b])):
        with pytest.raises(sg.GraphError, match="belongs to another graph"):
            build()
    with pytest.raises(sg.GraphError, match="is not a node of the graph"):
        sg.gradients(a.sum(), [b])
    assert issubclass(sg.GraphError, ValueError)


def _small_graph() -> tuple[sg.Graph, dict[str, sg.Node], int]:
    g = sg.Graph()
    with g.as_default():
        line = inspect.currentframe().f_lineno + 1
        x = sg.placeholder((None, 3), name="x")
        w = sg.Variable(np.ones((3, 2), np.float32), name="w")
        y = (x @ w).relu()
    return g, {"x": x, "w": w, "y": y}, line


def test_to_networkx_has_a_vertex_per_node_an_edge_per_input_and_attributes() -> None:
    g, n, line = _small_graph()
    nxg = g.to_networkx()
    assert set(nxg.nodes) == {"x", "w", "matmul", "relu"}
    assert set(nxg.edges) == {("x", "matmul"), ("w", "matmul"), ("matmul", "relu")}
    assert nxg.nodes["x"]["op"] == "placeholder" and nxg.nodes["x"]["shape"] == (None, 3)
    assert nxg.nodes["matmul"] == {"op": "matmul", "shape": (None, 2), "dtype": "float32",
                                   "location": nxg.nodes["matmul"]["location"]}
    assert nxg.nodes["matmul"]["location"].endswith(_at(line + 2))
    assert nxg.nodes["w"]["location"].endswith(_at(line + 1))


def test_to_dot_names_every_node_and_every_edge() -> None:
    g, n, _ = _small_graph()
    dot = g.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for node in g.nodes:
        assert f'"{node.name}" [label="{node.name}\\n{node.op}' in dot
    for edge in ('"x" -> "matmul";', '"w" -> "matmul";', '"matmul" -> "relu";'):
        assert edge in dot
    assert dot.count("->") == 3
    only = g.to_dot([n["x"], n["y"]])  # a subset: edges only between chosen nodes
    assert '"relu"' in only and '"matmul"' not in only and "->" not in only


def test_str_of_a_graph_lists_names_ops_inputs_and_locations() -> None:
    g, n, line = _small_graph()
    rows = str(g).splitlines()
    assert rows[0].split() == ["name", "op", "inputs", "shape", "dtype", "built", "at"]
    assert len(rows) == 1 + len(g)
    expected = {"x": ("placeholder", line), "w": ("variable", line + 1),
                "matmul": ("matmul", line + 2), "relu": ("relu", line + 2)}
    for row, node in zip(rows[1:], g.nodes):
        op, at = expected[node.name]
        fields = row.split()
        assert fields[0] == node.name and fields[1] == op and row.endswith(_at(at))
    assert "x, w" in rows[3] and "(None, 2)" in rows[3] and "float32" in rows[3]


# -- sg.* functions against numpy ------------------------------------------------------------

def _np_softmax(a, axis):
    e = np.exp(a - a.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _np_layer_norm(a, weight, bias, eps):
    centered = a - a.mean(-1, keepdims=True)
    return centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + eps) * weight + bias


_LABELS = np.array([0, 3, 1])
_W = np.linspace(-1.0, 1.0, 8).reshape(4, 2)
_GAMMA, _BETA = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.1, 0.0, -0.2, 0.3])

NUMPY_CASES = {
    "sum": (lambda x: sg.sum(x), lambda a: a.sum()),
    "sum_axis_keepdims": (lambda x: sg.sum(x, axis=1, keepdims=True),
                          lambda a: a.sum(1, keepdims=True)),
    "sum_axes": (lambda x: sg.sum(x, axis=(0, 1)), lambda a: a.sum((0, 1))),
    "mean_axis": (lambda x: sg.mean(x, axis=0), lambda a: a.mean(0)),
    "mean_keepdims": (lambda x: sg.mean(x, axis=-1, keepdims=True),
                      lambda a: a.mean(-1, keepdims=True)),
    "max_axis": (lambda x: sg.max(x, axis=1), lambda a: a.max(1)),
    "max": (lambda x: sg.max(x), lambda a: a.max()),
    "transpose_perm": (lambda x: sg.transpose(x, [1, 0]), lambda a: a.transpose(1, 0)),
    "transpose_3d": (lambda x: sg.transpose(sg.reshape(x, (3, 2, 2)), (2, 0, 1)),
                     lambda a: a.reshape(3, 2, 2).transpose(2, 0, 1)),
    "reshape": (lambda x: sg.reshape(x, (2, 6)), lambda a: a.reshape(2, 6)),
    "reshape_infer": (lambda x: sg.reshape(x, [-1]), lambda a: a.reshape(-1)),
    "softmax": (lambda x: sg.softmax(x, axis=1), lambda a: _np_softmax(a, 1)),
    "softmax_axis0": (lambda x: sg.softmax(x, 0), lambda a: _np_softmax(a, 0)),
    "log_softmax": (lambda x: sg.log_softmax(x, axis=-1),
                    lambda a: np.log(_np_softmax(a, -1))),
    "where": (lambda x: sg.where(x > 0, x, 0.0), lambda a: np.where(a > 0, a, 0.0)),
    "where_nodes": (lambda x: sg.where(x < 0.5, x * 2, -x), lambda a: np.where(a < 0.5, 2 * a, -a)),
    "concat": (lambda x: sg.concat([x, x * 2], axis=1),
               lambda a: np.concatenate([a, 2 * a], axis=1)),
    "concat_axis0": (lambda x: sg.concat([x, x + 1]), lambda a: np.concatenate([a, a + 1])),
    "stack": (lambda x: sg.stack([x, -x], axis=1), lambda a: np.stack([a, -a], axis=1)),
    "cross_entropy": (
        lambda x: sg.cross_entropy(x, _LABELS),
        lambda a: -np.log(_np_softmax(a, 1))[np.arange(3), _LABELS].mean()),
    "cross_entropy_sum": (
        lambda x: sg.cross_entropy(x, _LABELS, reduction="sum"),
        lambda a: -np.log(_np_softmax(a, 1))[np.arange(3), _LABELS].sum()),
    "layer_norm": (lambda x: sg.layer_norm(x, 4, _GAMMA, _BETA, 1e-5),
                   lambda a: _np_layer_norm(a, _GAMMA, _BETA, 1e-5)),
    "layer_norm_plain": (lambda x: sg.layer_norm(x, (4,), eps=0.1),
                         lambda a: _np_layer_norm(a, 1.0, 0.0, 0.1)),
    "gelu": (lambda x: sg.gelu(x), lambda a: 0.5 * a * (1 + special.erf(a / math.sqrt(2)))),
    "gelu_tanh": (lambda x: sg.gelu(x, approximate="tanh"),
                  lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (a + 0.044715 * a ** 3)))),
    "matmul": (lambda x: sg.matmul(x, _W), lambda a: a @ _W),
    "matmul_operator": (lambda x: x @ _W, lambda a: a @ _W),
    "cast": (lambda x: sg.cast(x * 3, "int32"), lambda a: (a * 3).astype(np.int32)),
    "cast_dtype_object": (lambda x: sg.cast(x, sg.float32), lambda a: a.astype(np.float32)),
    "stop_gradient": (lambda x: sg.stop_gradient(x) * 2, lambda a: a * 2),
    "exp_log": (lambda x: sg.log(sg.exp(x)) + sg.tanh(x), lambda a: a + np.tanh(a)),
}


@pytest.mark.parametrize("name", list(NUMPY_CASES))
def test_sg_functions_match_numpy(graph, name) -> None:
    build, ref = NUMPY_CASES[name]
    data = np.random.default_rng(1).standard_normal((3, 4))
    x = sg.placeholder((None, 4), "float64", name="x")
    out = build(x)
    value = sg.Session(graph).run(out, {x: data})
    expected = np.asarray(ref(data))
    assert value.dtype == expected.dtype and value.shape == expected.shape
    assert all(s is None or s == v for s, v in zip(out.shape, value.shape))
    assert len(out.shape) == value.ndim and out.dtype == value.dtype
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)


def test_sg_gelu_rejects_an_unknown_approximation(graph) -> None:
    with pytest.raises(ValueError, match="approximate argument must be either none or tanh"):
        sg.gelu(sg.placeholder((2,), name="x"), approximate="erf")


def test_sg_functions_accept_plain_values_as_constants_of_the_default_graph(graph) -> None:
    out = sg.sum([[1.0, 2.0], [3.0, 4.0]], axis=0)
    assert out.graph is graph and out.dtype == np.float32 and out.shape == (2,)
    np.testing.assert_array_equal(sg.Session(graph).run(out), np.float32([4, 6]))


# -- one Python function, two modes -----------------------------------------------------------

def _relu_sum(x, w):
    return (x @ w).relu().sum()


def _mixed(x, w):
    h = (x @ w - w.mean()).tanh() * 2 + 1
    return (h ** 2).mean(dim=1).exp().sum() - h.max() + x.abs().sqrt().mean()


def _softmax_loss(x, w):
    logits = x @ w
    return -(logits.log_softmax(1) * logits.softmax(1)).sum(1).mean() + logits.t().sum(0)[1]


def _composites(x, w):
    h = F.gelu(x @ w, approximate="tanh")
    return F.layer_norm(h, 2).sigmoid().sum() + SF.softmax(h, -1).clamp(0.2, 0.8).sum()


@pytest.mark.parametrize("fn", [_relu_sum, _mixed, _softmax_loss, _composites],
                         ids=lambda f: f.__name__)
def test_the_same_function_runs_eagerly_and_in_a_graph(fn, graph) -> None:
    rng = np.random.default_rng(2)
    xv, wv = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    xe = eager.tensor(xv, requires_grad=True)
    we = eager.tensor(wv, requires_grad=True)
    expected = fn(xe, we)
    expected.backward()

    x = sg.placeholder((None, 3), "float64", name="x")
    w = sg.Variable(wv, name="w")
    out = fn(x, w)
    assert out.shape == () and out.dtype == np.float64
    value, gx, gw = sg.Session(graph).run([out, *sg.gradients(out, [x, w])], {x: xv})
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx, xe.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, we.grad.numpy(), rtol=1e-10, atol=1e-12)


# =============================================================================================
# sg.gradients
# =============================================================================================

def test_gradients_sum_over_ys(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    y = sg.placeholder((3,), "float64", name="y")
    a, b = (x * x).sum(), (x * y).sum()
    grads = sg.gradients([a, b], [x, y])
    assert isinstance(grads, list) and len(grads) == 2
    assert [g.shape for g in grads] == [(3,), (3,)]
    xv, yv = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    gx, gy = sg.Session(graph).run(grads, {x: xv, y: yv})
    np.testing.assert_allclose(gx, 2 * xv + yv)
    np.testing.assert_allclose(gy, xv)
    (single,) = sg.gradients(a, x)  # a single y and x need no lists
    np.testing.assert_allclose(sg.Session(graph).run(single, {x: xv}), 2 * xv)


def test_grad_ys_weight_each_y(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    y1, y2 = (x * x).sum(), x * 3.0
    weight = sg.placeholder((3,), "float64", name="weight")
    (gx,) = sg.gradients([y1, y2], [x], grad_ys=[2.0, weight])
    xv, wv = np.array([1.0, -2.0, 0.5]), np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(sg.Session(graph).run(gx, {x: xv, weight: wv}),
                               2.0 * 2 * xv + 3.0 * wv)
    with pytest.raises(ValueError, match="grad_ys has 1 entries for 2 ys"):
        sg.gradients([y1, y2], [x], grad_ys=[1.0])


def test_grad_ys_of_the_wrong_shape_raises(graph) -> None:
    x = sg.placeholder((), "float64", name="x")
    y = x * x
    with pytest.raises(ValueError, match="shape") as info:
        line = inspect.currentframe().f_lineno + 1
        sg.gradients(y, [x], grad_ys=np.array([1.0, 2.0, 3.0]))
    assert "grad_ys" in str(info.value) and _at(line) in str(info.value)
    batch = sg.placeholder((None, 2), "float64", name="batch")
    (ok,) = sg.gradients(batch * 2, [batch], grad_ys=sg.placeholder((None, 2), "float64"))
    assert ok.shape == (None, 2)  # unknown dimensions are not a mismatch
    with pytest.raises(ValueError, match="grad_ys"):
        sg.gradients(batch * 2, [batch], grad_ys=np.ones((3, 3)))


def test_unconnected_xs_get_none_or_zeros(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    u = sg.placeholder((2, 2), "float32", name="u")
    y = (x * x).sum()
    assert sg.gradients(y, [x, u])[1] is None
    assert sg.gradients(y, [sg.stop_gradient(x)]) == [None]
    assert sg.gradients(sg.stop_gradient(x).sum(), [x]) == [None]
    assert sg.gradients((x > 0).to("float64").sum(), [x]) == [None]
    gx, gu = sg.gradients(y, [x, u], unconnected="zero")
    assert gu.shape == (2, 2) and gu.dtype == np.float32
    values = sg.Session(graph).run([gx, gu], {x: np.ones(3), u: np.ones((2, 2), np.float32)})
    np.testing.assert_array_equal(values[0], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(values[1], np.zeros((2, 2), np.float32))
    assert values[1].dtype == np.float32


@pytest.mark.parametrize("bad", ["zeros", "None", None, "ZERO"])
def test_an_invalid_unconnected_value_raises_value_error(graph, bad) -> None:
    x = sg.placeholder((3,), name="x")
    with pytest.raises(ValueError, match="unconnected must be 'none' or 'zero'") as info:
        sg.gradients(x.sum(), [x], unconnected=bad)
    assert repr(bad) in str(info.value)


def test_gradients_with_respect_to_an_intermediate_node(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    h = x.tanh()
    (gh,) = sg.gradients((h * h).sum(), [h])
    xv = np.array([0.1, -0.4, 2.0])
    np.testing.assert_allclose(sg.Session(graph).run(gh, {x: xv}), 2 * np.tanh(xv))


def test_no_gradient_flows_through_a_cast_to_an_integer_dtype(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    floor = sg.cast(x * 2.7, "int64").to("float64")  # piecewise constant in x
    (gx,) = sg.gradients((floor * x).sum(), [x])
    xv = np.array([1.0, 2.0, 3.0])
    value = sg.Session(graph).run(gx, {x: xv})
    np.testing.assert_allclose(value, np.floor(2.7 * xv))  # torch: [2, 5, 8]
    assert sg.gradients(sg.cast(x, "int64").to("float64").sum(), [x]) == [None]


def test_hessian_vector_product_by_gradients_of_gradients(graph) -> None:
    x = sg.placeholder((3,), "float64", name="x")
    y = sg.placeholder((3,), "float64", name="y")
    v = sg.placeholder((3,), "float64", name="v")
    f = (x ** 3).sum() + (x * y).sum()
    (df,) = sg.gradients(f, [x])
    (hv,) = sg.gradients((df * v).sum(), [x])
    xv, yv, vv = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), np.array([1.0, -1.0, 2.0])
    dfv, hvv = sg.Session(graph).run([df, hv], {x: xv, y: yv, v: vv})
    np.testing.assert_allclose(dfv, 3 * xv ** 2 + yv)
    np.testing.assert_allclose(hvv, 6 * xv * vv)  # the Hessian is diag(6x)
    (third,) = sg.gradients(hv.sum(), [x])  # and once more: d/dx sum(6 x v) = 6 v
    np.testing.assert_allclose(sg.Session(graph).run(third, {x: xv, y: yv, v: vv}), 6 * vv)


def test_hessian_vector_product_matches_finite_differences(graph) -> None:
    x = sg.placeholder((4,), "float64", name="x")
    v = sg.placeholder((4,), "float64", name="v")
    f = (sg.softmax(x) * x ** 2).sum() + (x.tanh() * x).sum() + sg.log_softmax(x)[2]
    (df,) = sg.gradients(f, [x])
    (hv,) = sg.gradients(df, [x], grad_ys=v)
    rng = np.random.default_rng(3)
    xv, vv = rng.standard_normal(4), rng.standard_normal(4)
    sess = sg.Session(graph)
    grad = lambda point: sess.run(df, {x: point})  # noqa: E731
    value = lambda point: sess.run(f, {x: point})  # noqa: E731
    eps = 1e-5
    numeric_grad = [(value(xv + eps * e) - value(xv - eps * e)) / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(grad(xv), numeric_grad, rtol=1e-7, atol=1e-9)
    numeric_hv = (grad(xv + eps * vv) - grad(xv - eps * vv)) / (2 * eps)
    np.testing.assert_allclose(sess.run(hv, {x: xv, v: vv}), numeric_hv, rtol=1e-7, atol=1e-9)


def test_gradients_only_grow_the_graph_and_compute_nothing(graph, kernel_calls) -> None:
    x = sg.placeholder((None, 3), name="x")
    w = sg.Variable(np.ones((3, 2), np.float32), name="w")
    loss = (x @ w).tanh().sum()
    before = len(graph)
    dx, dw = sg.gradients(loss, [x, w])  # x is never fed: nothing needs its value yet
    (hw,) = sg.gradients(dw.sum(), [w])
    assert len(graph) > before and graph.nodes[-1] is not loss
    assert kernel_calls == []
    assert all(n.value is None for n in graph.nodes if n.op not in ("constant", "variable"))
    assert dx.shape == (None, 3) and dw.shape == (3, 2) and hw.shape == (3, 2)
    with pytest.raises(sg.GraphError, match="must feed a value for placeholder 'x'"):
        sg.Session(graph, backend="interpreter", passes=()).run(dw)
    assert kernel_calls == []
    value = sg.Session(graph, backend="interpreter", passes=()).run(
        dw, {x: np.ones((2, 3), np.float32)})
    assert kernel_calls and value.shape == (3, 2)


# =============================================================================================
# Session.run
# =============================================================================================

Pair = collections.namedtuple("Pair", ["first", "second"])


def test_run_returns_the_structure_of_its_fetches(graph, backend) -> None:
    x = sg.placeholder((2,), name="x")
    doubled, total = x * 2, x.sum()
    sess = sg.Session(graph, backend=backend)
    feed = {x: [1.0, 2.0]}
    single = sess.run(doubled, feed)
    assert isinstance(single, np.ndarray) and single.tolist() == [2.0, 4.0]
    as_list = sess.run([doubled, total], feed)
    assert isinstance(as_list, list) and as_list[1] == 3.0
    as_tuple = sess.run((total,), feed)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1 and as_tuple[0] == 3.0
    as_dict = sess.run({"d": doubled, "t": total}, feed)
    assert list(as_dict) == ["d", "t"] and as_dict["t"] == 3.0
    pair = sess.run(Pair(total, doubled), feed)
    assert type(pair) is Pair and pair.first == 3.0 and pair.second.tolist() == [2.0, 4.0]
    nested = sess.run({"a": [total, (doubled, {"b": total})], "p": Pair("sum", [x])}, feed)
    assert nested["a"][0] == 3.0 and isinstance(nested["a"][1], tuple)
    assert nested["a"][1][0].tolist() == [2.0, 4.0] and nested["a"][1][1] == {"b": 3.0}
    assert type(nested["p"]) is Pair and nested["p"].first == 3.0
    assert nested["p"].second[0].tolist() == [1.0, 2.0]
    assert sess.run("mul", {"x": [3.0, 4.0]}).tolist() == [6.0, 8.0]  # names, for feeds too
    assert sess.run([], feed) == [] and sess.run({}, feed) == {}


def test_only_the_subgraph_a_fetch_needs_runs(graph, kernel_calls) -> None:
    x = sg.placeholder((None, 2), name="x")
    unfed = sg.placeholder((3,), name="unfed")
    c = sg.constant([1.0, 2.0])
    line = inspect.currentframe().f_lineno + 1
    boom = c[sg.constant(7)]  # index out of range: its kernel fails whenever it runs
    side = (unfed * 2).sum() + boom
    scaled = x * c
    out = scaled.sum(1)
    sess = sg.Session(graph, backend="interpreter", passes=())
    value = sess.run(out, {x: np.ones((3, 2), np.float32)})
    np.testing.assert_array_equal(value, [3.0, 3.0, 3.0])
    assert kernel_calls == [scaled.name, out.name]
    with pytest.raises(sg.RunError) as info:
        sess.run(side, {unfed: np.zeros(3, np.float32)})
    assert "'getitem'" in str(info.value) and _at(line) in str(info.value)
    assert boom.name in kernel_calls


def test_the_plan_cache_is_reused_for_the_same_fetches_and_feed_shapes(graph) -> None:
    x = sg.placeholder((None, 2), name="x")
    y, z = x * 2, x.sum()
    sess = sg.Session(graph)
    assert sess._plans == {}
    sess.run(y, {x: np.ones((3, 2))})
    assert len(sess._plans) == 1
    plan = next(iter(sess._plans.values()))
    np.testing.assert_array_equal(sess.run(y, {x: np.full((3, 2), 5.0)}), np.full((3, 2), 10.0))
    assert len(sess._plans) == 1 and next(iter(sess._plans.values())) is plan
    sess.run(y, {x: np.ones((4, 2))})  # a new feed shape: a new plan
    assert len(sess._plans) == 2
    sess.run([y, z], {x: np.ones((4, 2))})  # new fetches: a new plan
    assert len(sess._plans) == 3
    sess.run([y, z], {x: np.ones((4, 2))})
    sess.run(y, {x: np.ones((3, 2))})
    assert len(sess._plans) == 3


def test_feeding_a_non_placeholder_node_overrides_it(graph, kernel_calls) -> None:
    x = sg.placeholder((2,), name="x")
    c = sg.constant([1.0, 2.0])
    hidden = (x * 10).exp()  # fed below, so neither it nor x runs
    out = hidden + c
    sess = sg.Session(graph, backend="interpreter", passes=())
    np.testing.assert_array_equal(sess.run(out, {hidden: [1.0, 1.0], c: [5.0, 6.0]}),
                                  [6.0, 7.0])  # x is not needed, so need not be fed
    assert kernel_calls == [out.name]
    np.testing.assert_array_equal(sess.run(c * x, {x: [1.0, 1.0]}), [1.0, 2.0])  # unchanged
    np.testing.assert_array_equal(sess.run(c * 1, {"constant": [3.0, 3.0]}), [3.0, 3.0])
    with pytest.raises(ValueError, match=r"Cannot feed value of shape \(3,\) for constant"):
        sess.run(out, {c: [1.0, 2.0, 3.0], x: [0.0, 0.0]})


def test_a_missing_placeholder_is_named_with_its_shape_dtype_and_location(graph) -> None:
    line = inspect.currentframe().f_lineno + 1
    x = sg.placeholder((None, 784), name="x")
    y = (x * 2).sum()
    with pytest.raises(sg.GraphError) as info:
        sg.Session(graph).run(y)
    pattern = (re.escape("You must feed a value for placeholder 'x' (shape (None, 784), float32) "
                         "created at ") + r"\S*" + re.escape(_at(line)))
    assert re.fullmatch(pattern, str(info.value)), str(info.value)


def test_a_feed_of_the_wrong_shape_raises_value_error(graph) -> None:
    line = inspect.currentframe().f_lineno + 1
    x = sg.placeholder((None, 784), name="x")
    sess = sg.Session(graph)
    for bad in (np.zeros((2, 5)), np.zeros(784), np.zeros((1, 784, 1))):
        with pytest.raises(ValueError) as info:
            sess.run(x * 2, {x: bad})
        message = str(info.value)
        assert f"Cannot feed value of shape {bad.shape} for placeholder 'x'" in message
        assert "(None, 784)" in message and _at(line) in message
    assert sess.run(x, {x: np.zeros((7, 784))}).shape == (7, 784)


def test_a_float_feed_into_an_int_placeholder_raises_type_error(graph) -> None:
    line = inspect.currentframe().f_lineno + 1
    i = sg.placeholder((3,), "int32", name="i")
    sess = sg.Session(graph)
    with pytest.raises(TypeError) as info:
        sess.run(i + 1, {i: np.array([1.0, 2.0, 3.0])})
    message = str(info.value)
    assert "Cannot feed value of dtype float64" in message and "'i' of dtype int32" in message
    assert _at(line) in message
    value = sess.run(i + 1, {i: [1, 2, 3]})  # python ints are fine, and take the node's dtype
    assert value.dtype == np.int32 and value.tolist() == [2, 3, 4]
    f = sg.placeholder((2,), name="f")
    assert sess.run(f, {f: np.array([1, 2])}).dtype == np.float32  # int into float: fine


def test_fetching_or_feeding_a_node_of_another_graph_raises_graph_error(graph) -> None:
    x = sg.placeholder((2,), name="x")
    other = sg.Graph()
    with other.as_default():
        line = inspect.currentframe().f_lineno + 1
        foreign = sg.constant(1.0, name="foreign")
    sess = sg.Session(graph)
    with pytest.raises(sg.GraphError, match="'foreign' .* belongs to another graph") as info:
        sess.run([x * 1, foreign], {x: [1.0, 2.0]})
    assert _at(line) in str(info.value)
    with pytest.raises(sg.GraphError, match="belongs to another graph"):
        sess.run(x * 1, {x: [1.0, 2.0], foreign: 2.0})


@pytest.mark.parametrize("fetch", [3, 2.5, None, object(), {1, 2}, b"x"],
                         ids=["int", "float", "None", "object", "set", "bytes"])
def test_a_fetch_of_an_unknown_type_raises_type_error(graph, fetch) -> None:
    sg.placeholder((1,), name="x")
    with pytest.raises(TypeError) as info:
        sg.Session(graph).run(fetch)
    assert f"has invalid type {type(fetch).__name__}" in str(info.value)
    assert "must be a graph node, a node name (str)" in str(info.value)
    with pytest.raises(TypeError, match="invalid type"):
        sg.Session(graph).run(["x", fetch], {"x": [1.0]})


def test_an_unknown_node_name_raises_graph_error(graph) -> None:
    sg.placeholder((1,), name="x")
    sess = sg.Session(graph)
    with pytest.raises(sg.GraphError, match="no node named 'nope' in this graph"):
        sess.run("nope")
    with pytest.raises(sg.GraphError, match="no node named 'y'"):
        sess.run("x", {"y": [1.0]})


def test_a_kernel_failure_at_run_time_raises_run_error_naming_node_and_location(graph) -> None:
    values = sg.constant([1.0, 2.0, 3.0])
    index = sg.placeholder((), "int64", name="index")
    line = inspect.currentframe().f_lineno + 1
    picked = values[index] * 2
    sess = sg.Session(graph)
    assert sess.run(picked, {index: 2}) == 6.0
    with pytest.raises(sg.RunError) as info:
        sess.run(picked, {index: 5})
    message = str(info.value)
    assert message.startswith("getitem node 'getitem' (built at ")
    assert _at(line) in message and "failed at run time" in message
    assert "out of bounds" in message  # the kernel's own reason
    assert isinstance(info.value, RuntimeError)


def test_session_rejects_unknown_backends_and_feeding_state(graph) -> None:
    w = sg.Variable([1.0], name="w")
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        sg.Session(graph, backend="cuda")
    sess = sg.Session(graph)
    with pytest.raises(sg.GraphError, match="cannot feed variable 'w'; use sess.assign"):
        sess.run(w * 2, {w: [3.0]})
    assert sess.run(w).tolist() == [1.0]


# =============================================================================================
# Variables
# =============================================================================================

def test_variables_start_from_their_initial_value_without_an_initializer(graph, backend) -> None:
    init = np.array([1.0, 2.0], np.float32)
    w = sg.Variable(init, name="w")
    b = sg.Variable(0.5, name="b")
    n = sg.Variable([1, 2, 3], name="n", trainable=False)
    init[0] = 100.0  # the variable copied its initial value
    assert (w.shape, w.dtype, b.shape, b.dtype, n.dtype) == \
        ((2,), np.float32, (), np.float32, np.int64)
    assert graph.variables == [w, b, n] and graph.trainable_variables == [w, b]
    wv, bv, nv = sg.Session(graph, backend=backend).run([w, b, n])
    assert wv.tolist() == [1.0, 2.0] and bv == 0.5 and nv.tolist() == [1, 2, 3]
    assert sg.Variable([1.0], dtype="float64").dtype == np.float64


def test_a_constant_keeps_the_value_it_had_when_built(graph, backend) -> None:
    base = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    c = sg.constant(base[:3])
    base[0] = 100.0
    np.testing.assert_array_equal(sg.Session(graph, backend=backend).run(c), [1.0, 2.0, 3.0])
    source = np.zeros(2, np.float32)
    sg.constant(source)
    source[0] = 1.0  # the caller's array stays theirs to change


def test_a_fetched_variable_is_a_copy(graph, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    sess = sg.Session(graph, backend=backend)
    fetched = sess.run(w)
    fetched[0] = 100.0
    assert sess.run(w).tolist() == [1.0, 2.0]
    as_dict = sess.run({"w": w})
    as_dict["w"] += 1
    assert sess.run(w).tolist() == [1.0, 2.0]
    # Values computed from a variable (possibly views of it) cannot write into it either.
    for view in (sg.stop_gradient(w), w.reshape(2, 1), w[0:1]):
        value = sess.run(view)
        try:
            value[...] = -1.0
        except ValueError:  # a read-only result is an acceptable way to protect the state
            pass
        assert sess.run(w).tolist() == [1.0, 2.0], view.name


def test_session_assign_sets_a_checked_value(graph, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    n = sg.Variable([1, 2], name="n")
    sess = sg.Session(graph, backend=backend)
    source = np.array([7.0, 8.0])
    sess.assign(w, source)
    source[0] = 0.0
    value = sess.run(w)
    assert value.tolist() == [7.0, 8.0] and value.dtype == np.float32
    sess.assign("n", [5, 6])
    assert sess.run(n).tolist() == [5, 6]
    with pytest.raises(ValueError, match=r"value of shape \(3,\) for variable 'w'"):
        sess.assign(w, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="value of dtype float64 for variable 'n'"):
        sess.assign(n, [0.5, 1.5])
    with pytest.raises(TypeError, match="assign needs a Variable"):
        sess.assign(w * 2, [1.0, 1.0])
    assert sess.run([w, n])[0].tolist() == [7.0, 8.0] and sess.run(n).tolist() == [5, 6]


def test_two_sessions_on_one_graph_have_independent_variables(graph, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    step = sg.assign(w, w * 10)
    a, b = sg.Session(graph, backend=backend), sg.Session(graph, backend=backend)
    a.run(step)
    assert a.run(w).tolist() == [10.0, 20.0] and b.run(w).tolist() == [1.0, 2.0]
    b.assign(w, [3.0, 3.0])
    b.run(step)
    assert a.run(w).tolist() == [10.0, 20.0] and b.run(w).tolist() == [30.0, 30.0]


def test_an_update_op_updates_on_fetch_and_every_read_sees_the_old_values(graph, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    b = sg.Variable(3.0, name="b")
    new_w = sg.assign(w, w * 2)
    new_b = sg.assign(b, b + w.sum())  # reads w in the same run as w's assign
    update = sg.group(new_w, new_b, name="train")
    assert update.name == "train" and update.shape == () and update.op == "group"
    assert new_w.shape == (2,) and new_w.dtype == np.float32
    sess = sg.Session(graph, backend=backend)
    reads = w.sum() + b
    assert sess.run([update, reads]) == [None, 6.0]  # the reads saw the old values
    assert sess.run(w).tolist() == [2.0, 4.0] and sess.run(b) == 6.0  # b + old sum(w)
    fetched = sess.run({"w": new_w, "after": new_w * 1})  # an assign gives the new value
    assert fetched["w"].tolist() == [4.0, 8.0] and fetched["after"].tolist() == [4.0, 8.0]
    assert sess.run(w).tolist() == [4.0, 8.0] and sess.run(b) == 6.0  # only w was run
    with pytest.raises(ValueError, match="group.. needs at least one node"):
        sg.group()
    with pytest.raises(TypeError, match="assign needs a Variable"):
        sg.assign(w * 1, [1.0, 1.0])
    with pytest.raises(sg.ShapeError, match="assign at .*value of shape \\(3,\\)"):
        sg.assign(w, sg.constant([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("failure", ["kernel", "assign_shape"])
def test_a_run_that_fails_after_an_assign_changes_no_variable(graph, failure, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    b = sg.Variable(0.0, name="b")
    values = sg.placeholder((None,), name="values")
    index = sg.placeholder((), "int64", name="index")
    update = sg.group(sg.assign(w, w + 1), sg.assign(b, b - 1))
    if failure == "kernel":
        failing = values[index]
        feed = {values: [1.0, 2.0], index: 9}
    else:
        failing = sg.assign(w, values)  # its shape is checked when it runs
        feed = {values: [1.0, 2.0, 3.0]}
    sess = sg.Session(graph, backend=backend)
    sess.run(update)
    with pytest.raises(sg.RunError):
        sess.run([update, failing], feed)
    assert sess.run(w).tolist() == [2.0, 3.0] and sess.run(b) == -1.0
    sess.run(update)  # and the session still works
    assert sess.run(w).tolist() == [3.0, 4.0] and sess.run(b) == -2.0


def _checkpointed_graph(names: tuple[str, str]):
    g = sg.Graph()
    with g.as_default():
        with sg.name_scope("layer1"):
            w = sg.Variable(np.arange(6.0).reshape(2, 3), name=names[0])
        b = sg.Variable(np.float32(1.5), name=names[1])
        n = sg.Variable(np.array([1, 2], np.int32), name="count", trainable=False)
        loss = ((w * w).sum() + b * b).to("float64")
        update = sg.group(sg.optim.Adam(0.1).minimize(loss), sg.assign(n, n + 1))
    return g, [w, b, n], update


@pytest.mark.parametrize("names", [
    ("w", "b"), ("kernel", "bias"),
    ("w", "file"), ("args", "allow_pickle"),
], ids=["w-b", "kernel-bias", "file", "numpy-keywords"])
def test_save_and_restore_round_trip(tmp_path, names, backend) -> None:
    g, variables, update = _checkpointed_graph(names)
    trained = sg.Session(g, backend=backend)
    for _ in range(3):
        trained.run(update)
    path = tmp_path / "ckpt.npz"
    trained.save(path)
    with np.load(path, allow_pickle=False) as data:  # no pickles inside
        assert set(data.files) == {v.name for v in g.variables}
        assert "layer1/" + names[0] in data.files and "adam/step" in data.files
        assert all(data[k].dtype != object for k in data.files)
        np.testing.assert_array_equal(data["count"], [4, 5])
    fresh = sg.Session(g, backend=backend)
    fresh.restore(str(path))
    for v in g.variables:  # the optimizer's slots and step too
        got, want = fresh.run(v), trained.run(v)
        assert got.dtype == want.dtype == v.dtype
        np.testing.assert_array_equal(got, want)
    trained.run(update)
    fresh.run(update)
    for v in variables:
        np.testing.assert_array_equal(fresh.run(v), trained.run(v))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_restore_of_a_file_missing_a_variable_raises_key_error_and_changes_nothing(
        graph, tmp_path) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    path = tmp_path / "old.npz"
    sg.Session(graph).save(path)
    extra = sg.Variable([0.0], name="extra")  # added after the checkpoint was written
    sess = sg.Session(graph)
    sess.assign(w, [9.0, 9.0])
    with pytest.raises(KeyError, match="has no value for variable 'extra'") as info:
        sess.restore(path)
    assert str(path) in str(info.value)
    assert sess.run(w).tolist() == [9.0, 9.0] and sess.run(extra).tolist() == [0.0]


def test_restore_of_a_wrong_shape_raises_and_changes_nothing(graph, tmp_path) -> None:
    a = sg.Variable([1.0, 2.0], name="a")
    z = sg.Variable(np.zeros(3), name="z")
    path = tmp_path / "bad.npz"
    np.savez(path, a=np.array([5.0, 6.0]), z=np.zeros(4))
    sess = sg.Session(graph)
    with pytest.raises(ValueError, match=r"shape \(4,\) for variable 'z'"):
        sess.restore(path)
    assert sess.run(a).tolist() == [1.0, 2.0] and sess.run(z).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_save_never_leaves_a_partial_file(graph, tmp_path, monkeypatch, existing) -> None:
    w = sg.Variable(np.arange(1000.0), name="w")
    sg.Variable([1.0], name="v")
    sess = sg.Session(graph)
    path = tmp_path / "ckpt.npz"
    if existing:
        sess.save(path)
        old = path.read_bytes()
        sess.assign(w, np.zeros(1000))
    def failing_write(file, *args, **kwargs):
        file.write(b"\x93NUMPY half an array")  # some bytes reach the file, then the disk fills
        raise OSError("No space left on device")

    # np.savez writes each array with np.lib.format.write_array: fail wherever the writing is.
    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    monkeypatch.setattr(np, "savez", lambda file, *a, **k: failing_write(file))
    with pytest.raises(OSError, match="No space left on device"):
        sess.save(path)
    monkeypatch.undo()
    if existing:
        assert path.read_bytes() == old
        restored = sg.Session(graph)
        restored.restore(path)  # still the old, valid checkpoint
        np.testing.assert_array_equal(restored.run(w), np.arange(1000.0))
    else:
        assert not path.exists()
    assert sorted(os.listdir(tmp_path)) == (["ckpt.npz"] if existing else [])


# =============================================================================================
# sg.compile and sg.trace
# =============================================================================================

def test_compile_gives_a_function_of_arrays(graph, backend) -> None:
    x = sg.placeholder((None, 3), "float64", name="x")
    w = sg.placeholder((3, 2), "float64", name="w")
    out = (x @ w).relu().sum()
    f = sg.compile({"out": out, "twice": [x * 2]}, [x, w], backend=backend)
    assert f.graph is graph
    xv, wv = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
    result = f(xv, wv)
    assert result["out"] == 30.0 and result["twice"][0].tolist() == (2 * xv).tolist()
    assert f(np.ones((4, 3)), -wv)["out"] == 0.0
    with pytest.raises(TypeError, match=r"this function takes 2 arrays \(x, w\), got 1"):
        f(xv)
    with pytest.raises(TypeError, match="takes 2 arrays"):
        f(xv, wv, wv)


def test_compile_can_share_a_sessions_variables(graph, backend) -> None:
    w = sg.Variable([1.0, 2.0], name="w")
    x = sg.placeholder((2,), name="x")
    sess = sg.Session(graph, backend=backend)
    shared = sg.compile(x * w, [x], session=sess, backend=backend)
    own = sg.compile(x * w, [x], backend=backend)
    sess.assign(w, [10.0, 10.0])
    assert shared([1.0, 1.0]).tolist() == [10.0, 10.0]
    assert own([1.0, 1.0]).tolist() == [1.0, 2.0]


def _mlp(x, w):
    return (x @ w).relu().sum(1)


def test_trace_compiles_a_python_function_and_retraces_for_new_shapes() -> None:
    rng = np.random.default_rng(4)
    xv, wv = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    traced = sg.trace(_mlp, xv, wv)
    assert traced.traces == 1
    first = traced.graph
    assert [n.op for n in first.nodes] == ["placeholder", "placeholder", "matmul", "relu", "sum"]
    assert first.get("input_0").shape == (2, 3) and first.get("input_0").dtype == np.float64
    expected = _mlp(eager.tensor(xv), eager.tensor(wv)).numpy()
    np.testing.assert_allclose(traced(xv, wv), expected, rtol=1e-12)
    traced(xv + 1, wv)  # same shapes: the same trace
    assert traced.traces == 1 and traced.graph is first
    bigger = rng.standard_normal((5, 3))
    value = traced(bigger, wv)
    assert traced.traces == 2 and traced.graph is not first
    assert traced.graph.get("input_0").shape == (5, 3) and value.shape == (5,)
    np.testing.assert_allclose(value, np.maximum(bigger @ wv, 0).sum(1), rtol=1e-12)
    traced(xv.astype(np.float32), wv.astype(np.float32))  # a new dtype traces again too
    assert traced.traces == 3
    traced(xv, wv)
    assert traced.traces == 3 and traced.graph is first


def test_trace_accepts_eager_tensors_and_functional_composites() -> None:
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((3, 4))

    def net(x, labels):
        h = F.gelu(F.linear(x, eager.tensor(weight).t()))
        h = SF.layer_norm(h, 4) + F.softmax(h, -1)
        return F.cross_entropy(h, labels) + F.mse_loss(h, h.detach() * 0.5)

    xv, labels = rng.standard_normal((6, 3)), np.array([0, 1, 2, 3, 0, 1])
    traced = sg.trace(net, eager.tensor(xv), eager.tensor(labels))
    assert traced.graph.get("input_1").dtype == np.int64
    expected = net(eager.tensor(xv), eager.tensor(labels)).item()
    assert traced(eager.tensor(xv), eager.tensor(labels)) == pytest.approx(expected, rel=1e-12)
    assert traced(xv, labels) == pytest.approx(expected, rel=1e-12)
    assert traced.traces == 1


def test_tracing_data_dependent_python_control_flow_raises_type_error() -> None:
    def branchy(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(TypeError, match="not known until the graph runs") as info:
        sg.trace(branchy, np.ones(3))
    assert "sg.where" in str(info.value)
    assert _at(branchy.__code__.co_firstlineno + 1) in str(info.value)
    # The graph version of the branch, with sg.where:
    traced = sg.trace(lambda x: sg.where(x.sum() > 0, x, -x), np.ones(3))
    assert traced(np.array([-1.0, -2.0, 0.5])).tolist() == [1.0, 2.0, -0.5]


# =============================================================================================
# Optimizers
# =============================================================================================

_A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
_B = np.array([1.0, -1.0, 2.0])


def _quadratic(optimizer):
    g = sg.Graph()
    with g.as_default():
        w = sg.Variable(np.array([0.5, -2.0, 1.0]), name="w")
        loss = 0.5 * (w @ (sg.constant(_A) @ w)) - (sg.constant(_B) * w).sum()
        return g, w, loss, optimizer.minimize(loss)


@pytest.mark.parametrize("make", [
    lambda: sg.optim.SGD(0.1), lambda: sg.optim.SGD(0.05, momentum=0.9),
    lambda: sg.optim.SGD(0.1, weight_decay=0.01), lambda: sg.optim.Adam(0.1),
    lambda: sg.optim.Adam(0.05, betas=(0.8, 0.99), eps=1e-6),
], ids=["sgd", "momentum", "weight_decay", "adam", "adam_betas"])
def test_minimize_returns_an_update_op_that_decreases_a_quadratic(make, backend) -> None:
    g, w, loss, update = _quadratic(make())
    assert isinstance(update, sg.Node) and update.op == "group"
    sess = sg.Session(g, backend=backend)
    losses = []
    for _ in range(40):
        losses.append(float(sess.run(loss)))
        assert sess.run(update) is None
    optimum = 0.5 * _B @ np.linalg.solve(_A, _B)
    assert losses[-1] < losses[0] and losses[-1] - -optimum < 0.2 * (losses[0] - -optimum)
    assert min(losses) >= -optimum - 1e-9  # never below the minimum
    if isinstance(make(), sg.optim.SGD) and not make().momentum:
        assert all(b < a for a, b in zip(losses, losses[1:]))  # plain descent is monotone


def test_minimize_needs_trainable_variables_the_loss_depends_on(graph, backend) -> None:
    w = sg.Variable([1.0], name="w")
    frozen = sg.Variable([1.0], name="frozen", trainable=False)
    with pytest.raises(ValueError, match="does not depend on any of the variables"):
        sg.optim.SGD(0.1).minimize((frozen * 2).sum(), var_list=[w])
    other = sg.Graph()
    with other.as_default():
        constant_loss = sg.constant(1.0)
    with pytest.raises(ValueError, match="no trainable variables to minimize 'constant'"):
        sg.optim.SGD(0.1).minimize(constant_loss)
    u = sg.Variable([5.0], name="u")  # in var_list, not in the loss: left alone
    update = sg.optim.SGD(0.5).minimize((w * w).sum(), var_list=[w, u])
    sess = sg.Session(graph, backend=backend)
    sess.run(update)
    assert sess.run(w).tolist() == [0.0] and sess.run(u).tolist() == [5.0]


@pytest.mark.parametrize("kind,kwargs", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, nesterov=True)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.01, initial_accumulator_value=0.5)),
], ids=["sgd", "momentum", "momentum_wd", "nesterov", "adam", "adam_betas_eps", "adam_wd",
        "adamw", "adamw_decay_amsgrad", "rmsprop", "rmsprop_centered_momentum", "adagrad",
        "adagrad_options"])
def test_the_parameter_trajectory_matches_torch_optim(kind, kwargs, backend) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    xs, ys = rng.standard_normal((8, 3)), rng.standard_normal(8)
    w0, b0 = rng.standard_normal(3), np.array(0.3)

    g = sg.Graph()
    with g.as_default():
        w, b = sg.Variable(w0, name="w"), sg.Variable(b0, name="b")
        residual = sg.constant(xs) @ w + b - sg.constant(ys)
        update = getattr(sg.optim, kind)(**kwargs).minimize((residual ** 2).mean())
    sess = sg.Session(g, backend=backend)

    tw = torch.tensor(w0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    opt = getattr(torch.optim, kind)([tw, tb], **kwargs)
    tx, ty = torch.tensor(xs), torch.tensor(ys)
    for _ in range(6):
        sess.run(update)
        opt.zero_grad()
        ((tx @ tw + tb - ty) ** 2).mean().backward()
        opt.step()
        wv, bv = sess.run([w, b])
        assert wv.dtype == np.float64
        np.testing.assert_allclose(wv, tw.detach().numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(bv, tb.detach().numpy(), rtol=0, atol=1e-10)
    assert not np.allclose(wv, w0)  # it moved


def test_masks_of_constants_fold_and_linear_takes_plain_weights(graph) -> None:
    x = sg.constant([1.0, -2.0, 3.0])
    positive = x[x > 0]  # a size only the data decides: left for run time
    y = sg.linear(sg.constant([[1.0, 2.0]]), [[1.0, 1.0]], [0.5])
    assert sg.Session(graph).run(positive).tolist() == [1.0, 3.0]
    assert sg.Session(graph).run(y).tolist() == [[3.5]]


def test_dimension_errors_name_the_op_and_the_line(graph) -> None:
    x = sg.placeholder((None, 3), name="x")
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(IndexError) as info:
        x.sum(5)
    assert "Dimension out of range" in str(info.value) and _at(line) in str(info.value)
    with pytest.raises(sg.ShapeError, match="unknown until run time"):
        x.squeeze(0)  # the batch dimension might be 1, or not
    with pytest.raises(sg.DTypeError, match="mean\\(\\): could not infer output dtype"):
        sg.placeholder((2,), "int64").mean()


def test_integer_feeds_that_would_wrap_around_are_refused(graph) -> None:
    labels = sg.placeholder((2,), "int32", name="labels")
    with pytest.raises(ValueError, match="would wrap around"):
        sg.Session(graph).run(labels * 1, {labels: np.array([1, 2**40])})
    assert sg.Session(graph).run(labels * 1, {labels: np.array([1, 2])}).tolist() == [1, 2]


def test_out_of_range_labels_fail_the_run_naming_the_node(graph) -> None:
    logits = sg.placeholder((2, 3), name="logits")
    labels = sg.placeholder((2,), "int64", name="labels")
    loss = sg.cross_entropy(logits, labels)
    with pytest.raises(sg.RunError, match="Target 7 is out of bounds"):
        sg.Session(graph).run(loss, {logits: np.zeros((2, 3)), labels: [0, 7]})
