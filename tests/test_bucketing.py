"""The bucketing pass (passes/bucketing.py): gradients all-reduced in a few buffers, each
started right after its last gradient and waited for right before its first reader. On one
process (a world of one rank, where an all-reduce is the identity) against the same step
without the pass and against plain single-process training; and on a job of 2 ranks."""

from __future__ import annotations

import importlib.util
import itertools
import json

import numpy as np
import pytest
from conftest import requires_opencl

import staticgraph as sg
import staticgraph.distributed as dist
from staticgraph.ops import P
from staticgraph.ops.collective import allreduce_start_into
from staticgraph.passes import DEFAULT_PASSES, optimize, specialize
from staticgraph.passes.collectives import order_collectives

needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                               reason="pip install -e '.[distributed]' for MPI tests")
UNBUCKETED = tuple(p for p in DEFAULT_PASSES if p != "bucket")
SIZES = (6, 5, 4, 3)  # float64 gradients: w 240 B, b 40, w_1 160, b_1 32, w_2 96, b_2 24
rng = np.random.default_rng(0)
DATA, LABELS = rng.standard_normal((8, SIZES[0])), rng.integers(0, SIZES[-1], 8)
WEIGHTS = [rng.standard_normal(s) for a, b in itertools.pairwise(SIZES) for s in [(a, b), (b,)]]


def mlp(bucket_bytes=dist.BUCKET_BYTES, distributed: bool = True, reverse: bool = False):
    """An MLP's SGD-with-momentum step: (graph, x, y, step, Variables); ``reverse``: its
    gradients all-reduced (built) from the last layer's to the first's."""
    with sg.Graph().as_default() as g:
        x = sg.placeholder((None, SIZES[0]), "float64", name="x")
        y = sg.placeholder((None,), "int64", name="y")
        params = [sg.Variable(w, name=n) for w, n in zip(WEIGHTS, ["w", "b"] * 3)]
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            h = h.relu() if k + 2 < len(params) else h
        optimizer = sg.optim.SGD(0.1, momentum=0.9)
        if distributed:
            optimizer = dist.DistributedOptimizer(optimizer, bucket_bytes=bucket_bytes)
        step = optimizer.minimize(sg.cross_entropy(h, y), var_list=params[::-1 if reverse else 1])
    return g, x, y, step, params


def compiled(bucket_bytes=160, passes=DEFAULT_PASSES, reverse=False):
    g, x, y, step, _ = mlp(bucket_bytes, reverse=reverse)
    return sg.Session(g, passes=passes).compiled(step, {x: DATA, y: LABELS})


def scheduled(bucket_bytes=160, passes=DEFAULT_PASSES, reverse=False):
    """The program the passes make (before the compiler's own MPI-ordering step)."""
    g, x, y, step, _ = mlp(bucket_bytes, reverse=reverse)
    return optimize(specialize([step], {x: DATA.shape, y: LABELS.shape}), passes)[0]


def trained(backend: str, passes=DEFAULT_PASSES, **mlp_options) -> list[np.ndarray]:
    g, x, y, step, params = mlp(**mlp_options)
    session = sg.Session(g, passes=passes, backend=backend)
    for k in range(3):
        session.run(step, {x: np.roll(DATA, k, 0), y: np.roll(LABELS, k)})
    return [np.asarray(session.run(p)) for p in params]


@needs_mpi
@pytest.mark.parametrize("backend", ["numpy", "interpreter",
                                     pytest.param("opencl", marks=requires_opencl)])
def test_buckets_train_as_one_allreduce_per_gradient_and_as_one_process(backend) -> None:
    bucketed = trained(backend, bucket_bytes=160)
    unbucketed = trained(backend, UNBUCKETED, bucket_bytes=160)
    alone = trained(backend, distributed=False)
    for a, b, c, start in zip(bucketed, unbucketed, alone, WEIGHTS):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)
        assert not np.allclose(a, start)  # (it trained)


