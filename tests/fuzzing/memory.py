"""Oracles (d), (e) and (f) on the graph side: held results and feeds never change, results
share no memory they should not, and writing into results never changes later ones."""

from __future__ import annotations

import itertools

import numpy as np

import staticgraph as sg

from .failures import Failure, Raised, error_signature
from .graph import GraphBuild, graph_feeds
from .programs import Program, Run


def check_run(prog: Program, build: GraphBuild, pipeline: tuple, r: int, feeds: dict,
              feed_copies: dict, out: dict, old_vars: dict, new_vars: dict) -> list[Failure]:
    """(d) run ``r`` wrote into no feed (``feed_copies``: copies made before it); (e) its
    results ``out`` share no memory with each other, a feed or a Variable's value before or
    after the run (``old_vars``, ``new_vars``), unless the program fetched a view of it."""
    failures = []
    roots = {("out", n): prog.info[n].root for n in prog.outputs}
    assign_of = {op.args[0]: op.out for op in prog.ops if op.tag == "assign"}
    for node, before in feed_copies.items():  # (d) feeds are never written
        if not same(before, feeds[node]):
            failures.append(Failure("d", "feed written", f"feed {node.name}",
                                    "a run wrote into its feed", pipeline, r, "feed"))
    # (e) no two results share memory, unless one views the other in the program
    arrays = [(k, v) for k, v in out.items() if isinstance(v, np.ndarray) and v.size]
    for (k1, a1), (k2, a2) in itertools.combinations(arrays, 2):
        if k1[0] == "out" and k2[0] == "out" and roots[k1] == roots[k2]:
            continue
        if k1[0] != "out" and k2[0] != "out":
            continue  # torch's gradients may share memory too (x + y: both get the cotangent)
        if np.shares_memory(a1, a2):
            failures.append(Failure("e", "results share memory", f"{k1[0]} {k1[1]}",
                                    f"{k1} and {k2} share memory", pipeline, r,
                                    f"{k1[0]}-{k2[0]}"))
    for k, a in arrays:
        if k[0] != "out":
            continue
        for i in prog.inputs:
            if i.variable:
                node = build.nodes[i.name]
                mine = roots[k] in (i.name, assign_of.get(i.name))
                for state in (old_vars.get(node), new_vars.get(node)):
                    if state is None or not np.shares_memory(a, state):
                        continue
                    if not mine:
                        failures.append(Failure(
                            "e", "shares a Variable's memory", f"{k[0]} {k[1]}",
                            f"{k} shares memory with Variable {i.name}", pipeline, r,
                            "variable"))
                    elif a.flags.writeable:
                        failures.append(Failure(
                            "e", "writable view of a Variable", f"{k[0]} {k[1]}",
                            f"{k} is a writable view of Variable {i.name}'s value",
                            pipeline, r, "variable-writable"))
            elif roots[k] != i.name and np.shares_memory(a, feeds[build.nodes[i.name]]):
                failures.append(Failure(
                    "e", "shares a feed's memory", f"{k[0]} {k[1]}",
                    f"{k} shares memory with feed {i.name} but is not a view of it",
                    pipeline, r, "feed"))
    return failures


def check_held(held: list, pipeline: tuple) -> list[Failure]:
    """(d) results handed out, as (run, results, their copies made then), unchanged by later
    runs."""
    failures = []
    for r, out, copies in held:
        for k, v in out.items():
            if not same(copies[k], v):
                failures.append(Failure("d", "held result changed", f"{k[0]} {k[1]}",
                                        f"the result of run {r} changed after later runs",
                                        pipeline, r, "held"))
    return failures


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _scrub(array: np.ndarray) -> None:
    if array.dtype.kind == "f":
        array[...] = 7.25
    elif array.dtype.kind == "b":
        array[...] = ~array
    else:
        array[...] = 7


def write_check(prog: Program, build: GraphBuild, runs: list[Run], pipeline: tuple) -> list:
    """(f): run twice with the same feeds, writing into the first results in between; a second
    Session runs the same without writing."""
    if build.error is not None:
        return []
    failures = []
    backend, passes = pipeline
    seq = [runs[0], runs[0]] if not prog.has_variables else runs[:2]
    plain = sg.Session(build.graph, backend=backend, passes=passes)
    written = sg.Session(build.graph, backend=backend, passes=passes)
    try:
        expect = [plain.run(build.fetches, graph_feeds(prog, build, run)) for run in seq]
        first = written.run(build.fetches, graph_feeds(prog, build, seq[0]))
    except Exception:  # noqa: BLE001 - raising runs are (a)'s business
        return []
    scrubbed = []
    for label, v in zip(build.labels, first):
        if isinstance(v, np.ndarray) and v.size and v.flags.writeable:
            try:
                _scrub(v)
                scrubbed.append(label)
            except ValueError:
                pass
    try:
        second = written.run(build.fetches, graph_feeds(prog, build, seq[1]))
    except Exception as error:  # noqa: BLE001
        failures.append(Failure("f", "raises after a write", "run", repr(Raised(error, "run")),
                                pipeline, 1, error_signature(Raised(error, "run"))))
        return failures
    for label, a, b in zip(build.labels, expect[1], second):
        if not same(a, b):
            failures.append(Failure("f", "later result changed", f"{label[0]} {label[1]}",
                                    f"after writing into {scrubbed} of run 0, run 1's {label} "
                                    f"is {np.asarray(b).ravel()[:4]} not "
                                    f"{np.asarray(a).ravel()[:4]}", pipeline, 1, ""))
    return failures
