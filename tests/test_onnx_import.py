"""Importing ONNX models: torch-exported models against torch and onnxruntime at two batch
sizes (and sequence lengths), gradients and fine-tuning through an imported model, sizes
known only at run time, and every kind of bad input."""

import io
import math
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import staticgraph as sg
from staticgraph.onnx.errors import ONNXError
from staticgraph.onnx.importer import MAX_ALLOCATION_BYTES, import_model

ATOL = 1e-5


# -- torch-exported models --------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


def _export(torch, module, example, dynamic_axes) -> bytes:
    """The TorchScript exporter (``dynamo=False``) at opset 17, as ONNX bytes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the exporter says it is deprecated, and how it traced
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes=dynamic_axes)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mlp(torch):
    nn = torch.nn
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return module, _export(torch, module, torch.randn(2, 4), {"x": {0: "batch"}})


@pytest.fixture(scope="module")
def norm_block(torch):
    nn, F = torch.nn, torch.nn.functional

    class NormBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.linear = nn.LayerNorm(6), nn.Linear(6, 5)

        def forward(self, x):
            return F.gelu(self.linear(self.norm(x))).softmax(-1)

    module = NormBlock()
    return module, _export(torch, module, torch.randn(2, 6), {"x": {0: "batch"}})


@pytest.fixture(scope="module")
def attention(torch):
    nn = torch.nn

    class Attention(nn.Module):
        def __init__(self, width=8, heads=2):
            super().__init__()
            self.heads = heads
            self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)

        def forward(self, x):
            batch, seq, width = x.shape
            q, k, v = (t.view(batch, seq, self.heads, width // self.heads).transpose(1, 2)
                       for t in self.qkv(x).split(width, dim=2))
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(width // self.heads)
            y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
            return self.out(y)

    module = Attention()
    axes = {0: "batch", 1: "seq"}
    return module, _export(torch, module, torch.randn(2, 3, 8), {"x": axes, "y": axes})


@pytest.fixture(scope="module")
def causal_attention(torch):
    """Positional embeddings and a learned bias sliced to the sequence length, and a causal,
    sliding-window mask from torch.arange and triu: Range, Slice and Trilu up to a size
    known only at run time."""
    nn = torch.nn

    class CausalAttention(nn.Module):
        def __init__(self, width=8, heads=2, max_len=16, window=3):
            super().__init__()
            self.heads, self.window = heads, window
            self.pos = nn.Parameter(torch.randn(1, max_len, width))
            self.bias = nn.Parameter(torch.randn(max_len, max_len))
            self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)

        def forward(self, x):
            batch, seq, width = x.shape
            x = x + self.pos[:, :seq]
            q, k, v = (t.view(batch, seq, self.heads, width // self.heads).transpose(1, 2)
                       for t in self.qkv(x).split(width, dim=2))
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(width // self.heads)
            scores = scores + self.bias[:seq, :seq]
            future = torch.ones(seq, seq).triu(1).bool()
            i = torch.arange(seq)
            too_far = i[:, None] - i[None, :] >= self.window
            scores = scores.masked_fill(future | too_far, float("-inf"))
            y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
            return self.out(y)

    module = CausalAttention()
    axes = {0: "batch", 1: "seq"}
    return module, _export(torch, module, torch.randn(2, 5, 8), {"x": axes, "y": axes})


@pytest.fixture(scope="module")
def lenet(torch):
    """A small LeNet: conv, relu, max pool, conv, average pool (ceil_mode: a last window
    that hangs over the image), flatten, linear."""
    nn = torch.nn
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(4, 6, 3, stride=1, padding=(1, 0)),
                           nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(36, 5))
    return module, _export(torch, module, torch.randn(2, 1, 10, 10), {"x": {0: "batch"}})


MODELS = {  # fixture -> (ops the exporter must have used, input shapes to run)
    "mlp": ({"Gemm", "Relu"}, [(2, 4), (5, 4)]),
    "norm_block": ({"LayerNormalization", "Erf", "Softmax"}, [(2, 6), (7, 6)]),
    "attention": ({"Shape", "Gather", "Concat", "Reshape", "Split", "Softmax"},
                  [(2, 3, 8), (4, 5, 8)]),
    "causal_attention": ({"Range", "Slice", "Trilu", "Where"}, [(2, 5, 8), (3, 11, 8)]),
    "lenet": ({"Conv", "Relu", "MaxPool", "AveragePool", "Flatten", "Gemm"},
              [(2, 1, 10, 10), (3, 1, 10, 10)]),
}


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_matches_torch_and_onnxruntime(name, torch, request):
    ort = pytest.importorskip("onnxruntime")
    module, data = request.getfixturevalue(name)
    ops, shapes = MODELS[name]
    assert ops <= {n.op_type for n in onnx.load_from_string(data).graph.node}
    imported = import_model(data)
    varying = [len({shape[axis] for shape in shapes}) > 1 for axis in range(len(shapes[0]))]
    assert imported.inputs[0].shape == tuple(None if v else n for v, n in zip(varying, shapes[0]))
    runtime = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in shapes:  # one imported model serves every batch size and sequence length
        x = rng.standard_normal(shape).astype(np.float32)
        (y,) = imported(x)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        assert y.shape == expected.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, expected, atol=ATOL)
        np.testing.assert_allclose(y, runtime.run(None, {"x": x})[0], atol=ATOL)


def _torch_gradients(torch, module, x, weights):
    x = torch.from_numpy(x).requires_grad_()
    (module(x) * torch.from_numpy(weights)).sum().backward()
    return x.grad.numpy(), {n: p.grad.numpy() for n, p in module.named_parameters()}


@pytest.mark.parametrize("name", MODELS)
def test_gradients_through_an_imported_model_match_torch(name, torch, request):
    module, data = request.getfixturevalue(name)
    imported = import_model(data, trainable=True)
    shape = MODELS[name][1][1]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    weights = rng.standard_normal(imported(x)[0].shape).astype(np.float32)
    names = [n for n, v in imported.variables.items() if v.role is sg.graph.Role.VARIABLE]
    with imported.graph.as_default():
        loss = (imported.outputs[0] * weights).sum()
        grads = sg.gradients(loss, [imported.inputs[0]] + [imported.variables[n] for n in names])
    values = imported.session.run(grads, {imported.inputs[0]: x})
    module.zero_grad()
    expected_x, expected_params = _torch_gradients(torch, module, x, weights)
    np.testing.assert_allclose(values[0], expected_x, atol=ATOL)
    matched = [n for n in names if n in expected_params]  # weights of MatMuls are renamed
    assert matched
    for n in matched:
        np.testing.assert_allclose(values[1 + names.index(n)], expected_params[n], atol=ATOL)


def test_fine_tuning_an_imported_model_lowers_the_loss(mlp):
    imported = import_model(mlp[1], trainable=True)
    assert {v.role for v in imported.variables.values()} == {sg.graph.Role.VARIABLE}
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    target = x @ rng.standard_normal((4, 3)).astype(np.float32)
    with imported.graph.as_default():
        loss = sg.mse_loss(imported.outputs[0], target)
        step = sg.optim.SGD(lr=0.1).minimize(loss)
    feed = {imported.inputs[0]: x}
    outputs = imported(x)[0]
    losses = [imported.session.run([loss, step], feed)[0] for _ in range(10)]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.9 * losses[0]
    assert not np.allclose(imported(x=x)[0], outputs)  # the model runs the trained values


def test_without_trainable_initializers_are_constants(mlp):
    imported = import_model(mlp[1])
    assert {v.role for v in imported.variables.values()} == {sg.graph.Role.CONSTANT}
    assert sorted(imported.variables) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    with pytest.raises(TypeError, match=r"the model's inputs are \['x'\]"):
        imported(np.ones((1, 4), np.float32), np.ones(1))


# -- sizes known only at run time --------------------------------------------------------------

def _model(nodes, inputs, outputs, initializers=(), domains=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def _tensor(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _int64s(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def test_shapes_computed_from_run_time_sizes_match_onnxruntime():
    """ConstantOfShape, Flatten, Reshape and Expand to sizes that are products of unknown
    ones, and sizes used as values (Shape -> Cast, Size)."""
    ort = pytest.importorskip("onnxruntime")
    node = helper.make_node
    nodes = [node("Shape", ["x"], ["shape"]),
             node("ConstantOfShape", ["shape"], ["twos"],
                  value=numpy_helper.from_array(np.array([2.0], np.float32))),
             node("Gather", ["shape", "second"], ["seq"], axis=0),
             node("Cast", ["seq"], ["seq_float"], to=TensorProto.FLOAT),
             node("Mul", ["x", "twos"], ["doubled"]),
             node("Mul", ["doubled", "seq_float"], ["scaled"]),
             node("Flatten", ["scaled"], ["flat"], axis=1),
             node("Gather", ["shape", "first"], ["batch"], axis=0),
             node("Unsqueeze", ["batch", "zero"], ["batch_1d"]),
             node("Concat", ["batch_1d", "minus_one", "two"], ["target"], axis=0),
             node("Reshape", ["flat", "target"], ["halves"]),
             node("Expand", ["bias", "shape"], ["spread"]),
             node("Add", ["x", "spread"], ["shifted"]),
             node("ReduceSum", ["shifted", "zero"], ["summed"], keepdims=0),
             node("Size", ["x"], ["count"]),
             node("Cast", ["count"], ["count_float"], to=TensorProto.FLOAT),
             node("Div", ["summed", "count_float"], ["mean"])]
    model = _model(nodes, [_tensor("x", ["b", "t", 4])],
                   [_tensor(n, ["b", "?"]) for n in ("flat", "halves", "mean")],
                   [_int64s("zero", [0]), _int64s("first", 0), _int64s("second", 1),
                    _int64s("minus_one", [-1]), _int64s("two", [2]),
                    numpy_helper.from_array(np.arange(4, dtype=np.float32), "bias")])
    imported = import_model(model)
    assert [o.shape for o in imported.outputs] == [(None, None), (None, None, 2), (None, 4)]
    assert {"reshape_as", "expand_as", "fill", "size_of"} <= {n.op for n in imported.graph.nodes}
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 4), (5, 1, 4)]:
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        for got, expected in zip(imported(x), runtime.run(None, {"x": x})):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=ATOL)


def test_range_and_slice_to_run_time_sizes_match_onnxruntime():
    """Range of length T + 1 (no value has that size: a donor one longer than T) and from
    T - 1 down to 0; rows 2..T+1 of a table (a gather from a run-time end); x[:, :T-1] (an
    end relative to the axis' own size, a plain slice)."""
    ort = pytest.importorskip("onnxruntime")
    node = helper.make_node
    nodes = [node("Shape", ["x"], ["shape"]),
             node("Gather", ["shape", "second"], ["t"], axis=0),
             node("Add", ["t", "one"], ["t_plus_1"]),
             node("Range", ["zero", "t_plus_1", "one"], ["up"]),
             node("Sub", ["t", "one"], ["t_minus_1"]),
             node("Range", ["t_minus_1", "minus_one", "minus_one"], ["down"]),
             node("Unsqueeze", ["t", "axes"], ["t_1d"]),
             node("Add", ["t_1d", "two"], ["end"]),
             node("Slice", ["table", "two", "end", "axes"], ["rows"]),
             node("Add", ["x", "rows"], ["shifted"]),
             node("Unsqueeze", ["t_minus_1", "axes"], ["t_minus_1_1d"]),
             node("Slice", ["x", "axes", "t_minus_1_1d", "one_1d"], ["all_but_last"])]
    model = _model(nodes, [_tensor("x", ["b", "t", 4])],
                   [_tensor("up", ["?"], TensorProto.INT64),
                    _tensor("down", ["?"], TensorProto.INT64),
                    _tensor("shifted", ["b", "t", 4]), _tensor("all_but_last", ["b", "?", 4])],
                   [_int64s("zero", 0), _int64s("one", 1), _int64s("minus_one", -1),
                    _int64s("second", 1), _int64s("axes", [0]), _int64s("one_1d", [1]),
                    _int64s("two", [2]),
                    numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(16, 4),
                                            "table")])
    imported = import_model(model)
    assert "arange_like" in {n.op for n in imported.graph.nodes}
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 4), (1, 14, 4)]:
        x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
        for got, expected in zip(imported(x), runtime.run(None, {"x": x})):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, atol=ATOL)
    with pytest.raises(sg.RunError, match="index 16 is out of bounds"):
        imported(np.ones((1, 15, 4), np.float32))  # rows 2..16 of 16: ONNX would clamp


