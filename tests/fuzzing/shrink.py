"""Shrinking a failure: the fewest runs, outputs, gradients, ops and inputs, the smallest batch,
the simplest feed values and the shortest pipeline that still fail the same way."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .check import check, restriction_for
from .failures import Failure, Raised
from .modes import run_tensor_mode
from .programs import BATCH, In, Info, Program, Run, const, prune
from .surface import torch


def _substitute(prog: Program, old: str, new: str) -> Program:
    """``prog`` with value ``old`` replaced by ``new``."""
    ops = []
    for op in prog.ops:
        if op.out == old:
            continue
        ops.append(replace(op, args=tuple(new if a == old else a for a in op.args)))
    outputs = []
    for o in prog.outputs:
        o = new if o == old else o
        if o not in outputs:
            outputs.append(o)
    return prune(replace(prog, ops=tuple(ops), outputs=tuple(outputs)))


def _remove(prog: Program, name: str) -> Program | None:
    """``prog`` without ``name`` and what is computed from it; None if no output is left."""
    gone = {name}
    for op in prog.ops:
        if any(a in gone for a in op.args):
            gone.add(op.out)
    ops = tuple(op for op in prog.ops if op.out not in gone)
    outputs = tuple(o for o in prog.outputs if o not in gone)
    if not outputs:
        return None
    return prune(replace(prog, ops=ops, outputs=outputs))


def _cut(prog: Program, runs: list[Run], name: str):
    """Replace value ``name`` by a new input fed with its value (torch's, else eager's)."""
    if prog.has_variables:
        return None
    info = prog.info[name]
    if any(const(d) is None and d != BATCH for d in info.shape) or \
            any(d == BATCH for d in info.shape[1:]):
        return None
    mode = "torch" if torch is not None else "eager"
    sub = prune(replace(prog, outputs=(name,), grad=False, grad2=False))
    values = run_tensor_mode(sub, runs, mode)
    if any(isinstance(v, Raised) for v in values):
        return None
    new_name = "c" + name[1:]
    inp = In(new_name, tuple("B" if d == BATCH else const(d) for d in info.shape), info.dtype,
             "fixed")
    new_runs = [replace(run, feeds={**run.feeds, new_name: np.asarray(v[("out", name)])})
                for run, v in zip(runs, values)]
    ops = tuple(op for op in prog.ops if op.out != name)
    ops = tuple(replace(op, args=tuple(new_name if a == name else a for a in op.args))
                for op in ops)
    outputs = tuple(new_name if o == name else o for o in prog.outputs)
    info_map = dict(prog.info)
    info_map[new_name] = Info(info.shape, info.dtype, new_name, False, info.low)
    new = prune(replace(prog, inputs=prog.inputs + (inp,), ops=ops, outputs=outputs,
                        info=info_map))
    used = {a for op in new.ops for a in op.args} | set(new.outputs)
    new_runs = [replace(run, feeds={k: v for k, v in run.feeds.items() if k in used})
                for run in new_runs]
    return new, new_runs


def shrink(prog: Program, runs: list[Run], failure: Failure, budget_s: float = 20.0):
    """The smallest (program, runs, pipeline) found in ``budget_s`` seconds that fail as
    ``failure`` does, and the failure as found there."""
    deadline = time.monotonic() + budget_s
    restrict = restriction_for(failure)
    key = failure.prekey()
    last = [failure]

    def fails(p, rs, pipeline=None):
        if p is None or not p.outputs or time.monotonic() > deadline:
            return False
        res = restrict if pipeline is None else replace(
            restrict, pipelines=[pipeline] if restrict.pipelines else [],
            write=[pipeline] if restrict.write else [])
        found = [f for f in check(p, rs, res) if f.prekey() == key]
        if found:
            last[0] = found[0]
        return bool(found)

    # the runs: the failing one alone, or with as few before it as possible
    idx = failure.run
    for candidate in ([runs[idx]], runs[:idx + 1], runs[max(0, idx - 1):idx + 1]):
        if len(candidate) < len(runs) and fails(prog, candidate):
            runs = list(candidate)
            break
    # gradients, then outputs
    for flags in ({"grad2": False}, {"grad": False, "grad2": False}):
        p = replace(prog, **flags)
        if p != prog and fails(p, runs):
            prog = p
    for o in prog.outputs:
        p = prune(replace(prog, outputs=(o,)))
        if len(prog.outputs) > 1 and fails(p, runs):
            prog = p
            break
    for o in list(prog.outputs):  # else drop the outputs it does not need, one at a time
        p = prune(replace(prog, outputs=tuple(x for x in prog.outputs if x != o)))
        if len(prog.outputs) > 1 and fails(p, runs):
            prog = p
    changed = True
    while changed and time.monotonic() < deadline:
        changed = False
        for op in reversed(prog.ops):
            if op.out not in prog.info or op not in prog.ops:
                continue
            candidates = [_substitute(prog, op.out, a) for a in op.args
                          if a in prog.info and prog.info[a].shape == prog.info[op.out].shape
                          and prog.info[a].dtype == prog.info[op.out].dtype]
            candidates.append(_remove(prog, op.out))
            for p in candidates:
                if p is not None and len(p.ops) < len(prog.ops) and fails(p, runs):
                    prog, changed = p, True
                    break
        if not changed:  # cut a chain: feed an intermediate value
            for op in prog.ops:
                for a in op.args:
                    if a in {o.out for o in prog.ops}:
                        cut = _cut(prog, runs, a)
                        if cut and fails(*cut):
                            prog, runs = cut
                            changed = True
                            break
                if changed:
                    break
    prog = prune(prog)
    # smaller batches: the first rows of each batch feed
    for b in (1, 2, 0):
        if all(run.batch <= b for run in runs):
            continue
        p_runs = [replace(run, batch=min(b, run.batch), feeds={
            k: (v[:b] if any(i.name == k and i.shape[:1] == ("B",) for i in prog.inputs) else v)
            for k, v in run.feeds.items()}) for run in runs]
        if fails(prog, p_runs):
            runs = p_runs
            break
    # simpler feed values
    for name in list(runs[0].feeds):
        for simplify in (lambda a: np.round(a, 1), lambda a: np.round(a)):
            def simpler(a):
                return simplify(a).astype(a.dtype) if a.dtype.kind == "f" else a
            p_runs = [replace(run, feeds={**run.feeds, name: simpler(run.feeds[name])})
                      for run in runs]
            if fails(prog, p_runs):
                runs = p_runs
                break
    # a shorter pipeline
    pipeline = failure.pipeline
    if restrict.pipelines or restrict.write:
        while pipeline and pipeline[1] and time.monotonic() < deadline:
            for k in range(len(pipeline[1])):
                shorter = (pipeline[0], pipeline[1][:k] + pipeline[1][k + 1:])
                if fails(prog, runs, shorter):
                    pipeline = shorter
                    break
            else:
                break
    fails(prog, runs, pipeline)  # the shrunk failure's own details, for the reproducer
    return prog, runs, pipeline, last[0]
