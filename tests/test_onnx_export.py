"""ONNX export against onnxruntime, the independent oracle: every op spec's value and
gradients, symbolic batch sizes, Variables, dtypes, opsets, names, file writing, and
``eager.onnx.export`` of a module against the module itself."""

from __future__ import annotations

import inspect
import os

import numpy as np
import onnx
import pytest
from opspecs import SPEC_IDS, SPECS, spec_graph

import eager
import eager.onnx
import staticgraph as sg
from eager import nn
from staticgraph.onnx.converters import CONVERTERS, NOT_EXPORTABLE
from staticgraph.onnx.errors import ONNXError
from staticgraph.onnx.export import MAX_TESTED_OPSET, default_opset, export
from staticgraph.ops import PRIMITIVES

ort = pytest.importorskip("onnxruntime")

# onnxruntime's CPU kernels of these ops take float32 but not float64 (which ONNX allows):
# a spec whose model uses one is run through onnxruntime in float32.
ORT_FLOAT32_ONLY = {"Erf", "Softplus", "Col2Im", "Conv", "ConvTranspose", "AveragePool"}


def checked(model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    used = {name for node in model.graph.node for name in node.input}
    unused = [i.name for i in model.graph.initializer if i.name not in used]
    assert not unused, f"initializers no node reads: {unused}"
    return model


def run(model: onnx.ModelProto, *arrays: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: a for i, a in zip(model.graph.input, arrays)})


def assert_close(got: list, want: list, names: list[str]) -> None:
    assert len(got) == len(want)
    for g, w, name in zip(got, want, names):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


def test_every_primitive_has_a_converter_or_a_reason() -> None:
    missing = sorted(name for name, p in PRIMITIVES.items()
                     if p not in CONVERTERS and p not in NOT_EXPORTABLE)
    assert not missing, ("primitives in neither CONVERTERS nor NOT_EXPORTABLE "
                         f"(staticgraph/onnx/converters.py): {missing}")
    both = sorted(p.name for p in CONVERTERS.keys() & NOT_EXPORTABLE.keys())
    assert not both, f"primitives both converted and said not exportable: {both}"


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_op_spec_value_and_gradients_match_the_session(spec) -> None:
    built = spec_graph(spec)
    model = checked(export([built.out, *built.grads], built.placeholders))
    if {node.op_type for node in model.graph.node} & ORT_FLOAT32_ONLY:
        built = spec_graph(spec, np.float32)
        model = checked(export([built.out, *built.grads], built.placeholders))
    fetches = [built.out, *built.grads]
    want = sg.Session(built.out.graph).run(fetches, dict(zip(built.placeholders, built.arrays)))
    assert_close(run(model, *built.arrays), want, [f.name for f in fetches])


# Before opset 18 reductions take their axes as an attribute (ReduceSum before 13); a
# composite is written as its decomposition where the opset has no operator for it.
@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("name", ["sum_dims_keepdim", "mean_dim", "prod_dim", "max_dim",
                                  "min_dim_keepdim", "argmin", "layer_norm", "select"])
def test_older_opsets(name: str, opset: int) -> None:
    built = spec_graph(SPECS[SPEC_IDS.index(name)])
    fetches = [built.out, *built.grads]
    model = checked(export(fetches, built.placeholders, opset_version=opset))
    assert model.opset_import[0].version == opset
    want = sg.Session(built.out.graph).run(fetches, dict(zip(built.placeholders, built.arrays)))
    assert_close(run(model, *built.arrays), want, [f.name for f in fetches])


@pytest.mark.parametrize("name, opset, op_type", [
    ("softmax", 13, "Softmax"), ("log_softmax", 13, "LogSoftmax"),
    ("cross_entropy", 13, "NegativeLogLikelihoodLoss"), ("layer_norm", 17, "LayerNormalization"),
    ("layer_norm", 13, "ReduceMean"), ("gelu", 20, "Gelu"), ("gelu", 17, "Erf"),
    ("gelu_tanh", 20, "Gelu"), ("mse_loss", 28, "Mul"),
])
def test_a_composite_is_one_operator_where_the_opset_has_it(name, opset, op_type) -> None:
    built = spec_graph(SPECS[SPEC_IDS.index(name)], np.float32)
    model = checked(export([built.out], built.placeholders, opset_version=opset))
    ops = [n.op_type for n in model.graph.node]
    assert op_type in ops and (op_type not in ("Softmax", "Gelu") or len(ops) == 1)
    want = sg.Session(built.out.graph).run([built.out],
                                           dict(zip(built.placeholders, built.arrays)))
    assert_close(run(model, *built.arrays), want, [name])