# Gradients packed from the last built (b_2) back, greedily, at most bucket_bytes each.
@pytest.mark.parametrize("bucket_bytes, shapes", [
    (dist.BUCKET_BYTES, [[(3,), (4, 3), (4,), (5, 4), (5,), (6, 5)]]),
    (160, [[(3,), (4, 3), (4,)], [(5, 4)], [(5,)], [(6, 5)]]),
    (300, [[(3,), (4, 3), (4,)], [(5, 4), (5,)], [(6, 5)]]),
    (0, [[(3,)], [(4, 3)], [(4,)], [(5, 4)], [(5,)], [(6, 5)]]),
])
def test_buckets_hold_consecutive_gradients_up_to_bucket_bytes(bucket_bytes, shapes) -> None:
    graph = compiled(bucket_bytes).graph
    starts = [n for n in graph.nodes if n.prim is P.allreduce_start]
    assert [[g.shape for g in s.inputs] for s in starts] == shapes
    assert not any(n.prim is P.allreduce for n in graph.nodes)
    collectives = [n for n in graph.nodes if n.prim is not None and n.prim.collective]
    assert collectives == starts  # (waits are local: MPI matches only the starts)


def test_without_bucket_bytes_or_the_pass_each_gradient_has_its_allreduce() -> None:
    for graph in (compiled(None).graph, compiled(160, UNBUCKETED).graph):
        ops = [n.op for n in graph.nodes if n.prim is not None and n.prim.collective]
        assert ops == ["allreduce"] * 6


def test_starts_follow_their_last_gradient_and_waits_come_before_their_first_reader() -> None:
    graph = scheduled(160)
    nodes = graph.nodes
    at = {n: i for i, n in enumerate(nodes)}
    starts = [n for n in nodes if n.prim is P.allreduce_start]
    for start in starts:
        assert any(nodes[at[start] - 1] is g for g in start.inputs)
        (wait,) = _readers(nodes, start)
        assert wait.prim is P.allreduce_wait
        # after the wait: a slice of it reshaped to its gradient's shape (views), then a reader
        views, k = {wait}, at[wait] + 1
        while nodes[k].prim in (P.getitem, P.reshape) and nodes[k].inputs[0] in views:
            views.add(nodes[k])
            k += 1
        assert len(views) == 3 and any(x in views for x in nodes[k].inputs)
        assert not any(x in views for n in nodes[:at[wait]] for x in n.inputs)
    # every bucket but the last started is in flight while backward matmuls run
    for start in starts[:-1]:
        (wait,) = _readers(nodes, start)
        assert any(n.prim is P.matmul for n in nodes[at[start]:at[wait]])
    # waited for in the order they started; in their MPI order (the compiler's ordering step
    # has nothing to do)
    waits = [at[_readers(nodes, s)[0]] for s in starts]
    assert waits == sorted(waits)
    assert [s.params["order"] for s in starts] == sorted(s.params["order"] for s in starts)
    assert order_collectives(graph) is graph


def test_a_start_that_its_gradients_find_later_in_mpi_order_waits_for_the_one_before() -> None:
    """Gradients all-reduced first layer last: the first bucket (the first layer's weights)
    is complete last, and the others start after it, as every rank calls them."""
    graph = scheduled(160, reverse=True)
    nodes = graph.nodes
    at = {n: i for i, n in enumerate(nodes)}
    starts = [n for n in nodes if n.prim is P.allreduce_start]
    assert [[g.shape for g in s.inputs] for s in starts][0] == [(6, 5)]
    assert [s.params["order"] for s in starts] == sorted(s.params["order"] for s in starts)
    assert order_collectives(graph) is graph
    for start in starts:
        before = nodes[at[start] - 1]
        assert any(before is g for g in start.inputs) or before.prim is P.allreduce_start


def _readers(nodes, node) -> list:
    return [n for n in nodes if any(x is node for x in n.inputs)]


