"""ONNX export and import of control flow (If, Loop, Scan), against onnxruntime and onnx's
ReferenceEvaluator, the independent oracles:

- every program of the shared control-flow table (tests/control_cases.py) with its gradients
  and Hessian-vector products: exported (checked by onnx), run by both runtimes against the
  numpy runtime, then imported back and run here;
- one model with symbolic sizes run at trip counts 0, 1 and many and at 0, 1 and many rows;
- ONNX control flow staticgraph does not write (a Loop with a trip count and a condition
  computed at run time and scan outputs, Scan with axes and directions, an If decided while
  importing), and the gradients of imported loops against finite differences;
- which control flow an exported model comes back as, and the errors.
"""

from __future__ import annotations

import types
from unittest import mock

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest
from control_cases import CASE_IDS, CASES, built
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops import op_loop

import staticgraph as sg
from staticgraph.graph import Role
from staticgraph.onnx.errors import ONNXError

ort = pytest.importorskip("onnxruntime")

_STACKING_NUMPY = types.SimpleNamespace(**{**vars(np), "vstack": np.stack})


class Loop(op_loop.Loop):
    """onnx 1.23's reference Loop stacks scan outputs with np.vstack, which joins elements of
    two or more dimensions along their own first axis and makes scalars (n, 1); ONNX's spec
    (and onnxruntime) stack them along a new first axis. This is that Loop with np.stack."""

    op_domain = ""

    def _run(self, *args, **kwargs):
        with mock.patch.object(op_loop, "np", _STACKING_NUMPY):
            return super()._run(*args, **kwargs)


# Zero trips with scan outputs: the reference cannot stack no values (it does not read the
# body's declared shapes, as onnxruntime does), so these are run by onnxruntime alone.
NO_REFERENCE = {"while_0_trips"}


