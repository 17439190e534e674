"""The compiler: each pass on small graphs (what it must change and what it must leave
alone), every op spec through each pass alone and all together against the interpreter,
random graphs (hypothesis), and the memory plan's invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import requires_opencl
from opspecs import EAGER_F, SPEC_IDS, SPECS, OpSpec
from test_eager_ops import _diff_indices, _sample

import eager
import staticgraph as sg
from staticgraph.passes import DEFAULT_PASSES, PASSES, check_invariants, specialize
from staticgraph.passes.dce import eliminate_dead_code
from staticgraph.passes.memory import check_plan

PIPELINES = {"none": (), **{name: (name,) for name in PASSES},
             "plan_memory": ("plan_memory",), "all": DEFAULT_PASSES}


def _optimized(fetches, feeds, passes):
    g = fetches[0].graph
    return sg.Session(g, passes=passes).compiled(fetches, feeds)


# -- each pass on its own small graph -----------------------------------------------------------

def _ops_after(passes, build, feed_shape=(4, 3)):
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(feed_shape, "float64", name="x")
        out = build(x)
    compiled = sg.Session(g, passes=passes).compiled(out, {x: np.ones(feed_shape)})
    return [n.op for n in compiled.graph.nodes], compiled


@pytest.mark.parametrize("build, gone", [
    (lambda x: x * 1, "mul"), (lambda x: 1 * x, "mul"), (lambda x: x + (-0.0), "add"),
    (lambda x: x - 0, "sub"), (lambda x: x / 1, "div"), (lambda x: -(-x), "neg"),
    (lambda x: x.T.T, "transpose"), (lambda x: x.expand(4, 3), "broadcast_to"),
    (lambda x: x.reshape(4, 3), "reshape"), (lambda x: x.detach(), "stop_gradient"),
])
def test_simplify_removes_what_changes_nothing(build, gone) -> None:
    ops, _ = _ops_after(("simplify", "dce"), build)  # simplify may orphan; dce removes
    assert gone not in ops


@pytest.mark.parametrize("build, kept", [
    (lambda x: x - x, "sub"),                    # inf - inf is nan: not 0 for floats
    (lambda x: x + 0, "add"),                    # -0.0 + 0.0 is +0.0: not x
    (lambda x: (x.log()).exp(), "exp"),          # log is nan below 0
    (lambda x: x * sg.constant(np.ones((2, 4, 3))), "mul"),  # the 1s broadcast x larger
    (lambda x: x * 2, "mul"),
    (lambda x: x.T, "transpose"),
])
def test_simplify_leaves_what_would_change_values(build, kept) -> None:
    ops, _ = _ops_after(("simplify",), build)
    assert kept in ops


def test_simplify_merges_movement_chains_and_knows_sizes() -> None:
    ops, _ = _ops_after(("simplify", "dce"), lambda x: x.reshape(12).reshape(2, 6))
    assert ops.count("reshape") == 1
    ops, _ = _ops_after(("simplify", "dce"),
                        lambda x: x.unsqueeze(0).permute(2, 0, 1).permute(1, 2, 0))
    assert ops.count("transpose") == 0
    ops, _ = _ops_after(("simplify", "dce"), lambda x: x.mean())
    assert "size_of" not in ops


def test_integer_self_subtraction_is_zero() -> None:
    g = sg.Graph()
    with g.as_default():
        i = sg.placeholder((3,), "int64", name="i")
        out = i - i
    compiled = sg.Session(g, passes=("simplify",)).compiled(out, {i: [1, 2, 3]})
    assert "sub" not in [n.op for n in compiled.graph.nodes]
    assert sg.Session(g).run(out, {i: [1, 2, 3]}).tolist() == [0, 0, 0]


def test_constant_folding_evaluates_constant_subgraphs_only() -> None:
    def build(x):
        c = (sg.constant([1.0, 2.0, 3.0], "float64") * 2).exp()
        return x + c
    ops, compiled = _ops_after(("fold_constants", "dce"), build)
    assert ops.count("constant") == 1 and "exp" not in ops and "add" in ops
    folded = next(n for n in compiled.graph.nodes if n.op == "constant")
    np.testing.assert_allclose(folded.value, np.exp([2.0, 4.0, 6.0]))
    ops, _ = _ops_after(("fold_constants", "dce"),
                        lambda x: x + sg.constant(0.0, "float64").expand(600, 200)[:4, :3])
    assert "broadcast_to" in ops  # 120,000 elements: left to run time


def test_cse_merges_equal_work_and_nothing_else() -> None:
    def build(x):
        a, b, c = x.exp(), x.exp(), x.sum(0)
        return a + b + c + x.sum(1).sum() + sg.constant(2.0, "float64") \
            + sg.constant(2.0, "float64")
    ops, _ = _ops_after(("cse", "dce"), build)
    assert ops.count("exp") == 1 and ops.count("sum") == 3 and ops.count("constant") == 1


def test_cse_never_merges_variables_or_placeholders() -> None:
    g = sg.Graph()
    with g.as_default():
        v, w = sg.Variable(np.zeros(2)), sg.Variable(np.zeros(2))
        p, q = sg.placeholder((2,), "float64"), sg.placeholder((2,), "float64")
        out = v + w + p + q
    compiled = sg.Session(g, passes=("cse",)).compiled(out, {p: [1, 1], q: [2, 2]})
    ops = [n.op for n in compiled.graph.nodes]
    assert ops.count("variable") == 2 and ops.count("placeholder") == 2


def test_dce_keeps_only_what_the_outputs_need() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3,), "float64", name="x")
        v = sg.Variable(np.zeros(3), name="v")
        unused, out = x.exp(), x * 2
        update = sg.assign(v, (x + 1).tanh())
    program = specialize([out, unused, update], {x: (3,)})
    program.outputs = [program.outputs[0], program.outputs[2]]  # exp is no longer wanted
    kept = eliminate_dead_code(program)
    assert sorted(n.op for n in kept.nodes) == sorted(
        ["placeholder", "constant", "mul", "variable", "constant", "add", "tanh", "assign"])
    assert [o.op for o in kept.outputs] == ["mul", "assign"]


def test_dce_removes_what_simplification_orphaned() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3,), "float64", name="x")
        out = -(-(x.exp()))
    kept = sg.Session(g, passes=("simplify",)).compiled(out, {x: np.ones(3)})
    cleaned = sg.Session(g, passes=("simplify", "dce")).compiled(out, {x: np.ones(3)})
    assert [n.op for n in kept.graph.nodes].count("neg") == 1  # orphaned, still there
    assert [n.op for n in cleaned.graph.nodes] == ["placeholder", "exp"]


# -- fusion ------------------------------------------------------------------------------------

def _fused(compiled):
    return [n.fused for n in compiled.fused_kernels]


def test_an_elementwise_chain_becomes_one_kernel() -> None:
    ops, compiled = _ops_after(DEFAULT_PASSES, lambda x: ((x * 2 + 1).tanh() - 3).exp())
    [kernel] = _fused(compiled)
    assert [m.prim.name for m in kernel.members] == ["mul", "add", "tanh", "sub", "exp"]
    assert kernel.outputs == [4]


def test_a_value_with_several_consumers_is_also_an_output() -> None:
    def build(x):
        t = (x * 2).tanh()
        return [t.exp() + t, t.sum(0)]  # t is used inside and by a reduction over rows
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 3), "float64", name="x")
        outs = build(x)
    compiled = sg.Session(g).compiled(outs, {x: np.ones((4, 3))})
    [kernel] = _fused(compiled)
    assert len(kernel.outputs) == 2  # the add, and the sum over rows (a sink)


def test_softmax_is_one_kernel_and_matmul_breaks_fusion() -> None:
    ops, compiled = _ops_after(DEFAULT_PASSES, lambda x: (x @ sg.constant(np.ones((3, 5)))
                                                         ).softmax(-1), (8, 3))
    [kernel] = _fused(compiled)
    assert "matmul" in ops and {"max", "exp", "sum", "div"} <= {m.prim.name
                                                               for m in kernel.members}


def test_an_enlarging_broadcast_is_read_whole_not_computed_in_the_kernel() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 3), "float64", name="x")
        b = sg.placeholder((3,), "float64", name="b")
        out = (x + (b * 2).exp()).relu()
    compiled = sg.Session(g).compiled(out, {x: np.ones((4, 3)), b: np.ones(3)})
    bias_kernel, kernel = sorted(_fused(compiled), key=lambda k: k.rows)
    assert (bias_kernel.rows, kernel.rows) == (3, 4)  # (3,) has no rows of x: its own kernel
    assert [m.prim.name for m in bias_kernel.members] == ["mul", "exp"]
    assert [m.prim.name for m in kernel.members] == ["add", "relu"]


def test_a_new_elementwise_primitive_fuses_by_its_kind() -> None:
    """softplus is one definition plus one numpy table entry: fusion needs nothing else."""
    ops, compiled = _ops_after(DEFAULT_PASSES, lambda x: (sg.softplus(x * 2) * 3).exp())
    [kernel] = _fused(compiled)
    assert [m.prim.name for m in kernel.members] == ["mul", "softplus", "mul", "exp"]


@pytest.mark.parametrize("rows", [4, 400_000])  # one chunk; many chunks over threads
def test_a_new_reduction_fuses_by_its_combine(rows) -> None:
    """prod is one definition (combine=mul) plus one numpy table entry: it fuses as a row
    reduction and as a sink over the rows, whose chunks' partials are multiplied."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((rows, 3), "float64", name="x")
        y = 1 + (x * 0.01).tanh() * 1e-5  # near 1: a product of 400,000 stays finite
        outs = [y.prod(1), y.prod(0), (y.prod(1, keepdim=True) * y).sum()]
    feeds = {x: np.random.default_rng(0).standard_normal((rows, 3))}
    compiled = sg.Session(g).compiled(outs, feeds)
    assert [sorted({m.prim.name for m in k.members}) for k in _fused(compiled)] == \
        [["add", "mul", "prod", "sum", "tanh"]]
    expected = sg.Session(g, backend="interpreter", passes=()).run(outs, feeds)
    for got, want in zip(sg.Session(g, debug=True).run(outs, feeds), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_two_groups_never_feed_each_other() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 4), "float64", name="x")
        w = sg.constant(np.eye(4) * 0.5)
        a1 = x.tanh()
        b1 = (a1 @ w).exp()      # B reads A
        a2 = a1 * (b1 @ w)       # A would read B
        out = (a2 + b1).sum()
    feeds = {x: np.random.default_rng(0).standard_normal((4, 4))}
    expected = sg.Session(g, backend="interpreter", passes=()).run(out, feeds)
    np.testing.assert_allclose(sg.Session(g, debug=True).run(out, feeds), expected, rtol=1e-14)


