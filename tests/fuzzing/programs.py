"""A random program: its inputs, ops and outputs, what is known of each value, and its runs
(feeds at one batch size). Shapes are formulas: each dimension's size at every probed batch
size."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .surface import torch_side

PROBE_B = (0, 1, 2, 3, 4, 5)  # the batch sizes fed; the generator probes each op at all of them
NEEDED_B = (2, 3, 4, 5)        # an op must work at these (it may raise at 0 or 1 rows)


def K(c: int) -> tuple:
    """A dimension of size ``c`` whatever the batch size."""
    return (c,) * len(PROBE_B)


BATCH = PROBE_B  # a dimension that is the batch size


def const(d: tuple):
    """The size of a dimension that does not depend on the batch size, else None."""
    sizes = {x for x in d if x is not None}
    return sizes.pop() if len(sizes) == 1 and len(d) == len(PROBE_B) and \
        all(x is not None for x in d[2:]) else None


@dataclass(frozen=True)
class In:
    name: str
    shape: tuple            # ints, and "B" for the batch dimension (None in sg.placeholder)
    dtype: str
    kind: str = "normal"    # normal | int:lo:hi | small | mask | fixed (values given per run)
    variable: bool = False  # an sg.Variable (eager/torch: a leaf) with value `init`
    init: np.ndarray | None = None
    layout: str = "c"       # c | f | T | strided | reversed: how the feed is laid out

    @property
    def differentiable(self) -> bool:
        return float_dtype(self.dtype)

    def dims(self, batch: int) -> tuple:
        return tuple(batch if d == "B" else d for d in self.shape)

    @property
    def placeholder_shape(self) -> tuple:
        return tuple(None if d == "B" else d for d in self.shape)


@dataclass(frozen=True)
class Op:
    out: str
    expr: str        # source with {0}, {1}... for the operands
    args: tuple      # operand value names
    tag: str         # what kind of op, for classifying failures
    view: bool = False  # the result may be a view of args[0] (a movement op, basic slicing)


@dataclass(frozen=True)
class Info:
    shape: tuple     # per dimension: its size at each batch size of PROBE_B (None: raises)
    dtype: str
    root: str        # the value whose memory this one may view
    assigned: bool   # depends on an sg.assign (no gradients through it)
    low: bool = False  # float32 somewhere before it: compared to float32 precision
    exact: bool = True     # only correctly rounded ops before it: bitwise equal in torch
    fragile: bool = False  # an extremum (max, argmin, maximum...) of a value that is not exact


@dataclass(frozen=True)
class Program:
    inputs: tuple
    ops: tuple
    outputs: tuple
    info: dict       # value name -> Info
    grad: bool
    grad2: bool

    def source(self, name: str = "program") -> str:
        lines = [f"def {name}(F, {', '.join(i.name for i in self.inputs)}):"]
        for op in self.ops:
            lines.append(f"    {op.out} = {op.expr.format(*op.args)}")
        lines.append(f"    return [{', '.join(self.outputs)}]")
        return "\n".join(lines) + "\n"

    def function(self, for_torch: bool = False):
        source = torch_side(self.source()) if for_torch else self.source()
        scope: dict = {}
        exec(compile(source, "<fuzz program>", "exec"), scope)
        return scope["program"]

    def tags(self) -> tuple:
        return tuple(sorted({op.tag for op in self.ops}))

    @property
    def has_variables(self) -> bool:
        return any(i.variable for i in self.inputs)


@dataclass(frozen=True)
class Run:
    batch: int
    feeds: dict      # input name -> contiguous array (before its layout is applied)
    seed: int        # cotangents and directions


def dims_at(shape: tuple, batch: int) -> tuple:
    return tuple(d[PROBE_B.index(batch)] or 0 for d in shape)


def sample(inp: In, batch: int, rng: np.random.Generator, special: float, nonfinite: float):
    shape = inp.dims(batch)
    if inp.kind.startswith("int:"):
        lo, hi = map(int, inp.kind[4:].split(":"))
        return rng.integers(lo, hi, shape).astype(inp.dtype)
    if inp.kind == "small":
        return rng.integers(0, 5, shape).astype(inp.dtype)
    if inp.kind == "mask":
        return rng.random(shape) > 0.5
    x = rng.standard_normal(shape)
    if x.size and rng.random() < special:  # kinks, clamp bounds, ties
        picks = rng.random(shape) < 0.3
        x[picks] = rng.choice([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0], picks.sum())
        if x.size > 1 and rng.random() < 0.5:
            x.flat[rng.integers(0, x.size, x.size // 2 + 1)] = x.flat[0]
    if x.size and rng.random() < nonfinite:
        picks = rng.random(shape) < 0.15
        x[picks] = rng.choice([np.nan, np.inf, -np.inf], picks.sum())
    return x.astype(inp.dtype)


def laid_out(array: np.ndarray, layout: str) -> np.ndarray:
    """The same values in a non-contiguous layout."""
    if array.ndim == 0 or layout == "c":
        return array
    if layout == "f":
        return np.asfortranarray(array)
    if layout == "T":
        return np.ascontiguousarray(array.T).T
    if layout == "strided":
        return np.repeat(array, 2, axis=-1)[..., ::2]
    if layout == "reversed":
        return np.flip(np.flip(array, 0).copy(), 0)
    raise ValueError(layout)


def cotangent(run: Run, name: str, shape: tuple, dtype: str) -> np.ndarray:
    rng = np.random.default_rng([run.seed, *name.encode()])
    return rng.standard_normal(shape).astype(dtype)


def prune(prog: Program) -> Program:
    """Drop ops no output needs (assigns stay only if fetched); recompute which value each
    one may view, since shrinking rewires ops."""
    needed = set(prog.outputs)
    keep = []
    for op in reversed(prog.ops):
        if op.out in needed:
            keep.append(op)
            needed.update(op.args)
    keep.reverse()
    inputs = tuple(i for i in prog.inputs if i.name in needed)
    info = dict(prog.info)
    for i in inputs:
        info[i.name] = replace(info[i.name], root=i.name)
    for op in keep:
        first = info[op.args[0]] if op.args else None
        view = op.view and first is not None and first.dtype == info[op.out].dtype
        info[op.out] = replace(info[op.out], root=first.root if view else op.out)
    return replace(prog, ops=tuple(keep), inputs=inputs, info=info)


def has_axes(name: str, info: Info) -> bool:
    """A value with at least one axis (what ``Generator.pick`` filters by)."""
    return len(info.shape) >= 1


def float_with_axes(name: str, info: Info) -> bool:
    return has_axes(name, info) and info.dtype.startswith("float")


def picks(pred: Callable[[str, Info], bool] = lambda name, info: True):
    """A template that starts from a value of the program: ``template(g, a)`` runs with one
    that ``pred`` accepts, and the template does not run (False) if there is none."""
    def wrap(template):
        @functools.wraps(template)
        def run(g) -> bool:
            a = g.pick(pred)
            return a is not None and template(g, a)
        return run
    return wrap


def float_dtype(dtype: str) -> bool:
    return dtype in ("float32", "float64")


def grad_targets(prog: Program) -> list[str]:
    return [o for o in prog.outputs if float_dtype(prog.info[o].dtype) and
            not prog.info[o].assigned]


def diff_inputs(prog: Program) -> list[In]:
    return [i for i in prog.inputs if i.differentiable]