def checked(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx's full check (single assignment across scopes included), strict shape
    inference, and every initializer read by some node of some (sub)graph."""
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    used = {name for node in _all_nodes(model.graph) for name in node.input}
    unused = [i.name for i in model.graph.initializer if i.name not in used]
    assert not unused, f"initializers no node reads: {unused}"
    return model


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _all_nodes(attribute.g)


def run_ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_reference(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ReferenceEvaluator(model, new_ops=[Loop]).run(None, feeds)


def assert_close(got: list, want: list, names: list[str], rtol: float = 1e-9) -> None:
    assert len(got) == len(want)
    for g, w, name in zip(got, want, names):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=name)


def control_kinds(graph: sg.Graph) -> list[str]:
    """The control flow of a graph's top level, in order."""
    return [type(n.control).__name__ for n in graph.nodes if n.role is Role.CONTROL]


# -- the shared table: values, gradients and Hessian-vector products -----------------------------

class Exported:
    """A table case as a graph, its exported model, and the values the numpy runtime gives."""

    def __init__(self, case) -> None:
        self.built = b = built(case)
        arrays = list(case.inputs.values())
        placeholders = [(n, a) for n, a in zip(b.inputs, arrays) if n.op != "variable"]
        self.feeds = {n.name: a for n, a in placeholders}
        self.want = b.run(sg.Session(b.graph), arrays, b.fetches)
        self.names = [f.name for f in b.fetches]
        self.model = sg.onnx.export(b.fetches, [n for n, _ in placeholders])


@pytest.fixture(scope="module")
def exported():
    cache: dict[str, Exported] = {}

    def get(case) -> Exported:
        if case.name not in cache:
            cache[case.name] = Exported(case)
        return cache[case.name]
    return get


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_exported_table_case_runs_in_onnxruntime_and_the_reference(case, exported) -> None:
    e = exported(case)
    checked(e.model)
    assert_close(run_ort(e.model, e.feeds), e.want, e.names)
    if case.name in NO_REFERENCE:
        with pytest.raises(ValueError, match="at least one array"):
            run_reference(e.model, e.feeds)
    else:
        assert_close(run_reference(e.model, e.feeds), e.want, e.names)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_exported_table_case_imports_back(case, exported) -> None:
    e = exported(case)
    assert_close(sg.onnx.import_model(e.model)(**e.feeds), e.want, e.names)


@pytest.mark.parametrize("name", ["cond_in_while", "scan_in_scan", "while_in_cond_true"])
def test_oldest_opset(name: str, exported) -> None:
    e = exported(CASES[CASE_IDS.index(name)])
    placeholders = [n for n in e.built.inputs if n.op != "variable"]
    model = checked(sg.onnx.export(e.built.fetches, placeholders, opset_version=13))
    assert_close(run_ort(model, e.feeds), e.want, e.names)


# -- symbolic sizes: one model, any number of trips and rows -------------------------------------

@pytest.fixture(scope="module")
def symbolic():
    """A while loop with a fed trip count that reads the (rows, 3) input, a forward and a
    reverse scan over its rows, a cond on the loop's result, and gradients of all."""
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder((None, 3), name="x")
        n = sg.placeholder((), "int64", name="n")
        w = sg.Variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
        i, y = sg.while_loop(lambda i, y: i < n,
                             lambda i, y: (i + 1, (y * w).sin() + x * 0.5),
                             (sg.constant(np.int64(0)), x))
        h = sg.constant(np.zeros(3, np.float32))
        forward = sg.scan(lambda a, e: (a * w + e).tanh(), x, initializer=h)
        backward = sg.scan(lambda a, e: a * 0.5 + e * w, x, initializer=h, reverse=True)
        c = sg.cond(y.sum() > 0, lambda: y * w, lambda: y.exp())
        loss = (y * y).sum() + (forward * backward).sum() + c.sum()
        fetches = [i, y, forward, backward, c, *sg.gradients(loss, [x, w])]
    return graph, fetches, [x, n], checked(sg.onnx.export(fetches, [x, n]))


@pytest.mark.parametrize("rows, trips", [(2, 0), (2, 1), (3, 4), (1, 2), (0, 3), (0, 0)])
def test_symbolic_sizes(symbolic, rows: int, trips: int) -> None:
    graph, fetches, inputs, model = symbolic
    x = np.random.default_rng(rows + 10 * trips).standard_normal((rows, 3)).astype(np.float32)
    feeds = {"x": x, "n": np.array(trips, np.int64)}
    want = sg.Session(graph).run(fetches, dict(zip(inputs, feeds.values())))
    names = [f.name for f in fetches]
    assert_close(run_ort(model, feeds), want, names, rtol=1e-5)
    if rows and trips:  # (no rows: scan outputs of zero trips, which the reference cannot stack)
        assert_close(run_reference(model, feeds), want, names, rtol=1e-5)
    assert_close(sg.onnx.import_model(model)(**feeds), want, names, rtol=1e-5)


def test_a_value_written_inside_a_branch_is_not_read_outside() -> None:
    """x + d casts x to float64 inside the true branch first; x * d, after the cond, needs
    that cast too, and must write its own (a subgraph's values are not visible outside)."""
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder((3,), "float32", name="x")
        d = sg.placeholder((3,), "float64", name="d")
        out = sg.cond(d.sum() > 0, lambda: x + d, lambda: d) + x * d
    model = checked(sg.onnx.export(out, [x, d]))
    feeds = {"x": np.array([1.0, -2.0, 0.5], np.float32), "d": np.arange(3.0)}
    want = sg.Session(graph).run([out], {x: feeds["x"], d: feeds["d"]})
    assert_close(run_ort(model, feeds), want, ["out"])


# -- ONNX control flow staticgraph does not write -------------------------------------------------

EARLY_EXIT = """
<ir_version: 8, opset_import: ["" : 17]>
early_exit (int64 m, double[2,3] x, double limit) => (double[2,3] y, double[?,2,3] seen) {
    go = Constant <value = bool {1}> ()
    y, seen = Loop (m, go, x) <body = step (int64 i, bool c, double[2,3] v)
                                        => (bool more, double[2,3] w, double[2,3] half_w)
                                        <double half = {0.5}> {
        s = Sin (v)
        w = Add (v, s)
        total = ReduceSum <keepdims = 0> (w)
        more = Less (total, limit)
        half_w = Mul (w, half)
    }>
}
"""
X23 = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, -0.6]])


@pytest.fixture(scope="module")
def early_exit():
    model = onnx.parser.parse_model(EARLY_EXIT)
    onnx.checker.check_model(model, full_check=True)
    return model, sg.onnx.import_model(model)