# -- every op spec, each pass alone and all together -------------------------------------------

@pytest.mark.parametrize("pipeline", list(PIPELINES), ids=list(PIPELINES))
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_passes_keep_values_and_gradients(spec: OpSpec, pipeline: str) -> None:
    arrays = _sample(spec)
    g = sg.Graph()
    with g.as_default():
        xs = [sg.placeholder(a.shape, a.dtype, name=f"x{k}") for k, a in enumerate(arrays)]
        out = spec.fn(EAGER_F, *xs)
        shape = spec.fn(EAGER_F, *[eager.tensor(a) for a in arrays]).shape  # (a mask's: data)
        weights = sg.constant(np.random.default_rng(1).standard_normal(shape))
        grads = sg.gradients((out * weights).sum(), [xs[k] for k in _diff_indices(spec)],
                             unconnected="zero")
    feeds = dict(zip(xs, arrays))
    expected = sg.Session(g, backend="interpreter", passes=()).run([out] + grads, feeds)
    got = sg.Session(g, passes=PIPELINES[pipeline], debug=True).run([out] + grads, feeds)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# -- random graphs -----------------------------------------------------------------------------

UNARY = [lambda a: a.exp() * 0.1, lambda a: a.tanh(), lambda a: a.relu(), lambda a: -a,
         lambda a: a.sigmoid(), lambda a: (a * a + 1).sqrt(), lambda a: a.abs()]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
          lambda a, b: a.maximum(b), lambda a, b: a / (b * b + 1)]