@pytest.fixture(scope="module")
def mlp():
    """A classifier on inputs of unknown batch size: its loss and the gradients (sum_to,
    size_of, expand_as, a mask's scatter_add: shapes known only at run time)."""
    rng = np.random.default_rng(0)
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 3, 2), name="x")
        labels = sg.placeholder((None,), "int64", name="labels")
        w = sg.Variable(rng.standard_normal((6, 4)).astype(np.float32), name="w")
        b = sg.Variable(np.zeros(4, np.float32), name="b")
        h = (x.reshape(-1, 6) @ w + b).relu()
        gate = h.amax(1, keepdim=True).sigmoid()  # (None, 1): its gradient keeps axis 1
        loss = sg.cross_entropy(h * gate, labels) + (h[h > 0.5] ** 2).sum() + \
            h[:, 1:3].sum() * h.max(1).values.mean() + h.mean()
        fetches = [loss, *sg.gradients(loss, [x, w, b])]
    return g, x, labels, w, fetches


def test_unknown_batch_size_runs_at_two_sizes(mlp) -> None:
    g, x, labels, w, fetches = mlp
    model = checked(export(fetches, [x, labels], dynamic_axes={"x": {0: "batch"}}))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input}
    assert dims == {"x": ["batch", 3, 2], "labels": ["labels_dim0"]}
    rng = np.random.default_rng(1)
    session = sg.Session(g)
    for n in (3, 7):
        feed = {x: rng.standard_normal((n, 3, 2)).astype(np.float32),
                labels: rng.integers(0, 4, n)}
        assert_close(run(model, feed[x], feed[labels]), session.run(fetches, feed),
                     [f.name for f in fetches])


def test_variables_hold_the_sessions_current_values(mlp) -> None:
    g, x, labels, w, fetches = mlp
    session = sg.Session(g)
    new = np.full(w.shape, 0.25, np.float32)
    session.assign(w, new)
    initial = {i.name: onnx.numpy_helper.to_array(i)
               for i in export(fetches, [x, labels]).graph.initializer}
    current = {i.name: onnx.numpy_helper.to_array(i)
               for i in export(fetches, [x, labels], session=session).graph.initializer}
    np.testing.assert_array_equal(initial["w"], w.value)
    np.testing.assert_array_equal(current["w"], new)
    feed = {x: np.ones((2, 3, 2), np.float32), labels: np.array([0, 3])}
    model = export(fetches[0], [x, labels], session=session)
    assert_close(run(model, feed[x], feed[labels]), [session.run(fetches[0], feed)], ["loss"])


# numpy's placement of indexed dimensions: adjacent index arrays where they stood, separated
# ones first; an int beside arrays is one; new axes; a mask; negative steps and ints.
INDEXES = {
    "adjacent_arrays": lambda x, i, j, m: x[:, i, j],
    "separated_arrays": lambda x, i, j, m: x[i, :, j],
    "int_among_arrays": lambda x, i, j, m: x[1, :, j],
    "new_axis_and_array": lambda x, i, j, m: x[:, None, i],
    "mask_after_a_slice": lambda x, i, j, m: x[:, m],
    "negative_step_and_int": lambda x, i, j, m: x[::-1, -1, 1:],
}


@pytest.mark.parametrize("batch", [3, None], ids=["static", "unknown_batch"])
@pytest.mark.parametrize("name", INDEXES)
def test_indexing_and_its_gradient(name: str, batch: int | None) -> None:
    rng = np.random.default_rng(0)
    feed_values = [rng.standard_normal((3, 3, 4)), np.array([2, 0, 2]), np.array([3, -1, 0]),
                   rng.random((3, 4)) > 0.5]
    with sg.Graph().as_default() as g:
        x = sg.placeholder((batch, 3, 4), "float64", name="x")
        i, j = (sg.placeholder((3,), "int64", name=n) for n in "ij")
        m = sg.placeholder((3, 4), "bool", name="m")
        y = INDEXES[name](x, i, j, m)
        fetches = [y, *sg.gradients((y * y).sum(), [x])]
    model = checked(export(fetches, [x, i, j, m]))
    feed = dict(zip([x, i, j, m], feed_values))
    # The interpreter: the compiled runtime cannot yet fuse a value of data-dependent size.
    want = sg.Session(g, backend="interpreter").run(fetches, feed)
    assert_close(run(model, *feed_values), want, [f.name for f in fetches])


def test_dtypes_are_cast_to_what_each_operator_needs() -> None:
    with sg.Graph().as_default() as g:
        x = sg.placeholder((None, 3), name="x")
        i = sg.placeholder((None, 3), "int64", name="i")
        m = sg.placeholder((3,), "bool", name="m")
        outs = [(x + i) * m, i.sum(0), (i / 2 > x) | m, (i * 2).max(), i.float().mean(),
                (x > 0) > m]
    model = checked(export(outs, [x, i, m]))
    assert "Cast" in {node.op_type for node in model.graph.node}
    feed = {x: np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
            i: np.arange(6).reshape(2, 3), m: np.array([True, False, True])}
    assert_close(run(model, *feed.values()), sg.Session(g).run(outs, feed),
                 [o.name for o in outs])