@pytest.mark.parametrize("m, limit", [(0, 9.0), (2, 9.0), (8, 9.0), (8, -1.0)],
                         ids=["M=0", "M_stops", "cond_stops", "one_trip"])
def test_loop_with_run_time_trip_count_condition_and_scan_outputs(early_exit, m, limit) -> None:
    """The trip count and condition come from the data: a while loop, and the scan outputs
    a scan over its recorded trips."""
    model, imported = early_exit
    assert control_kinds(imported.graph) == ["WhileLoop", "Scan"]
    feeds = {"m": np.array(m), "x": X23, "limit": np.array(limit)}
    want = run_ort(model, feeds)
    assert_close(imported(**feeds), want, ["y", "seen"])
    if m:
        assert_close(run_reference(model, feeds), want, ["y", "seen"])


@pytest.mark.parametrize("m", [np.iinfo(np.int64).max, 8], ids=["INT64_MAX", "8"])
def test_loop_with_a_known_trip_count_and_a_computed_condition(early_exit, m: int) -> None:
    """M known while importing (INT64_MAX: how exporters write a while loop) but a condition
    the body computes: a while loop still."""
    model = onnx.ModelProto()
    model.CopyFrom(early_exit[0])
    del model.graph.input[0]
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(m), "m"))
    imported = sg.onnx.import_model(model)
    assert control_kinds(imported.graph) == ["WhileLoop", "Scan"]
    feeds = {"x": X23, "limit": np.array(9.0)}
    assert_close(imported(**feeds), run_ort(model, feeds), ["y", "seen"])


def _scan_model(input_directions: list[int], output_directions: list[int]) -> onnx.ModelProto:
    """A Scan reading a along its axis 1 and b along its axis 0, writing y1 along axis 1 and
    y2 along axis 0, with the given directions."""
    return onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