SHAPED = [lambda a: a.sum(1, keepdim=True), lambda a: a.mean(0, keepdim=True),
          lambda a: a.amax(1, keepdim=True), lambda a: a.softmax(-1), lambda a: a.T.T,
          lambda a: a @ sg.constant(np.eye(a.shape[1]) * 0.5), lambda a: a.log_softmax(1)]


@st.composite
def programs(draw):
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    steps = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 99),
                                    st.integers(0, 99)), min_size=1, max_size=25))
    fetch = draw(st.lists(st.integers(0, 99), min_size=1, max_size=3))
    return rows, cols, steps, fetch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_graphs_compile_to_the_interpreters_values(program) -> None:
    _check_random_graph(program, "numpy")


@requires_opencl
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_graphs_on_opencl_give_the_interpreters_values(program) -> None:
    """Fewer examples, the same each run: each new kernel is a build by the OpenCL compiler
    (about 60 ms with PoCL; its cache on disk spares the next run)."""
    _check_random_graph(program, "opencl")


def _check_random_graph(program, backend: str) -> None:
    rows, cols, steps, fetch = program
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((rows, cols), "float64", name="x")
        y = sg.placeholder((1, cols), "float64", name="y")
        values = [x, y]
        for kind, op, i, j in steps:
            a, b = values[i % len(values)], values[j % len(values)]
            if kind == 0:
                values.append(UNARY[op % len(UNARY)](a))
            elif kind == 1 and a.shape[-1] == b.shape[-1] and (a.shape[0] == b.shape[0] or
                                                                1 in (a.shape[0], b.shape[0])):
                values.append(BINARY[op % len(BINARY)](a, b))
            elif kind == 2 and a.ndim == 2:
                values.append(SHAPED[op % len(SHAPED)](a))
        outs = [values[k % len(values)] for k in fetch]
        outs.append(sum((v.sum() for v in values[2:]), sg.constant(0.0, "float64")))
        grads = sg.gradients(outs[-1], [x, y], unconnected="zero")
    rng = np.random.default_rng(len(steps))
    feeds = {x: rng.standard_normal((rows, cols)), y: rng.standard_normal((1, cols))}
    expected = sg.Session(g, backend="interpreter", passes=()).run(outs + grads, feeds)
    session = sg.Session(g, debug=True, backend=backend)
    got = session.run(outs + grads, feeds)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    kept = [np.copy(a) for a in got]
    session.run(outs + grads, {x: -feeds[x], y: -feeds[y]})  # reuses every planned buffer
    for a, b in zip(got, kept):
        np.testing.assert_array_equal(a, b)  # the first results are not overwritten