def test_nodes_keep_the_graph_names_and_the_users_lines() -> None:
    with sg.Graph().as_default():
        x = sg.placeholder((2, 3), name="x")
        line = inspect.currentframe().f_lineno + 1
        e = x.exp(); y = (e * 2).sum(1)  # noqa: E702  (one line for all three nodes)
    model = export(y, [x], output_names=["total"])
    by_name = {node.name: node for node in model.graph.node}
    for node in (e, y.inputs[0], y):
        assert by_name[node.name].doc_string.endswith(f"test_onnx_export.py:{line}")
    assert [o.name for o in model.graph.output] == ["total"]
    assert [i.name for i in model.graph.input] == ["x"]


def test_an_op_the_opset_cannot_express_names_the_op_and_the_opset() -> None:
    built = spec_graph(SPECS[SPEC_IDS.index("gather")])  # its gradient is a scatter_add
    fetches = [built.out, *built.grads]
    with pytest.raises(ONNXError, match=r"scatter_add .*needs opset 16 or newer, not 15"):
        export(fetches, built.placeholders, opset_version=15)
    checked(export(fetches, built.placeholders, opset_version=16))


@pytest.mark.parametrize("opset", [12, onnx.defs.onnx_opset_version() + 1])
def test_opsets_onnx_does_not_define_or_export_does_not_write_are_refused(opset: int) -> None:
    with sg.Graph().as_default():
        x = sg.placeholder((2,), name="x")
    with pytest.raises(ONNXError, match=f"opset_version={opset}: export writes opsets 13 to"):
        export(x + 1, [x], opset_version=opset)


def test_default_opset_is_the_newest_onnxruntime_runs() -> None:
    with sg.Graph().as_default():
        x = sg.placeholder((2,), name="x")
    model = export(x + 1, [x])
    assert model.opset_import[0].version == default_opset() == \
        min(onnx.defs.onnx_opset_version(), MAX_TESTED_OPSET)
    np.testing.assert_array_equal(run(model, np.ones(2, np.float32))[0], [2, 2])
    if default_opset() == MAX_TESTED_OPSET:  # the cap is onnxruntime's, not onnx's
        model.opset_import[0].version = MAX_TESTED_OPSET + 1
        with pytest.raises(Exception, match="opset|Opset"):
            run(model, np.ones(2, np.float32))


def test_writing_is_whole_or_nothing(tmp_path) -> None:
    built = spec_graph(SPECS[SPEC_IDS.index("gather")])
    fetches = [built.out, *built.grads]
    path = tmp_path / "model.onnx"
    model = export(fetches, built.placeholders, path)
    assert onnx.load(path) == model
    path.write_bytes(b"before")
    with pytest.raises(ONNXError):
        export(fetches, built.placeholders, path, opset_version=15)
    (tmp_path / "directory").mkdir()
    with pytest.raises(OSError):  # written beside it, but cannot take a directory's place
        export(fetches, built.placeholders, tmp_path / "directory", opset_version=16)
    assert path.read_bytes() == b"before"
    assert sorted(os.listdir(tmp_path)) == ["directory", "model.onnx"]


def test_what_cannot_be_exported_says_what_and_where() -> None:
    with sg.Graph().as_default():
        x = sg.placeholder((2,), name="x")
        w = sg.Variable(np.zeros(2, np.float32), name="w")
        other = sg.placeholder((2,), name="other")
        step = sg.assign(w, w + x)
    with pytest.raises(ONNXError, match=r"placeholder 'other' \(built at .*\) is needed"):
        export(x + other, [x])
    with pytest.raises(ONNXError, match="assign 'assign'.*changes state"):
        export(step, [x])
    with pytest.raises(ONNXError, match="dimension 0 of 'x'"):
        export(x * 2, [x], dynamic_axes={"x": [0]})


def test_eager_module_exports_with_its_parameter_names() -> None:
    eager.manual_seed(0)
    shared = nn.Linear(8, 8)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.GELU(), shared,
                          nn.LayerNorm(8), nn.Linear(8, 3))
    x = eager.randn(5, 4)
    onnx_model = checked(eager.onnx.export(model, (x,), input_names=["x"], output_names=["y"],
                                           dynamic_axes={"x": {0: "batch"}}))
    params = dict(model.named_parameters())
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    assert [name for name in initializers if name in params] == list(params)
    for name, param in params.items():
        np.testing.assert_array_equal(initializers[name], param.detach().numpy())
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())  # put back
    for batch in (5, 2):
        x = eager.randn(batch, 4)
        (got,) = run(onnx_model, x.numpy())
        np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_eager_function_of_tensors_exports() -> None:
    scale = eager.tensor([1.0, 2.0, 3.0])
    a, b = eager.randn(2, 3), eager.randn(2, 3)
    model = checked(eager.onnx.export(lambda a, b: ((a * scale) @ b.T).softmax(-1), (a, b)))
    (got,) = run(model, a.numpy(), b.numpy())
    np.testing.assert_allclose(got, ((a * scale) @ b.T).softmax(-1).numpy(), rtol=1e-5)