# -- indexing and losses ----------------------------------------------------------------------

def _indexing_model() -> onnx.ModelProto:
    """ScatterElements written along axis 1 and added (at repeated and negative indices)
    along axis 0, GatherND of pairs, NonZero, and NegativeLogLikelihoodLoss of (N, C, d1):
    every size but C unknown."""
    node = helper.make_node
    nodes = [node("ScatterElements", ["x", "idx", "u"], ["put"], axis=1),
             node("ScatterElements", ["x", "rows", "v"], ["added"], axis=-2, reduction="add"),
             node("GatherND", ["x", "pos"], ["picked"]),
             node("Greater", ["x", "zero"], ["positive"]),
             node("NonZero", ["positive"], ["nz"]),
             node("NegativeLogLikelihoodLoss", ["lp", "labels"], ["nll"], reduction="none"),
             node("NegativeLogLikelihoodLoss", ["lp", "labels"], ["nll_mean"])]
    inputs = [_tensor("x", ["b", 4]), _tensor("idx", ["b", "k"], TensorProto.INT64),
              _tensor("u", ["b", "k"]), _tensor("rows", [2, 4], TensorProto.INT64),
              _tensor("v", [2, 4]), _tensor("pos", ["p", 2], TensorProto.INT64),
              _tensor("lp", ["b", 4, "t"]), _tensor("labels", ["b", "t"], TensorProto.INT64)]
    outputs = [_tensor("put", ["b", 4]), _tensor("added", ["b", 4]), _tensor("picked", ["p"]),
               _tensor("nz", [2, "n"], TensorProto.INT64), _tensor("nll", ["b", "t"]),
               _tensor("nll_mean", [])]
    return _model(nodes, inputs, outputs, [numpy_helper.from_array(np.float32(0), "zero")])