# -- the memory plan ---------------------------------------------------------------------------

def test_the_plan_check_finds_two_live_values_in_one_buffer() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 4), "float64", name="x")
        a = x @ x
        out = (a @ a) @ a  # a is alive until the last matmul
    compiled = sg.Session(g).compiled(out, {x: np.eye(4)})
    check_plan(compiled.graph, compiled.memory)
    plan = compiled.memory
    first, second = [n for n in compiled.graph.nodes if n in plan.buffer_of][:2]
    plan.buffer_of[second] = plan.buffer_of[first]
    with pytest.raises(sg.GraphError, match="share a buffer"):
        check_plan(compiled.graph, plan)


def test_training_step_memory_plan_and_no_overwritten_inputs() -> None:
    rng = np.random.default_rng(0)
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 8), name="x")
        labels = sg.placeholder((None,), "int64", name="labels")
        w1 = sg.Variable(rng.standard_normal((8, 16)).astype(np.float32))
        w2 = sg.Variable(rng.standard_normal((16, 3)).astype(np.float32))
        loss = sg.cross_entropy((x @ w1).relu() @ w2, labels)
        step = sg.optim.SGD(0.1, momentum=0.9).minimize(loss)
    session = sg.Session(g)
    data, target = rng.standard_normal((32, 8)).astype(np.float32), rng.integers(0, 3, 32)
    kept_data, before = data.copy(), session.run(w1)
    first = session.run([loss, step], {x: data, labels: target})[0]
    held = first.copy()
    compiled = session.compiled([loss, step], {x: data, labels: target})
    check_plan(compiled.graph, compiled.memory)
    assert compiled.memory.reused + len(compiled.memory.in_place) > 0
    np.testing.assert_array_equal(data, kept_data)  # feeds are never written
    assert not np.array_equal(session.run(w1), before)
    second = session.run([loss, step], {x: data, labels: target})[0]
    assert second < first
    np.testing.assert_array_equal(first, held)  # run 2 did not write over run 1's loss


