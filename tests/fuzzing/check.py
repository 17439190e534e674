"""One program through every oracle, or through the part of them that found a failure (when
shrinking it)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import numpy as np

from .failures import Failure, norm
from .graph import build_graph
from .memory import write_check
from .modes import FIXED_PIPELINES, REFERENCE, WRITE_PIPELINES, run_graph_pipeline, run_tensor_mode
from .programs import Program, Run
from .surface import torch
from .values import compare


@dataclass
class Restrict:
    """Which part of the check to run (all of it by default; one oracle when shrinking)."""
    pipelines: list | None = None
    eager: bool = True
    torch: bool = True
    write: list | None = None


def check(prog: Program, runs: list[Run], restrict: Restrict | None = None,
          extra_pipelines: tuple = ()) -> list[Failure]:
    """The failures of ``runs`` of ``prog``; an error of the fuzzer itself is one too."""
    restrict = restrict or Restrict()
    failures: list[Failure] = []
    with np.errstate(all="ignore"):
        try:
            failures += _check(prog, runs, restrict, extra_pipelines)
        except Exception as error:  # noqa: BLE001
            failures.append(Failure("harness", "harness", "harness",
                                    traceback.format_exc(limit=-3), None, 0,
                                    f"{type(error).__name__}: {norm(str(error))}"))
    return failures


def _check(prog, runs, restrict, extra_pipelines):
    failures = []
    eager_results = None
    if restrict.eager:
        eager_results = run_tensor_mode(prog, runs, "eager")
        for r, e in enumerate(eager_results):
            if isinstance(e, dict) and ("warning",) in e:
                failures.append(Failure("w", "warning", "eager", e[("warning",)], None, r,
                                        norm(e[("warning",)])))
    if restrict.torch and torch is not None and eager_results is not None:
        torch_results = run_tensor_mode(prog, runs, "torch")
        failures += compare(torch_results, eager_results, "c", None, "torch", "eager", prog)
    build = build_graph(prog)
    pipelines = restrict.pipelines
    if pipelines is None:
        pipelines = FIXED_PIPELINES + list(extra_pipelines)
    reference = None
    if pipelines or restrict.eager:
        reference = run_graph_pipeline(prog, build, runs, REFERENCE, failures)
    if eager_results is not None:
        failures += compare(eager_results, reference, "b", REFERENCE, "eager", "graph", prog)
    for pipeline in pipelines:
        got = run_graph_pipeline(prog, build, runs, pipeline, failures)
        failures += compare(reference, got, "a", pipeline, "interpreter", "numpy", prog)
    for pipeline in (WRITE_PIPELINES if restrict.write is None else restrict.write):
        failures += write_check(prog, build, runs, pipeline)
    return failures


def restriction_for(f: Failure) -> Restrict:
    """The part of the check that can find ``f`` again."""
    if f.oracle == "c":
        return Restrict(pipelines=[], eager=True, torch=True, write=[])
    if f.oracle == "b":
        return Restrict(pipelines=[], eager=True, torch=False, write=[])
    if f.oracle == "f":
        return Restrict(pipelines=[], eager=False, torch=False, write=[f.pipeline])
    if f.oracle == "w" and f.pipeline is None:
        return Restrict(pipelines=[], eager=True, torch=False, write=[])
    if f.pipeline is None or f.pipeline == REFERENCE:
        return Restrict(pipelines=[], eager=False, torch=False, write=[])
    return Restrict(pipelines=[f.pipeline], eager=False, torch=False, write=[])