def _indexing_feeds(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, 4)).astype(np.float32),
            "idx": np.stack([rng.permutation(4)[:3] for _ in range(batch)]),  # no repeats
            "u": rng.standard_normal((batch, 3)).astype(np.float32),
            "rows": rng.integers(-batch, batch, (2, 4)),
            "v": rng.standard_normal((2, 4)).astype(np.float32),
            "pos": np.stack([rng.integers(0, batch, 5), rng.integers(-4, 4, 5)], 1),
            "lp": rng.standard_normal((batch, 4, 2)).astype(np.float32),
            "labels": rng.integers(0, 4, (batch, 2))}


def test_indexing_and_loss_ops_match_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    model = _indexing_model()
    imported = import_model(model)
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch, seed in [(3, 6), (5, 7)]:
        feeds = _indexing_feeds(batch, seed)
        for got, expected in zip(imported(**feeds), runtime.run(None, feeds)):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, atol=ATOL)


def test_gradients_through_imported_scatter_and_gather():
    """What is written over gets no gradient, what is added to does; updates and gathered
    elements get the cotangent at their positions."""
    imported = import_model(_indexing_model())
    x, _, u, _, v = imported.inputs[:5]
    put, added, picked = imported.outputs[:3]
    feeds = _indexing_feeds(3, 8)
    w = np.random.default_rng(9).standard_normal((3, 4)).astype(np.float32)
    with imported.graph.as_default():
        grads = [*sg.gradients((put * w).sum(), [x, u]), *sg.gradients((added * w).sum(), [x, v]),
                 sg.gradients(picked.sum(), [x])[0]]
    values = imported.session.run(grads, dict(zip(imported.inputs, feeds.values())))
    rows, idx, pos = np.arange(3)[:, None], feeds["idx"], feeds["pos"]
    kept = np.ones((3, 4), np.float32)
    kept[rows, idx] = 0
    counts = np.zeros((3, 4), np.float32)
    np.add.at(counts, (pos[:, 0], pos[:, 1]), 1)
    expected = [w * kept, w[rows, idx], w, w[feeds["rows"], np.arange(4)], counts]
    for got, want in zip(values, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=ATOL)


