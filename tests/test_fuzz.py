"""A quick fixed-seed slice of the differential fuzzer (tests/fuzzing): a few small random
programs per seed through every pipeline, eager, torch and the memory checks. A failure's
message is its minimal reproducer. Longer runs: ``python -m tests.fuzz --minutes 10``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fuzzing.driver import Stats, fuzz_one
from fuzzing.failures import Failure
from fuzzing.generator import generate
from fuzzing.modes import REFERENCE
from fuzzing.reproducer import reproducer

SEEDS = [11, 23, 37, 41, 59]
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


def test_the_generator_covers_the_operator_surface() -> None:
    tags: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(60):
            prog, runs = generate(seed, max_ops=20)
            tags |= {op.tag for op in prog.ops}
            assert {r.batch for r in runs} >= {0, 1}
            compile(prog.source(), "<program>", "exec")
    wanted = {"exp", "log", "tanh", "sigmoid", "relu", "abs", "sqrt", "erf", "softplus", "clamp",
              "sum", "mean", "amax", "amin", "prod", "reshape", "transpose", "permute",
              "unsqueeze", "slice", "gather", "matmul", "where", "cast", "cat", "softmax",
              "log_softmax", "layer_norm", "gelu", "cross_entropy", "mse_loss", "sin", "cos",
              "floor", "remainder", "floor_divide", "cumsum", "var", "norm", "conv2d",
              "max_pool2d", "avg_pool2d"}
    assert wanted <= tags, sorted(wanted - tags)


def test_a_failure_shrinks_to_a_reproducer_that_runs() -> None:
    """The machinery on a planted difference: eager's program differs from the graph's only in
    one op, which the shrinker must keep and the reproducer must show."""
    prog, runs = generate(3, max_ops=12)
    failure = Failure("b", "value", "out " + prog.outputs[0], "planted", REFERENCE, 0, "finite")
    source = reproducer(prog, runs[:1], failure, REFERENCE)
    compile(source, "<reproducer>", "exec")
    assert "def program(F" in source and "sg.Session(g, backend='interpreter'" in source
    feeds = runs[0].feeds
    assert all(isinstance(a, np.ndarray) for a in feeds.values())