def test_planning_can_be_switched_off() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((64, 64), "float64", name="x")
        out = ((x @ x).tanh() @ x).exp().sum()
    feeds = {x: np.eye(64)}
    planned = sg.Session(g, passes=DEFAULT_PASSES).compiled(out, feeds)
    plain = sg.Session(g, passes=("fuse",)).compiled(out, feeds)
    assert plain.memory.reused == 0 and not plain.memory.in_place
    assert sum(planned.memory.buffer_bytes) <= sum(plain.memory.buffer_bytes)


# -- seeing it ---------------------------------------------------------------------------------

def test_explain_names_passes_kernels_and_memory() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 6), name="x")
        out = sg.layer_norm(x, 6).relu().sum()
    text = sg.Session(g).explain(out, {x: np.ones((5, 6), np.float32)})
    for passname in ("specialized", "simplify", "fold_constants", "cse", "dce", "fuse"):
        assert passname in text
    assert "kernels per run: 1 (1 fused)" in text
    assert "fused [reduce, 5 rows]: mean -> sub -> mul -> mean -> add -> sqrt -> div -> relu " \
        "-> sum  -> sum" in text
    assert "planned peak" in text and "buffers" in text


def test_to_dot_draws_fused_kernels_as_clusters() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 6), name="x")
        out = sg.softmax(x * 2)
    compiled = sg.Session(g).compiled(out, {x: np.ones((4, 6), np.float32)})
    dot = compiled.graph.to_dot()
    assert 'subgraph "cluster_fused"' in dot and "exp" in dot
    assert "cluster" not in compiled.specialized.to_dot()


def test_debug_mode_catches_a_broken_graph() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((2, 3), name="x")
        out = x.exp()
    graph = specialize([out], {x: (2, 3)})
    graph.nodes[-1].shape = (3, 2)  # a pass that got a shape wrong
    with pytest.raises(sg.GraphError, match="says \\(3, 2\\)"):
        check_invariants(graph, "a broken pass")
    with pytest.raises(ValueError, match="unknown passes"):
        sg.Session(g, passes=("simplify", "vectorize"))


def test_generated_code_names_the_users_lines() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3, 3), name="x")
        out = x @ x
    compiled = sg.Session(g).compiled(out, {x: np.eye(3, dtype=np.float32)})
    source = compiled.executable.source
    assert "matmul" in source and "test_passes.py:" in source