# -- windows and padding as ONNX places them -------------------------------------------------------

def _floats(*shape):
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


WINDOWS = {  # case -> (op, attributes, input shape, initializers after x, in input order)
    "AveragePool counting unequal pads, ceil_mode": (
        "AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 0], ceil_mode=1,
                            count_include_pad=1), (2, 3, 6, 7), {}),
    "AveragePool dilated, pads not counted": (
        "AveragePool", dict(kernel_shape=[2, 3], dilations=[2, 1], pads=[1, 1, 0, 2],
                            ceil_mode=1), (2, 3, 7, 7), {}),
    "MaxPool SAME_LOWER, strided": (
        "MaxPool", dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
        (2, 3, 7, 6), {}),
    "MaxPool dilated, ceil_mode": (
        "MaxPool", dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2], pads=[1, 0, 0, 0],
                        ceil_mode=1), (2, 3, 6, 5), {}),
    "Conv SAME_LOWER, strided, grouped, with bias": (
        "Conv", dict(strides=[2, 2], auto_pad="SAME_LOWER", group=2), (2, 4, 7, 6),
        {"w": _floats(6, 2, 3, 2), "b": _floats(6)}),
    "Conv unequal pads, dilated": (
        "Conv", dict(pads=[2, 0, 1, 1], dilations=[1, 2]), (2, 2, 6, 6),
        {"w": _floats(3, 2, 3, 2)}),
    "ConvTranspose to an output_shape, grouped": (
        "ConvTranspose", dict(strides=[2, 2], output_shape=[8, 10], group=2), (2, 4, 4, 5),
        {"w": _floats(4, 3, 3, 3)}),
    "ConvTranspose unequal pads, output_padding, with bias": (
        "ConvTranspose", dict(strides=[3, 2], pads=[1, 0, 0, 2], output_padding=[2, 1]),
        (2, 2, 3, 4), {"w": _floats(2, 3, 4, 3), "b": _floats(3)}),
    "Col2Im strided, padded": (
        "Col2Im", dict(strides=[2, 1], pads=[1, 0, 0, 1]), (2, 12, 6),
        {"image": np.array([4, 3]), "block": np.array([2, 2])}),
    "Pad reflect, cutting": (
        "Pad", dict(mode="reflect"), (2, 3, 4, 5), {"pads": np.array([0, -1, 2, 2, 0, 1, -1, 4])}),
    "Pad edge": (
        "Pad", dict(mode="edge"), (2, 3, 4, 5), {"pads": np.array([0, 0, 2, 1, 0, 1, 0, 3])}),
    "Pad wrap on two axes": (
        "Pad", dict(mode="wrap"), (2, 3, 4, 5), {"pads": np.array([1, 2, 3, 4]),
                                                  "": None,  # (no constant_value)
                                                  "axes": np.array([-1, 2])}),
    "Pad with a value": (
        "Pad", {}, (2, 3, 4, 5), {"pads": np.array([0, 1, 0, 2, 0, 0, 1, 1]),
                                  "value": np.array(-1.5, np.float32)}),
}