scan_axes (float[2] s0, float[2,4] a, float[4,2] b) => (float[2] s, float[2,4] y1, float[4,2] y2)
{{
    s, y1, y2 = Scan (s0, a, b) <num_scan_inputs = 2, scan_input_axes = [1, 0],
                                 scan_output_axes = [1, 0],
                                 scan_input_directions = {input_directions},
                                 scan_output_directions = {output_directions},
                                 body = step (float[2] h, float[2] ea, float[2] eb)
                                             => (float[2] h2, float[2] o1, float[2] o2) {{
        p = Mul (h, ea)
        q = Add (p, eb)
        h2 = Tanh (q)
        o1 = Sin (h2)
        o2 = Mul (h2, ea)
    }}>
}}
""")


@pytest.mark.parametrize("inputs", [[0, 0], [1, 0], [1, 1]], ids=str)
@pytest.mark.parametrize("outputs", [[0, 1], [1, 0]], ids=str)
def test_scan_axes_and_directions(inputs: list[int], outputs: list[int]) -> None:
    model = _scan_model(inputs, outputs)
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(sum(inputs) + 3 * outputs[0])
    feeds = {"s0": rng.standard_normal(2).astype(np.float32),
             "a": rng.standard_normal((2, 4)).astype(np.float32),
             "b": rng.standard_normal((4, 2)).astype(np.float32)}
    assert_close(sg.onnx.import_model(model)(**feeds), run_ort(model, feeds),
                 ["s", "y1", "y2"], rtol=1e-6)


def test_if_known_while_importing_takes_its_branch_of_another_shape() -> None:
    """ONNX's branches may differ in shape; a predicate known while importing (an exporter's
    shape test) imports the branch taken only."""
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
static_if (float[2,3] x) => (float[6] y) {
    c = Constant <value = bool {1}> ()
    y = If (c) <then_branch = t () => (float[6] r) {
                    shape = Constant <value = int64[1] {6}> ()
                    r = Reshape (x, shape)
                },
                else_branch = e () => (float[2,3] r2) { r2 = Identity (x) }>
}
""")
    imported = sg.onnx.import_model(model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert control_kinds(imported.graph) == []
    assert_close(imported(x), run_ort(model, {"x": x}), ["y"])


# -- imported loops are first-class: gradients against finite differences ------------------------

def _finite_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[k] = eps
        grad[k] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


def _gradient_check(imported: sg.onnx.ImportedModel, feeds: dict, wrt: str) -> None:
    """d/d(wrt) of the sum of squares of every output: sg.gradients on the imported graph
    against central differences of the imported model's own values (float64)."""
    with imported.graph.as_default():
        loss = sum((o * o).sum() for o in imported.outputs)
        (grad,) = sg.gradients(loss, [imported.inputs[imported.input_names.index(wrt)]])
    got = imported.session.run(grad, dict(zip(imported.inputs, feeds.values())))

    def f(value):
        return sum((o * o).sum() for o in imported(**{**feeds, wrt: value}))
    np.testing.assert_allclose(got, _finite_differences(f, feeds[wrt]), rtol=1e-6, atol=1e-8)


def test_gradient_through_an_imported_while_loop_with_scan_outputs(early_exit) -> None:
    _, imported = early_exit
    _gradient_check(imported, {"m": np.array(8), "x": X23, "limit": np.array(9.0)}, "x")


@pytest.mark.parametrize("name", ["while_many_trips", "scan_reverse", "scan_in_scan"])
def test_gradient_through_an_imported_table_model(name: str) -> None:
    """The forward program alone, exported and imported: its loops differentiate."""
    case = CASES[CASE_IDS.index(name)]
    b = built(case)
    placeholders = [n for n in b.inputs if n.op != "variable"]
    imported = sg.onnx.import_model(sg.onnx.export(
        [o for o in b.outputs if o.dtype.kind == "f"], placeholders))
    _gradient_check(imported, {n.name: case.inputs[n.name] for n in placeholders},
                    placeholders[-1].name)


# -- what comes back, and errors ------------------------------------------------------------------

@pytest.mark.parametrize("name, kinds", [("while_many_trips", ["WhileLoop"]),
                                         ("while_maximum_iterations", ["WhileLoop"]),
                                         ("scan_reverse", ["Scan"]), ("cond_true", ["Cond"])])
def test_exported_control_flow_comes_back_as_itself(name: str, kinds: list[str]) -> None:
    """A scan leaves as a Loop with a trip count and a condition that stays true, which the
    importer recognises as a counted loop: a Scan again, its body run once per trip."""
    b = built(CASES[CASE_IDS.index(name)])
    imported = sg.onnx.import_model(sg.onnx.export(
        b.outputs[-1], [n for n in b.inputs if n.op != "variable"]))
    assert control_kinds(imported.graph) == kinds


def test_scan_before_opset_9_is_refused() -> None:
    model = onnx.parser.parse_model("""
<ir_version: 4, opset_import: ["" : 8]>
scan8 (float[1,2] s0, float[1,3,2] x) => (float[1,2] s, float[1,3,2] y) {
    s, y = Scan ("", s0, x) <num_scan_inputs = 1, body = step (float[2] h, float[2] e)
                                                          => (float[2] h2, float[2] o) {
        h2 = Add (h, e)
        o = Identity (h2)
    }>
}
""")
    with pytest.raises(ONNXError, match="Scan before opset 9"):
        sg.onnx.import_model(model)


def test_a_loop_variable_that_changes_shape_is_refused() -> None:
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
grows (int64 m, bool go, float[2] x) => (float[?] y) {
    y = Loop (m, go, x) <body = step (int64 i, bool c, float[?] v) => (bool c2, float[?] v2) {
        c2 = Identity (c)
        v2 = Concat <axis = 0> (v, v)
    }>
}
""")
    with pytest.raises(ONNXError, match=r"Loop.*loop variable 2 .*\(2,\).*\(4,\)"):
        sg.onnx.import_model(model)


def test_an_unsupported_op_in_a_subgraph_names_it_and_its_loop() -> None:
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
unsupported (int64 m, float[2,3] x) => (float[2,3] y) {
    go = Constant <value = bool {1}> ()
    y = Loop (m, go, x) <body = step (int64 i, bool c, float[2,3] v) => (bool c2, float[2,3] v2) {
        c2 = Identity (c)
        v2 = Hardmax (v)
    }>
}
""")
    with pytest.raises(ONNXError, match=r"Loop.*the Hardmax node producing 'v2'.*not supported"):
        sg.onnx.import_model(model)
