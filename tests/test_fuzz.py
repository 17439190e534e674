"""A quick fixed-seed slice of the differential fuzzer (tests/fuzzing): a few small random
programs per seed through every pipeline, eager, torch and the memory checks. A failure's
message is its minimal reproducer. Longer runs: ``python -m tests.fuzz --minutes 10``."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import eager
import staticgraph as sg
from fuzzing.driver import Stats, fuzz_one
from fuzzing.failures import Failure
from fuzzing.generator import generate
from fuzzing.modes import REFERENCE
from fuzzing.programs import BATCH
from fuzzing.reproducer import reproducer
from fuzzing.surface import EAGER_F, GRAPH_F, PROBE_F, python_control

SEEDS = [11, 23, 33, 41, 43]  # their programs hold 2 to 4 conds, loops and scans each
PROGRAMS_PER_SEED = 2


@pytest.mark.parametrize("seed", SEEDS)
def test_random_programs_agree_everywhere(seed: int) -> None:
    stats = Stats()
    reports: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(PROGRAMS_PER_SEED):
            fuzz_one(seed * 1000 + k, stats, max_ops=14, report=reports.append,
                     shrink_budget=3.0, pipelines_extra=1)
    assert stats.programs == PROGRAMS_PER_SEED
    assert not stats.classes, "\n".join(reports)


CONTROL = ("cond", "while_loop", "scan")


def test_the_generator_covers_the_operator_surface() -> None:
    tags: set[str] = set()
    nested = batch_scans = control_grad2 = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(60):
            prog, runs = generate(seed, max_ops=20)
            tags |= {op.tag for op in prog.ops}
            assert {r.batch for r in runs} >= {0, 1}
            compile(prog.source(), "<program>", "exec")
            control = [op for op in prog.ops if op.tag in CONTROL]
            nested += sum(sum(op.expr.count(f"F.{c}(") for c in CONTROL) > 1 for op in control)
            batch_scans += sum(op.tag == "scan" and prog.info[op.args[0]].shape[0] == BATCH
                               for op in control)
            control_grad2 += bool(control and prog.grad2)
    assert nested and batch_scans and control_grad2, (nested, batch_scans, control_grad2)
    wanted = {"exp", "log", "tanh", "sigmoid", "relu", "abs", "sqrt", "erf", "softplus", "clamp",
              "sum", "mean", "amax", "amin", "prod", "reshape", "transpose", "permute",
              "unsqueeze", "slice", "gather", "matmul", "where", "cast", "cat", "softmax",
              "log_softmax", "layer_norm", "gelu", "cross_entropy", "mse_loss", "sin", "cos",
              "floor", "remainder", "floor_divide", "cumsum", "var", "norm", "conv2d",
              "max_pool2d", "avg_pool2d", *CONTROL}
    assert wanted <= tags, sorted(wanted - tags)


def test_a_failure_shrinks_to_a_reproducer_that_runs() -> None:
    """The machinery on a planted difference: eager's program differs from the graph's only in
    one op, which the shrinker must keep and the reproducer must show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog, runs = generate(3, max_ops=12)
    failure = Failure("b", "value", "out " + prog.outputs[0], "planted", REFERENCE, 0, "finite")
    source = reproducer(prog, runs[:1], failure, REFERENCE)
    compile(source, "<reproducer>", "exec")
    assert "def program(F" in source and "sg.Session(g, backend='interpreter'" in source
    feeds = runs[0].feeds
    assert all(isinstance(a, np.ndarray) for a in feeds.values())



@pytest.mark.parametrize("oracle, pipeline", [("a", ("numpy", ("cse", "plan_memory"))),
                                              ("b", REFERENCE), ("c", None)])
def test_a_reproducer_of_control_flow_runs(oracle: str, pipeline, capsys) -> None:
    """A reproducer script holds each mode's control flow (sg's functions for the graph and
    eager, the plain-Python one for torch) and runs standalone."""
    if oracle == "c":
        pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog, runs = next(p for p in (generate(seed, max_ops=12) for seed in range(100))
                          if p[0].grad and {op.tag for op in p[0].ops} & set(CONTROL))
        failure = Failure(oracle, "value", "out " + prog.outputs[0], "planted", pipeline, 0,
                          "finite")
        exec(compile(reproducer(prog, runs[:2], failure, pipeline), "<reproducer>", "exec"),
             {})
    printed = capsys.readouterr().out
    assert printed and "Error" not in printed, printed


def _control_cases(F):
    """Each case of the three functions the generator writes, on F's tensors ``x`` (rows)
    and ``w``: a cond with tuple results, loops of 0 and more trips, scans forward and in
    reverse, with and without an initializer."""
    def run(x, w):
        pair = F.cond(x.sum() > 0.3, lambda: (x * w, w.exp()), lambda: (x - w, w))
        count, v = F.while_loop(lambda i, v: (i < 3) & ((v * v).sum() > 0.05),
                                lambda i, v: (i + 1, v * 0.5 + w.sum() * 0.01),
                                (F.tensor(0), x), maximum_iterations=4)
        never = F.while_loop(lambda v: v.sum() > -1e9, lambda v: v.tanh(), w,
                             maximum_iterations=0)
        scans = [F.scan(lambda a, e: a * 0.5 + e, x, initializer=w, reverse=r)
                 for r in (False, True)]
        pairs = F.scan(lambda a, e: (a[0] + e, a[1] * e.sum()), x, initializer=(w, w.sum()))
        firsts = [F.scan(lambda a, e: a * e + 1, x.T @ x + w, reverse=r) for r in (False, True)]
        return [*pair, count, v, never, *scans, *pairs, *firsts]
    return run


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_the_torch_side_control_flow_runs_as_staticgraphs_python_path(rows: int) -> None:
    """Oracle (c) for control flow is torch running ``surface.python_control``: it must mean
    what sg.cond, sg.while_loop and sg.scan mean on eager tensors, 0 elements included."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(rows)
    x, w = rng.standard_normal((rows, 2)), rng.standard_normal(2)
    got = _control_cases(SimpleNamespace(**vars(python_control(torch.stack)),
                                         tensor=torch.tensor))(torch.tensor(x), torch.tensor(w))
    want = _control_cases(EAGER_F)(eager.tensor(x), eager.tensor(w))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


REFUSED = [  # control flow a graph refuses, as fn(F, x) on a float64 vector x
    lambda F, x: F.cond(x.sum() > 0, lambda: x, lambda: x.sum()),
    lambda F, x: F.cond(x[:1] > 0, lambda: x, lambda: x),
    lambda F, x: F.while_loop(lambda v: v.sum() > 9, lambda v: v.float(), x),
    lambda F, x: F.scan(lambda a, e: a + e, x[None], initializer=x.sum()),
]


@pytest.mark.parametrize("case", range(len(REFUSED)))
def test_the_probe_refuses_what_a_graph_refuses(case: int) -> None:
    """The generator keeps a program only if its probe (surface.PROBE_F) ran it, so control
    flow a graph refuses (branches or a loop body changing a shape or dtype, a predicate that
    is not a bool scalar) must fail there too, even where Python alone would run it."""
    fn = REFUSED[case]
    x = np.ones(2)
    fn(EAGER_F, eager.tensor(x))  # Python runs it
    with pytest.raises((ValueError, TypeError)):
        fn(PROBE_F, eager.tensor(x) if PROBE_F.tensor is eager.tensor else PROBE_F.tensor(x))
    with sg.Graph().as_default(), pytest.raises((ValueError, TypeError)):
        fn(GRAPH_F, sg.placeholder((2,), "float64"))