@pytest.mark.parametrize("case", WINDOWS)
def test_windows_and_padding_match_onnxruntime(case):
    """Each op's windows or padding as onnxruntime places them, batch size symbolic."""
    ort = pytest.importorskip("onnxruntime")
    op, attrs, shape, initializers = WINDOWS[case]
    inits = [numpy_helper.from_array(v, n) for n, v in initializers.items() if v is not None]
    node = helper.make_node(op, ["x", *initializers], ["y"], **attrs)
    graph = helper.make_graph([node], "windows", [_tensor("x", ["n", *shape[1:]])],
                              [_tensor("y", ["n", "c", "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    imported = import_model(model)
    for batch in (1, 3):
        x = _floats(batch, *shape[1:])
        (got,), (want,) = imported(x), runtime.run(None, {"x": x})
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, atol=ATOL)


# -- opsets before an op's inputs or meaning changed ---------------------------------------------

OLD_OPSETS = {  # case -> (op, opset, attributes, rank of the result)
    "Softmax coerced to 2-D": ("Softmax", 11, {"axis": 1}, 4),
    "LogSoftmax coerced to 2-D": ("LogSoftmax", 11, {"axis": 2}, 4),
    "ReduceSum axes attribute": ("ReduceSum", 11, {"axes": [1, -1], "keepdims": 0}, 2),
    "ReduceMean axes attribute": ("ReduceMean", 17, {"axes": [0]}, 4),
    "ReduceMax axes attribute": ("ReduceMax", 13, {"axes": [3], "keepdims": 0}, 3),
    "Squeeze axes attribute": ("Squeeze", 11, {"axes": [2]}, 3),
    "Unsqueeze axes attribute": ("Unsqueeze", 11, {"axes": [0, -1]}, 6),
    "Slice attributes": ("Slice", 9, {"starts": [1, -3], "ends": [2, 100], "axes": [0, 3]}, 4),
    "Clip attributes": ("Clip", 10, {"min": -0.5, "max": 0.25}, 4),
    "Split sizes attribute": ("Split", 11, {"axis": 3, "split": [1, 3]}, 4),
}


@pytest.mark.parametrize("case", OLD_OPSETS)
def test_older_opsets_match_onnxruntime(case):
    # (onnx's reference evaluator gives old Softmax the new meaning; onnxruntime does not)
    ort = pytest.importorskip("onnxruntime")
    op, opset, attrs, rank = OLD_OPSETS[case]
    outputs = ["y", "z"] if op == "Split" else ["y"]
    graph = helper.make_graph([helper.make_node(op, ["x"], outputs, **attrs)], "old",
                              [_tensor("x", ["b", 3, 1, 4])],
                              [_tensor(o, [None] * rank) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = np.random.default_rng(4).standard_normal((2, 3, 1, 4)).astype(np.float32)
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = runtime.run(None, {"x": x})
    for got, want in zip(import_model(model)(x), expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL)


# -- bad input ------------------------------------------------------------------------------

def _relu_model() -> onnx.ModelProto:
    return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                  [_tensor("x", ["n", 3])], [_tensor("y", ["n", 3])])


def _one_node(op, inputs, initializers=(), domain="", **attrs):
    return _model([helper.make_node(op, inputs, ["y"], name="bad", domain=domain, **attrs)],
                  [_tensor("x", ["n", 3])], [_tensor("y", ["a", "b"])], initializers,
                  [domain] if domain else [])


def _truncated() -> bytes:
    data = _relu_model().SerializeToString()
    return data[:len(data) // 2]


def _cycle():
    node = helper.make_node
    return _model([node("Add", ["x", "b"], ["a"], name="first"),
                   node("Relu", ["a"], ["b"], name="second"),
                   node("Neg", ["a"], ["y"], name="after")],
                  [_tensor("x", ["n", 3])], [_tensor("y", ["n", 3])])


def _to_run_time_size(op, inputs, initializers, rank):
    """A node 'bad' with inputs 'n' and 'n_1d': x's run-time length as 0-D and 1-D int64."""
    node = helper.make_node
    return _model([node("Shape", ["x"], ["shape"]),
                   node("Gather", ["shape", "zero"], ["n"], axis=0),
                   node("Unsqueeze", ["n", "zeros"], ["n_1d"]),
                   node(op, inputs, ["y"], name="bad")],
                  [_tensor("x", ["n", 3])], [_tensor("y", ["?"] * rank)],
                  [_int64s("zero", 0), _int64s("zeros", [0]), *initializers])


def _huge_initializer():
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**20, 2**20])
    return _one_node("Add", ["x", "w"], [huge])


def _image_node(op, inputs=("x",), initializers=(), shape=("n", 2, 4, 4), outputs=("y",),
                opset=17, **attrs):
    """A node 'bad' of an image x: (n, 2, 4, 4) unless told."""
    model = _model([helper.make_node(op, list(inputs), list(outputs), name="bad", **attrs)],
                   [_tensor("x", list(shape))], [_tensor(o, ["?"] * len(shape)) for o in outputs],
                   initializers)
    model.opset_import[0].version = opset
    return model


def _weight(*shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), "w")


BAD = {
    "not a model": (lambda: b"this is not an ONNX model",
                    "the model is not a valid ONNX model: the bytes do not parse"),
    "truncated": (_truncated, "the model is not a valid ONNX model"),
    "missing file": (lambda: "/nonexistent/model.onnx",
                     "no ONNX model at '/nonexistent/model.onnx': the file does not exist"),
    "unknown op": (lambda: _one_node("FooBar", ["x"]),
                   "node 'bad' (FooBar): op 'FooBar' of domain 'ai.onnx' (opset 17) is not "
                   "supported"),
    "unknown domain": (lambda: _one_node("Gelu", ["x"], domain="com.microsoft"),
                       "node 'bad' (Gelu): op 'Gelu' of domain 'com.microsoft' (opset 1) is "
                       "not supported"),
    "unproduced input": (lambda: _one_node("Add", ["x", "ghost"]),
                         "node 'bad' (Add) uses 'ghost', which no node, graph input or "
                         "initializer produces"),
    "cycle": (_cycle, "the graph has a cycle: node 'first' (Add), node 'second' (Relu) wait "
                      "on each other's outputs"),
    "huge initializer": (_huge_initializer, "initializer 'w' of shape [1048576, 1048576] "
                         f"(float32) would take 4398046511104 bytes, more than the importer "
                         f"allows (MAX_ALLOCATION_BYTES = {MAX_ALLOCATION_BYTES})"),
    "huge ConstantOfShape": (lambda: _one_node("ConstantOfShape", ["s"],
                                               [_int64s("s", [2**20, 2**20])]),
                             "node 'bad' (ConstantOfShape), opset 17: ConstantOfShape's "
                             "result of shape [1048576, 1048576] (float32) would take"),
    "huge Range": (lambda: _one_node("Range", ["a", "b", "c"],
                                     [_int64s("a", 0), _int64s("b", 2**40), _int64s("c", 1)]),
                   "node 'bad' (Range), opset 17: Range's result of shape [1099511627776] "
                   "(int64) would take"),
    "Range by 2 to a run-time size": (
        lambda: _to_run_time_size("Range", ["zero", "n", "two"], [_int64s("two", 2)], 1),
        "node 'bad' (Range), opset 17: Range's length depends on a size known only at run "
        "time; that is supported for a delta of 1 or -1 only"),
    "Slice by 2 to a run-time end": (
        lambda: _to_run_time_size("Slice", ["table", "zeros", "n_1d", "zeros", "twos"],
                                  [_int64s("twos", [2]),
                                   numpy_helper.from_array(np.ones((16, 3), np.float32),
                                                           "table")], 2),
        "node 'bad' (Slice), opset 17: Slice's end depends on a size known only at run time; "
        "that needs step 1"),
    "huge Expand": (lambda: _one_node("Expand", ["x", "s"], [_int64s("s", [2**20, 2**20, 3])]),
                    "Expand's result of shape [1048576, 1048576, 3] (float32) would take"),
    "negative shape": (lambda: _one_node("ConstantOfShape", ["s"], [_int64s("s", [2, -3])]),
                       "ConstantOfShape's result has a negative size in its shape [2, -3]"),
    "unsupported dtype": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])],
                                         [_tensor("x", [2], TensorProto.FLOAT16)],
                                         [_tensor("y", [2], TensorProto.FLOAT16)]),
                          "graph input 'x' has dtype FLOAT16; staticgraph imports FLOAT, "
                          "DOUBLE, INT32, INT64 and BOOL"),
    "shape from data": (lambda: _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")],
                                       [_tensor("x", [2, 3]), _tensor("s", [2], TensorProto.INT64)],
                                       [_tensor("y", ["a", "b"])]),
                        "node 'r' (Reshape), opset 17: Reshape's shape must be known when the "
                        "model is imported, but 's' is known only at run time"),
    "bad attribute": (lambda: _one_node("Softmax", ["x"], axis=5),
                      "node 'bad' (Softmax), opset 17: axis 5 is out of range for rank 2"),
    "NLL with class weights": (
        lambda: _one_node("NegativeLogLikelihoodLoss", ["x", "t", "w"],
                          [_int64s("t", [0, 2]),
                           numpy_helper.from_array(np.ones(3, np.float32), "w")]),
        "node 'bad' (NegativeLogLikelihoodLoss), opset 17: class weights are not supported"),
    "GatherND with batch_dims": (
        lambda: _one_node("GatherND", ["x", "i"], [_int64s("i", [[0], [1]])], batch_dims=1),
        "node 'bad' (GatherND), opset 17: batch_dims 1 is not supported, only 0"),
    "GatherND of unknown depth": (
        lambda: _model([helper.make_node("GatherND", ["x", "i"], ["y"], name="bad")],
                       [_tensor("x", ["n", 3]), _tensor("i", [2, "d"], TensorProto.INT64)],
                       [_tensor("y", ["?"])]),
        "node 'bad' (GatherND), opset 17: indices of shape (2, None): the length of their "
        "last axis must be known when importing"),
    "NLL of unknown classes": (
        lambda: _model([helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["y"],
                                         name="bad")],
                       [_tensor("x", ["n", "c"]), _tensor("t", ["n"], TensorProto.INT64)],
                       [_tensor("y", [])]),
        "node 'bad' (NegativeLogLikelihoodLoss), opset 17: log-probabilities of shape "
        "(None, None): (N, C, ...) with the number of classes C known when importing"),
    "ScatterElements multiplying": (
        lambda: _one_node("ScatterElements", ["x", "i", "x"], [_int64s("i", [[0, 1, 0]])],
                          reduction="mul"),
        "node 'bad' (ScatterElements), opset 17: reduction 'mul' is not supported, only "
        "'none' and 'add'"),
    "Conv over 1-D": (lambda: _image_node("Conv", ["x", "w"], [_weight(3, 2, 2)],
                                          shape=("n", 2, 5)),
                      "node 'bad' (Conv), opset 17: Conv of an input of rank 3: only 2-D Conv is "
                      "supported (inputs N x C x H x W)"),
    "MaxPool over 3-D": (lambda: _image_node("MaxPool", shape=("n", 2, 4, 4, 4),
                                             kernel_shape=[2, 2, 2]),
                         "node 'bad' (MaxPool), opset 17: MaxPool of an input of rank 5: only "
                         "2-D MaxPool is supported"),
    "kernel_shape not the weight's": (
        lambda: _image_node("Conv", ["x", "w"], [_weight(3, 2, 2, 2)], kernel_shape=[3, 3]),
        "node 'bad' (Conv), opset 17: kernel_shape [3, 3] differs from the weight's kernel "
        "[2, 2]"),
    "Conv's channels": (lambda: _image_node("Conv", ["x", "w"], [_weight(3, 4, 2, 2)]),
                        "Given groups=1, weight of size [3, 4, 2, 2], expected input[None, 2, 4, "
                        "4] to have 4 channels, but got 2 channels instead"),
    "MaxPool's Indices": (lambda: _image_node("MaxPool", outputs=("y", "i"), kernel_shape=[2, 2]),
                          "node 'bad' (MaxPool), opset 17: the Indices output (positions of the "
                          "maxima) is not supported"),
    "pool padding as large as the kernel": (
        lambda: _image_node("AveragePool", kernel_shape=[2, 2], pads=[0, 2, 0, 0]),
        "node 'bad' (AveragePool), opset 17: padding [[0, 0], [2, 0]] (before, after per axis) "
        "must be smaller than the kernel [2, 2]"),
    "ConvTranspose output past its windows": (
        lambda: _image_node("ConvTranspose", ["x", "w"], [_weight(2, 1, 3, 3)], strides=[2, 2],
                            output_padding=[2, 0]),
        "node 'bad' (ConvTranspose), opset 17: an output of size 11 along spatial axis 0 "
        "reaches 2 past the last window (output_padding or output_shape); 0 to stride - 1 (1) "
        "are supported"),
    "Col2Im into 3-D": (
        lambda: _image_node("Col2Im", ["x", "size", "block"],
                            [_int64s("size", [4, 4, 4]), _int64s("block", [2, 2, 2])],
                            shape=("n", 8, 27), opset=18),
        "node 'bad' (Col2Im), opset 18: an image of shape [4, 4, 4]: only 2-D images are "
        "supported"),
    "Pad reflecting past the axis": (
        lambda: _image_node("Pad", ["x", "pads"], [_int64s("pads", [0, 0, 4, 0, 0, 0, 0, 0])],
                            mode="reflect"),
        "node 'bad' (Pad), opset 17: reflect pads of 4 along axis 2 of size 4: at most 3 are "
        "supported"),
    "checker": (lambda: _one_node("Relu", ["x"], alpha=1.0),
                "invalid ONNX model: Unrecognized attribute: alpha for operator Relu"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_a_clear_error(case):
    make, message = BAD[case]
    with pytest.raises(ONNXError) as error:
        import_model(make())
    assert message in str(error.value)
    assert error.value.__suppress_context__ or error.value.__context__ is None  # no chain


def _save_with_external_data(model, folder, location="weights.bin") -> str:
    path = os.path.join(folder, "model.onnx")
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def _affine_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")],
                  [_tensor("x", ["n", 3])], [_tensor("y", ["n", 2])], [w])


def test_external_data_is_read_only_when_allowed_and_only_from_the_models_folder(tmp_path):
    path = _save_with_external_data(_affine_model(), tmp_path)
    with pytest.raises(ONNXError, match="initializer 'w' \\(external data 'weights.bin'\\): the "
                                        "model keeps tensors in external files; pass "
                                        "allow_external_data=True"):
        import_model(path)
    (y,) = import_model(path, allow_external_data=True)(np.ones((1, 3), np.float32))
    assert y.tolist() == [[6.0, 9.0]]

    outside = tmp_path / "model"
    outside.mkdir()
    model = onnx.load(path, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../weights.bin"
    onnx.save_model(model, outside / "model.onnx")
    with pytest.raises(ONNXError, match="the location is outside the model's folder"):
        import_model(outside / "model.onnx", allow_external_data=True)
    with pytest.raises(ONNXError, match="external data can be read only for a model loaded "
                                        "from a path"):
        import_model(model, allow_external_data=True)