def test_the_sequence_of_allreduces_does_not_depend_on_the_schedule() -> None:
    """MPI matches collectives by call order; passes may schedule ranks' programs
    differently, so buckets and their order come from build orders and shapes alone."""
    def sequence(passes) -> list:
        graph = compiled(160, passes).graph
        return [(n.params["order"], [g.shape for g in n.inputs]) for n in graph.nodes
                if n.prim is not None and n.prim.collective]

    assert sequence(DEFAULT_PASSES) == sequence(("bucket",)) == sequence(("cse", "bucket"))


@needs_mpi
def test_a_gradient_of_reduced_values_waits_for_them_in_a_later_bucket() -> None:
    """An all-reduce of something computed from another all-reduce cannot share its
    bucket (it would need its own result before it starts)."""
    with sg.Graph().as_default() as g:
        x = sg.placeholder((3,), "float64")

        def reduced(v):
            return v._apply(P.allreduce, v, op="sum", bucket_bytes=1 << 20)

        a = reduced(x * 2)
        c = reduced(x + 1)
        b = reduced(a * 3)
    feeds = {x: np.arange(3.0)}
    session = sg.Session(g)
    starts = [n for n in session.compiled([a, b, c], feeds).graph.nodes
              if n.prim is P.allreduce_start]
    assert [len(s.inputs) for s in starts] == [2, 1]
    expected = sg.Session(g, passes=()).run([a, b, c], feeds)
    for got, want in zip(session.run([a, b, c], feeds), expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(expected[1], np.arange(3.0) * 6)


def test_explain_shows_each_bucket_and_where_it_starts_and_waits() -> None:
    result = compiled(160)
    text = result.explain()
    assert "all-reduces: 4 buckets started without blocking, 0 blocking" in text
    nodes = result.graph.nodes
    first = next(i for i, n in enumerate(nodes) if n.prim is P.allreduce_start)
    assert f"starts after {nodes[first - 1].name!r} (step {first - 1})" in text
    assert "bucket 4 (collective 4), 240 B: " in text and "steps run while it is in flight" in text


def test_bad_bucket_sizes_and_misused_primitives_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="bucket_bytes must be"):
        dist.DistributedOptimizer(sg.optim.SGD(0.1), bucket_bytes=-1)
    with pytest.raises(RuntimeError, match="no all-reduce is in flight"):
        P.allreduce_wait.kernel(np.zeros(3), op="sum")
    with sg.Graph().as_default():
        a, b = sg.placeholder((2,), "float32"), sg.placeholder((2,), "float64")
        with pytest.raises(sg.DTypeError, match="one dtype"):
            a._apply(P.allreduce_start, a, b)


@needs_mpi
def test_a_bucket_a_failed_run_left_in_flight_is_finished_by_the_next_start() -> None:
    buffer = np.empty(3)
    allreduce_start_into(np.ones(3), out=buffer)  # (a run that failed before its wait)
    allreduce_start_into(np.arange(3.0), out=buffer)
    np.testing.assert_array_equal(P.allreduce_wait.kernel(buffer, op="mean"), np.arange(3.0))
    with pytest.raises(RuntimeError, match="no all-reduce is in flight"):
        P.allreduce_wait.kernel(buffer, op="mean")


@needs_mpi
def test_on_two_ranks_buckets_train_as_one_allreduce_per_gradient(tmp_path) -> None:
    from test_distributed import launch
    out = tmp_path / "found.json"
    done = launch(2, "bucketing_job.py", str(out))
    assert done.returncode == 0, done.stderr
    found = json.loads(out.read_text())
    whole = found["whole_batches"]["weights"]
    for way in ("one_by_one", "one_bucket", "two_buckets"):
        for got, want in zip(found[way]["weights"], whole):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # MPI_Iallreduce calls each step: one per parameter without the pass, <= 3 with it
    assert found["one_by_one"]["calls"] == [found["parameters"]] * 3
    assert found["one_bucket"]["calls"] == [1] * 3
    assert found["two_buckets"]["calls"] == [2] * 3
    assert found["two_buckets"]["collectives"] == ["allreduce_start"] * 2