def test_fetched_arrays_are_never_reused_while_the_caller_holds_them() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((512, 512), "float64", name="x")
        out = (x * 2).exp()
    session = sg.Session(g)
    first = session.run(out, {x: np.zeros((512, 512))})
    view = session.run(out, {x: np.ones((512, 512))})[:2]
    third = session.run(out, {x: np.full((512, 512), 2.0)})
    np.testing.assert_array_equal(first, np.ones((512, 512)))
    np.testing.assert_array_equal(view, np.full((2, 512), np.exp(2.0)))
    np.testing.assert_array_equal(third, np.full((512, 512), np.exp(4.0)))
    dropped_id = id(session.run(out, {x: np.zeros((512, 512))}))
    assert id(session.run(out, {x: np.zeros((512, 512))})) == dropped_id  # dropped: reused


def test_in_place_is_refused_where_rows_are_read_again() -> None:
    """A fused kernel may not write over an input that it also reads as other rows (through
    a transposing view, or whole), nor may a two-step `where` write over its own operand."""
    rng = np.random.default_rng(0)
    g = sg.Graph()
    with g.as_default():
        p = sg.placeholder((512, 512), name="p")
        q = sg.placeholder((64, 64), name="q")
        y = sg.placeholder((64, 1, 1), name="y")
        a = sg.exp(p * 0.1)
        b = sg.exp(q)
        outs = [(a + sg.transpose(a)) * 2, (b + y).sum(2) * 2,
                sg.where(q > 0, q * 2, q @ sg.constant(np.eye(64, dtype=np.float32) * 3))]
    feeds = {p: rng.standard_normal((512, 512)).astype(np.float32),
             q: rng.standard_normal((64, 64)).astype(np.float32),
             y: rng.standard_normal((64, 1, 1)).astype(np.float32)}
    expected = sg.Session(g, backend="interpreter", passes=()).run(outs, feeds)
    for got, want in zip(sg.Session(g).run(outs, feeds), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_reductions_over_rows_split_among_many_threads(monkeypatch) -> None:
    import staticgraph.runtime.fused as fused
    monkeypatch.setattr(fused.os, "cpu_count", lambda: 16)  # more workers than chunks
    rows = 8 * (fused.CHUNK_ELEMENTS // 1024) + 1
    assert all(lo < hi for lo, hi in fused.row_ranges(rows, fused.CHUNK_ELEMENTS // 1024, 16))
    g = sg.Graph()
    with g.as_default():
        p = sg.placeholder((rows, 1024), "float64", name="p")
        out = sg.sum(sg.exp(p * 0.01), 0)
    x = np.random.default_rng(0).standard_normal((rows, 1024))
    np.testing.assert_allclose(sg.Session(g).run(out, {p: x}), np.exp(x * 0.01).sum(0),
                               rtol=1e-12)


def test_a_training_step_after_assigning_a_variable() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((4, 3), name="x")
        w = sg.Variable(np.ones((3, 2), np.float32))
        step = sg.optim.SGD(0.1).minimize(((x @ w) ** 2).mean())
    session, feed = sg.Session(g), {x: np.ones((4, 3), np.float32)}
    session.run(step, feed)
    session.assign(w, np.zeros((3, 2)))  # the session drops the array the step produced
    session.run(step, feed)
    session.run(step, feed)
    np.testing.assert_array_equal(session.run(w), np.zeros((3, 2)))  # zero stays a fixpoint


def test_a_value_whose_size_the_data_decides_is_not_fused() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((3, 3, 4), "float64", name="x")
        m = sg.placeholder((3, 4), "bool", name="m")
        y = x[:, m]  # (3, how many m selects)
        fetches = [y * 2, *sg.gradients((y * y).sum(), [x])]
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((3, 3, 4)), m: rng.random((3, 4)) > 0.5}
    want = sg.Session(g, backend="interpreter", passes=()).run(fetches, feeds)
    for got, expected in zip(sg.Session(g, debug=True).run(fetches, feeds), want):
        np.testing.assert_array_equal(got, expected)
