"""Differential random-program fuzzer: "correct under any input".

Each random program is one Python function ``program(F, *inputs)`` written with the shared
operator surface (torch's method names), so the same source runs on ``sg.Node`` (building a
graph), on ``eager.Tensor`` and on ``torch.Tensor``; ``F`` supplies the few free functions of the
mode (``F.softmax``, ``F.cat``, ``F.tensor``, ``F.float64``...), as ``tests/opspecs.py`` does.
The first dimension of the batch inputs is ``None`` in ``sg.placeholder`` and is fed with 0, 1
and several rows, some feeds as non-contiguous views.

Oracles, each run on every program:

  (a) every compiler pipeline on the numpy backend equals ``backend="interpreter", passes=()``
  (b) the graph's values (and ``sg.gradients``, first and second order) equal eager's
  (c) eager equals torch (values, dtypes, shapes, ``requires_grad``, raising or not)
  (d) a result handed to the user is never changed by a later run of the same Session, and
      feeds are never written
  (e) results of one run share no memory with each other, with a feed or with a Variable's
      value, unless the program fetched a true view of it; a result that does share a
      Variable's memory is read-only
  (f) writing into returned arrays never changes later results

Every failure is shrunk (runs, outputs, gradients, ops, inputs, batch size, feed values,
pipeline) while it persists, and printed once per class as standalone Python source.

    python -m tests.fuzz --minutes 10 [--seed S] [--max-ops N] [--quiet]
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

import eager
import staticgraph as sg
from staticgraph.ops import functional as shared
from staticgraph.passes import DEFAULT_PASSES, PASSES

try:
    import torch
except ImportError:  # the torch oracle (c) is skipped
    torch = None

# -- known differences --------------------------------------------------------------------------
# Intended, documented differences from torch that are not failures: name -> one-line reason.
# Each is handled where the name is used (grep for it).
KNOWN_DIFFERENCES = {
    "max_dim_ties": "docs/eager.md: max(dim)/min(dim) share the gradient evenly among ties, as "
                    "amax does; torch sends it to the returned index. torch runs .amax/.amin there.",
}

# -- the modes' free functions -----------------------------------------------------------------
DTYPES = ("float64", "float32", "int64", "int32", "int16", "uint8", "bool")
FUNCS = ("gelu", "layer_norm", "cross_entropy", "mse_loss", "linear", "cat", "stack", "where",
         "softmax", "log_softmax", "softplus", "relu")


def _identity_assign(variable, value):
    """sg.assign's value in eager and torch: the new value, in the Variable's dtype."""
    return value.to(variable.dtype)


GRAPH_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=sg.constant,
                          assign=sg.assign, **{d: np.dtype(d) for d in DTYPES})
EAGER_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=eager.tensor,
                          assign=_identity_assign, **{d: np.dtype(d) for d in DTYPES})
TORCH_F = None
if torch is not None:
    import torch.nn.functional as _tf
    TORCH_F = SimpleNamespace(
        gelu=_tf.gelu, layer_norm=_tf.layer_norm, cross_entropy=_tf.cross_entropy,
        mse_loss=_tf.mse_loss, linear=_tf.linear, cat=torch.cat, stack=torch.stack,
        where=torch.where, softmax=torch.softmax, log_softmax=torch.log_softmax,
        softplus=_tf.softplus, relu=torch.relu, tensor=torch.tensor, assign=_identity_assign,
        **{d: getattr(torch, d) for d in DTYPES})

REFERENCE = ("interpreter", ())
FIXED_PIPELINES = [("numpy", ()), *[("numpy", (p,)) for p in PASSES], ("numpy", ("plan_memory",)),
                   ("numpy", ("cse", "fuse", "plan_memory")), ("numpy", tuple(DEFAULT_PASSES)),
                   ("interpreter", tuple(DEFAULT_PASSES))]
WRITE_PIPELINES = [("numpy", ("plan_memory",)), ("numpy", tuple(DEFAULT_PASSES))]
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


# -- programs ---------------------------------------------------------------------------------
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
        return self.dtype in ("float32", "float64")


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

    def function(self, torch_side: bool = False):
        source = self.source()
        if torch_side:  # KNOWN_DIFFERENCES["max_dim_ties"]
            source = re.sub(r"\.max\(([^()]*)\)\.values", r".amax(\1)", source)
            source = re.sub(r"\.min\(([^()]*)\)\.values", r".amin(\1)", source)
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
    shape = tuple(batch if d == "B" else d for d in inp.shape)
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


# -- the generator ------------------------------------------------------------------------------
class Generator:
    """Grows a program op by op; each op is checked on the probe mode (torch if installed, else
    eager) at three batch sizes, so every op it keeps is valid and its shape is known as a
    linear function of the batch size."""

    def __init__(self, rng: np.random.Generator, variables: bool) -> None:
        self.rng, self.variables = rng, variables
        self.F = TORCH_F if torch is not None else EAGER_F
        self.inputs: list[In] = []
        self.ops: list[Op] = []
        self.info: dict[str, Info] = {}
        self.probe: dict[str, list] = {}
        self.pending: list[In] = []
        self.counter = itertools.count()
        self.assigned_vars: set[str] = set()

    # values
    def tensor(self, array):
        if torch is not None:
            return torch.tensor(array)
        return eager.tensor(array)

    def new_input(self, shape, dtype="float64", kind="normal", variable=None, layout=None):
        rng = self.rng
        if variable is None:
            variable = (self.variables and "B" not in shape and dtype in ("float64", "float32")
                        and kind == "normal" and rng.random() < 0.6)
        name = f"{'w' if variable else 'x'}{len(self.inputs) + len(self.pending)}"
        if layout is None:
            layout = "c" if rng.random() < 0.6 else str(rng.choice(["f", "T", "strided",
                                                                     "reversed"]))
        init = None
        if variable:
            init = sample(In(name, shape, dtype, kind), 0, rng, 0.2, 0.0)
            init.flags.writeable = False
        inp = In(name, tuple(shape), dtype, kind, variable, init, "c" if variable else layout)
        arrays = [init if variable else sample(inp, b, rng, 0.2, 0.0) for b in PROBE_B]
        self.probe[name] = [self.tensor(a) for a in arrays]
        self.pending.append(inp)
        self.info[name] = Info(tuple(BATCH if d == "B" else K(d) for d in shape), dtype,
                               name, False, dtype == "float32")
        return name

    def commit_inputs(self):
        self.inputs.extend(self.pending)
        self.pending = []

    def drop_pending(self):
        for inp in self.pending:
            del self.info[inp.name], self.probe[inp.name]
        self.pending = []

    def names(self, pred=lambda n, i: True):
        return [n for n, i in self.info.items() if pred(n, i)
                and n not in {p.name for p in self.pending}]

    def pick(self, pred=lambda n, i: True):
        names = self.names(pred)
        if not names:
            return None
        weights = np.arange(1, len(names) + 1, dtype=float) ** 1.5  # favour recent values
        return names[self.rng.choice(len(names), p=weights / weights.sum())]

    def shape(self, name):
        return self.info[name].shape

    def dtype(self, name):
        return self.info[name].dtype

    def try_op(self, expr, args, tag, view=False) -> bool:
        out = f"v{next(self.counter)}"
        fn_source = f"def f(F, {', '.join(f'_{k}' for k in range(len(args)))}):\n" \
                    f"    return {expr.format(*(f'_{k}' for k in range(len(args))))}\n"
        scope: dict = {}
        exec(fn_source, scope)
        shapes, dtypes, values = [], set(), []
        for k, b in enumerate(PROBE_B):
            operands = [self.probe[a][k] for a in args]
            value = None
            if all(o is not None for o in operands):
                try:
                    value = scope["f"](self.F, *operands)
                except Exception:  # noqa: BLE001 - torch says the op is invalid here
                    value = None
            if value is not None and not hasattr(value, "shape"):
                return False
            if value is None and b in NEEDED_B:
                return False
            values.append(value)
            shapes.append(None if value is None else tuple(value.shape))
            if value is not None:
                dtypes.add(str(value.dtype).replace("torch.", ""))
        ranks = {len(s) for s in shapes if s is not None}
        if len(ranks) != 1 or len(dtypes) != 1 or ranks.pop() > 5:
            return False
        rank = len(shapes[-1])
        formula = tuple(tuple(None if s is None else s[j] for s in shapes) for j in range(rank))
        if math.prod(d[-1] for d in formula) > 4000:  # keep programs small
            return False
        dtype = dtypes.pop()
        if dtype not in DTYPES:
            return False
        self.probe[out] = values
        infos = [self.info[a] for a in args]
        root = infos[0].root if view and infos and infos[0].dtype == dtype else out
        assigned = any(i.assigned for i in infos) or tag == "assign"
        self.commit_inputs()
        low = dtype == "float32" or any(i.low for i in infos)
        exact = tag in EXACT_TAGS and all(i.exact for i in infos)
        fragile = any(i.fragile for i in infos) or (tag in EXTREMUM_TAGS and not all(
            i.exact for i in infos))
        self.info[out] = Info(tuple(formula), dtype, root, assigned, low, exact, fragile)
        self.ops.append(Op(out, expr, tuple(args), tag, view))
        return True

    # helpers for templates
    def is_float(self, name):
        return self.dtype(name) in ("float32", "float64")

    def broadcast_partner(self, a):
        """A value broadcastable with ``a`` (an existing one, or a new input)."""
        sa = self.shape(a)

        def fits(n, i):
            sb = i.shape
            for x, y in zip(reversed(sa), reversed(sb)):
                if not (x == y or x == K(1) or y == K(1)):
                    return False
            return True
        rng = self.rng
        if rng.random() < 0.7:
            b = self.pick(lambda n, i: fits(n, i) and n != a)
            if b is not None:
                return b
        # a new input: a's trailing dims, some set to 1, batch dims kept or 1
        k = int(rng.integers(0, len(sa) + 1))
        shape = []
        for d in sa[len(sa) - k:]:
            c = const(d)
            if c is not None:
                shape.append(c if rng.random() < 0.7 else 1)
            elif d == BATCH and rng.random() < 0.5 and not shape:
                shape.append("B")
            else:
                shape.append(1)
        if "B" in shape and shape[0] != "B":
            shape = [1 if d == "B" else d for d in shape]
        dtype = self.dtype(a) if rng.random() < 0.85 else str(rng.choice(["float32", "int64"]))
        if dtype not in ("float32", "float64", "int64"):
            dtype = "float64"
        kind = "normal" if dtype.startswith("float") else "small"
        return self.new_input(tuple(shape), dtype, kind)

    def dim(self, name, allow_batch=True):
        shape = self.shape(name)
        choices = [k for k, d in enumerate(shape) if allow_batch or const(d) is not None]
        if not choices:
            return None
        k = int(self.rng.choice(choices))
        return k - len(shape) if self.rng.random() < 0.4 else k


# -- op templates: each tries to add one op (True on success) ----------------------------------
def _scalar(rng):
    return str(rng.choice(["2", "0.5", "-1.5", "3", "1e-3", "-0.0", "1"]))


def t_unary(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: i.dtype.startswith("float") or rng.random() < 0.15)
    if a is None:
        return False
    lo, hi = sorted(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], 2, replace=False))
    exprs = {
        "exp": "{0}.exp()", "exp_half": "({0} * 0.5).exp()",
        "log": "({0}.abs() + 0.25).log()", "log_raw": "{0}.log()",
        "sqrt": "({0}.abs() + 0.01).sqrt()", "sqrt_raw": "{0}.sqrt()",
        "tanh": "{0}.tanh()", "sigmoid": "{0}.sigmoid()", "relu": "{0}.relu()",
        "relu_f": "F.relu({0})", "abs": "{0}.abs()", "abs_op": "abs({0})", "erf": "{0}.erf()",
        "sign": "{0}.sign()", "neg": "-{0}", "softplus": "F.softplus({0})",
        "softplus_beta": "F.softplus({0}, beta=2.0, threshold=1.0)",
        "clamp": f"{{0}}.clamp({lo}, {hi})", "clamp_min": f"{{0}}.clamp(min={lo})",
        "clamp_max": f"{{0}}.clamp(max={hi})", "square": "{0} ** 2", "cube": "{0} ** 3",
        "pow_half": "({0}.abs() + 0.5) ** 0.5", "rpow": "2 ** {0}",
        "gelu": "F.gelu({0})", "gelu_tanh": "F.gelu({0}, approximate='tanh')",
        "sigmoid_m": "{0}.sigmoid()", "tanh_scaled": "({0} * 3).tanh()",
    }
    raw = {"log_raw", "sqrt_raw"}
    tag = str(rng.choice([k for k in exprs if k not in raw or rng.random() < 0.3]))
    return g.try_op(exprs[tag], (a,), tag.split("_")[0] if tag not in ("relu_f",) else "relu")


def t_binary(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: i.dtype != "bool")
    if a is None:
        return False
    if rng.random() < 0.25:  # with a Python number
        s = _scalar(rng)
        expr, tag = [("{0} + " + s, "add"), (s + " - {0}", "sub"), ("{0} * " + s, "mul"),
                     ("{0} / " + s, "div"), ("1 / ({0}.abs() + 1)", "div"),
                     (s + " * {0}", "mul")][int(rng.integers(6))]
        return g.try_op(expr, (a,), tag)
    b = g.broadcast_partner(a)
    ops = [("{0} + {1}", "add"), ("{0} - {1}", "sub"), ("{0} * {1}", "mul"),
           ("{0} / ({1} * {1} + 0.5)", "div"), ("{0} / {1}", "div"),
           ("{0}.maximum({1})", "maximum"), ("{0}.minimum({1})", "minimum"),
           ("({0}.abs() + 0.5) ** {1}", "pow"), ("{0}.max({1})", "maximum"),
           ("{0}.add({1})", "add"), ("{0}.mul({1})", "mul")]
    expr, tag = ops[int(rng.integers(len(ops)))]
    if g.try_op(expr, (a, b), tag):
        return True
    g.drop_pending()
    return False


def t_where(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: i.dtype != "bool")
    if a is None:
        return False
    b = g.broadcast_partner(a)
    cmp = str(rng.choice(["<", "<=", ">", ">=", "==", "!="]))
    choices = [
        (f"F.where({{0}} {cmp} {{1}}, {{0}}, {{1}})", (a, b), "where"),
        (f"{{0}}.where({{0}} {cmp} {_scalar(rng)}, {_scalar(rng)})", (a,), "where"),
        (f"({{0}} {cmp} {{1}}).to(F.{rng.choice(['float64', 'float32', 'int64'])})", (a, b),
         "compare"),
        (f"F.where(({{0}} > 0) & ({{1}} {cmp} 0.5), {{1}}, -{{0}})", (a, b), "logic"),
        (f"F.where(({{0}} > 0) | ~({{1}} {cmp} 0.5), {{0}}, {{1}} * 2)", (a, b), "logic"),
    ]
    masks = g.names(lambda n, i: i.dtype == "bool")
    if masks:
        m = masks[int(rng.integers(len(masks)))]
        choices.append(("F.where({0}, {1}, {2})", (m, a, b), "where"))
        choices.append(("{0} & ({1} > 0)", (m, a), "logic"))
        choices.append(("~{0}", (m,), "logic"))
    expr, args, tag = choices[int(rng.integers(len(choices)))]
    if g.try_op(expr, args, tag):
        return True
    g.drop_pending()
    return False


def t_reduce(g: Generator) -> bool:
    rng = g.rng
    a = g.pick()
    if a is None:
        return False
    nd = len(g.shape(a))
    keep = bool(rng.random() < 0.4)
    kd = ", keepdim=True" if keep else ""
    if nd == 0:
        d = int(rng.choice([0, -1]))
    else:
        d = g.dim(a)
    name = str(rng.choice(["sum", "mean", "prod", "amax", "amin", "max_dim", "min_dim", "max",
                           "min", "argmax", "argmin", "indices"]))
    if name in ("sum", "mean", "amax", "amin") and nd >= 2 and rng.random() < 0.3:
        ds = tuple(sorted(rng.choice(nd, 2, replace=False).tolist()))
        return g.try_op(f"{{0}}.{name}({ds}{kd})", (a,), name)
    if name in ("sum", "mean", "prod") and rng.random() < 0.2:
        return g.try_op(f"{{0}}.{name}()", (a,), name)
    if name in ("sum", "mean", "prod", "amax", "amin"):
        return g.try_op(f"{{0}}.{name}({d}{kd})", (a,), name)
    if name in ("max_dim", "min_dim"):
        return g.try_op(f"{{0}}.{name[:3]}({d}{kd}).values", (a,), name)
    if name in ("max", "min"):
        return g.try_op(f"{{0}}.{name}()", (a,), name)
    if name == "indices":
        return g.try_op(f"{{0}}.max({d}{kd}).indices", (a,), "argmax")
    return g.try_op(f"{{0}}.{name}({d}{kd})", (a,), name)


def _factor(n, rng, parts):
    if n == 0:
        return [0] + [int(rng.integers(1, 3)) for _ in range(parts - 1)]
    out = []
    for _ in range(parts - 1):
        divs = [k for k in range(1, n + 1) if n % k == 0]
        k = int(rng.choice(divs))
        out.append(k)
        n //= k
    return out + [n]


def t_movement(g: Generator) -> bool:
    rng = g.rng
    a = g.pick()
    if a is None:
        return False
    shape = g.shape(a)
    nd = len(shape)
    kind = str(rng.choice(["reshape", "flatten", "transpose", "permute", "T", "unsqueeze",
                           "squeeze", "expand", "t"]))
    if kind == "reshape":
        batch = [k for k, d in enumerate(shape) if const(d) is None]
        if not batch:
            n = math.prod(const(d) for d in shape)
            dims = _factor(n, rng, int(rng.integers(1, 4)))
            if rng.random() < 0.3:
                dims[int(rng.integers(len(dims)))] = -1
            return g.try_op(f"{{0}}.{rng.choice(['reshape', 'view'])}({', '.join(map(str, dims))})",
                            (a,), "reshape", view=True)
        if batch != [0] or shape[0] != BATCH:
            return False
        n = math.prod(const(d) for d in shape[1:])
        dims = _factor(n, rng, int(rng.integers(1, 3)))
        return g.try_op(f"{{0}}.reshape(-1, {', '.join(map(str, dims))})", (a,), "reshape",
                        view=True)
    if kind == "flatten" and nd >= 1:
        s = int(rng.integers(0, nd))
        if rng.random() < 0.5:
            return g.try_op(f"{{0}}.flatten({s})", (a,), "flatten", view=True)
        e = int(rng.integers(s, nd))
        return g.try_op(f"{{0}}.flatten({s}, {e})", (a,), "flatten", view=True)
    if kind == "transpose" and nd >= 2:
        d0, d1 = rng.choice(nd, 2, replace=False)
        return g.try_op(f"{{0}}.transpose({d0}, {d1 - nd if rng.random() < 0.3 else d1})", (a,),
                        "transpose", view=True)
    if kind == "permute" and nd >= 2:
        perm = rng.permutation(nd).tolist()
        return g.try_op(f"{{0}}.permute({', '.join(map(str, perm))})", (a,), "permute", view=True)
    if kind == "T" and nd >= 2:
        return g.try_op("{0}." + ("mT" if nd > 2 or rng.random() < 0.3 else "T"), (a,),
                        "transpose", view=True)
    if kind == "t" and nd <= 2:
        return g.try_op("{0}.t()", (a,), "transpose", view=True)
    if kind == "unsqueeze":
        d = int(rng.integers(-nd - 1, nd + 1))
        return g.try_op(f"{{0}}.unsqueeze({d})", (a,), "unsqueeze", view=True)
    if kind == "squeeze":
        ones = [k for k, d in enumerate(shape) if d == K(1)]
        if not ones:
            return False
        if all(const(d) is not None for d in shape) and rng.random() < 0.3:
            return g.try_op("{0}.squeeze()", (a,), "squeeze", view=True)
        return g.try_op(f"{{0}}.squeeze({int(rng.choice(ones))})", (a,), "squeeze", view=True)
    if kind == "expand":
        ones = [k for k, d in enumerate(shape) if d == K(1)]
        if not ones:
            return False
        sizes = [-1] * nd
        for k in ones:
            sizes[k] = int(rng.integers(1, 4))
        if rng.random() < 0.3:
            sizes = [2] + sizes
        return g.try_op(f"{{0}}.expand({', '.join(map(str, sizes))})", (a,), "expand", view=True)
    return False


def t_index(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: len(i.shape) >= 1)
    if a is None:
        return False
    shape = g.shape(a)
    nd = len(shape)
    kind = str(rng.choice(["slice", "slice", "int", "array", "array_list", "array2",
                           "array_batch"]))
    if kind in ("slice", "int"):
        items = []
        for k, d in enumerate(shape):
            r, c = rng.random(), const(d)
            if kind == "int" and c and r < 0.4:
                items.append(str(int(rng.integers(-c, c))))
            elif r < 0.5:
                items.append(":")
            else:
                start = int(rng.integers(-2, 3))
                stop = str(int(rng.integers(-1, 4))) if rng.random() < 0.5 else ""
                step = int(rng.choice([1, 1, 2, 3]))
                items.append(f"{start}:{stop}" + (f":{step}" if step != 1 else ""))
        if rng.random() < 0.2:
            items.insert(int(rng.integers(0, len(items) + 1)), "None")
        if rng.random() < 0.2 and items:
            items = ["..."] + items[1:]
        while items and items[-1] == ":" and rng.random() < 0.7:
            items.pop()
        if not items:
            items = ["..."]
        return g.try_op(f"{{0}}[{', '.join(items)}]", (a,), "slice" if kind == "slice" else
                        "select", view=True)
    concrete = [k for k, d in enumerate(shape) if const(d)]
    if kind == "array_batch":
        if not concrete or concrete[0] != 0:
            return False
        c = const(shape[0])
        i = g.new_input(("B",), "int64", f"int:{-c}:{c}")
        ok = g.try_op("{0}[{1}]", (a, i), "gather")
        if not ok:
            g.drop_pending()
        return ok
    if not concrete:
        return False
    k = int(rng.choice(concrete))
    c = const(shape[k])
    prefix = ", ".join([":"] * k) + (", " if k else "")
    if kind == "array_list":
        idx = rng.integers(-c, c, int(rng.integers(1, 4))).tolist()
        return g.try_op(f"{{0}}[{prefix}{idx}]", (a,), "gather")
    ishape = (int(rng.integers(1, 4)),) if rng.random() < 0.7 else (2, 2)
    i = g.new_input(ishape, "int64", f"int:{-c}:{c}")
    if kind == "array2" and k + 1 < nd and const(shape[k + 1]):
        c2 = const(shape[k + 1])
        j = g.new_input(ishape, "int64", f"int:{-c2}:{c2}")
        ok = g.try_op(f"{{0}}[{prefix}{{1}}, {{2}}]", (a, i, j), "gather")
    else:
        ok = g.try_op(f"{{0}}[{prefix}{{1}}]", (a, i), "gather")
    if not ok:
        g.drop_pending()
    return ok


def t_matmul(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: len(i.shape) >= 1 and i.dtype.startswith("float"))
    if a is None:
        return False
    shape = g.shape(a)
    last = shape[-1]
    r = rng.random()
    if r < 0.2 and len(shape) >= 2:
        return g.try_op("{0} @ {0}.mT", (a,), "matmul")
    k = const(last)
    if k is None:
        return False
    partner = g.pick(lambda n, i: n != a and len(i.shape) in (1, 2) and i.shape[0] == K(k)
                     and i.dtype == g.dtype(a))
    if partner is None or rng.random() < 0.5:
        wshape = (k,) if rng.random() < 0.2 else (k, int(rng.integers(1, 5)))
        partner = g.new_input(wshape, g.dtype(a))
    if r < 0.35 and len(g.shape(partner)) == 2:
        m = const(g.shape(partner)[1])
        if m is None:
            g.drop_pending()
            return False
        bias = g.new_input((m,), g.dtype(a)) if rng.random() < 0.6 else None
        expr = "F.linear({0}, {1}.t()" + (", {2})" if bias else ")")
        ok = g.try_op(expr, (a, partner) + ((bias,) if bias else ()), "linear")
    else:
        ok = g.try_op(str(rng.choice(["{0} @ {1}", "{0}.matmul({1})"])), (a, partner), "matmul")
    if not ok:
        g.drop_pending()
    return ok


def t_cast(g: Generator) -> bool:
    rng = g.rng
    a = g.pick()
    if a is None:
        return False
    dt = g.dtype(a)
    if dt.startswith("float"):
        choices = [("{0}.to(F.float32)", "cast"), ("{0}.double()", "cast"),
                   ("{0}.float()", "cast"), ("{0}.to(F.float64)", "cast"),
                   ("(F.where({0} == {0}, {0}, 0.0).tanh() * 3).to(F.int64)", "cast_int"),
                   ("(F.where({0} == {0}, {0}, 0.0).tanh() * 3).long()", "cast_int"),
                   ("(F.where({0} == {0}, {0}, 0.0).sigmoid() * 4).to(F.uint8)", "cast_int"),
                   ("{0}.bool()", "cast_bool")]
    else:
        choices = [("{0}.to(F.float64)", "cast"), ("{0}.float()", "cast"),
                   ("{0}.long()", "cast"), ("{0}.int()", "cast"), ("{0}.bool()", "cast_bool"),
                   ("{0}.to(F.uint8)", "cast"), ("{0}.to(F.int16)", "cast")]
    expr, tag = choices[int(rng.integers(len(choices)))]
    if rng.random() < 0.15:
        b = g.pick(lambda n, i: n != a)
        if b is not None:
            return g.try_op("{0}.type_as({1})", (a, b), "cast", view=g.dtype(b) == dt)
    return g.try_op(expr, (a,), tag, view=True)  # a cast to the same dtype is x itself


def t_intmix(g: Generator) -> bool:
    """Small integer dtypes mixed with int64 0-d values and Python numbers."""
    rng = g.rng
    dt = str(rng.choice(["uint8", "int16", "int32"]))
    shape = tuple(["B"] + [int(rng.integers(1, 4))] * int(rng.integers(0, 2)))
    a = g.new_input(shape, dt, "small")
    ints = g.names(lambda n, i: i.dtype in ("int64", "int32", "uint8", "int16")
                   and n != a)
    choices = [("{0} + 1", "add"), ("{0} * 2", "mul"), ("{0}.sum() + {0}", "add"),
               ("{0} + F.tensor(3)", "add"), ("({0} * {0}).sum(-1)", "sum"),
               ("{0} - F.tensor(1)", "sub"), ("{0} / 2", "div"), ("{0}.sigmoid()", "sigmoid"),
               ("{0}.exp()", "exp"), ("{0}.to(F.float64) * {0}", "mul")]
    expr, tag = choices[int(rng.integers(len(choices)))]
    args = (a,)
    if ints and rng.random() < 0.4:
        b = ints[int(rng.integers(len(ints)))]
        expr, args, tag = str(rng.choice(["{0} + {1}.sum()", "{0} * {1}.amax()",
                                          "{1}.sum() - {0}"])), (a, b), "add"
    if g.try_op(expr, args, tag):
        return True
    g.drop_pending()
    return False


def t_concat(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: len(i.shape) >= 1)
    if a is None:
        return False
    shape = g.shape(a)
    stack = rng.random() < 0.3
    d = int(rng.integers(0, len(shape) + (1 if stack else 0)))

    def fits(n, i):
        if len(i.shape) != len(shape) or n == a:
            return False
        return all(x == y or (not stack and k == d) for k, (x, y) in enumerate(zip(i.shape, shape)))
    b = g.pick(fits)
    if b is None:
        b = a
    k = int(rng.integers(2, 4)) if b == a else 2
    items = ", ".join(["{0}", "{1}"] + ["{0}"] * (k - 2))
    fn = "stack" if stack else "cat"
    d_str = str(d - len(shape) - (1 if stack else 0)) if rng.random() < 0.3 else str(d)
    return g.try_op(f"F.{fn}([{items}], {d_str})", (a, b), fn)


def t_composite(g: Generator) -> bool:
    rng = g.rng
    a = g.pick(lambda n, i: len(i.shape) >= 1 and i.dtype.startswith("float"))
    if a is None:
        return False
    shape = g.shape(a)
    nd = len(shape)
    kind = str(rng.choice(["softmax", "log_softmax", "layer_norm", "cross_entropy",
                           "cross_entropy_probs", "mse_loss", "gelu"]))
    d = g.dim(a)
    if kind == "softmax":
        return g.try_op(str(rng.choice([f"{{0}}.softmax({d})", f"F.softmax({{0}}, {d})"])),
                        (a,), "softmax")
    if kind == "log_softmax":
        return g.try_op(str(rng.choice([f"{{0}}.log_softmax({d})",
                                        f"F.log_softmax({{0}}, {d})"])), (a,), "log_softmax")
    if kind == "gelu":
        return g.try_op("F.gelu({0}, approximate='tanh')", (a,), "gelu")
    if kind == "layer_norm":
        n = const(shape[-1])
        if n is None:
            return False
        if rng.random() < 0.5:
            return g.try_op(f"F.layer_norm({{0}}, ({n},))", (a,), "layer_norm")
        w = g.new_input((n,), g.dtype(a))
        b = g.new_input((n,), g.dtype(a))
        ok = g.try_op(f"F.layer_norm({{0}}, [{n}], {{1}}, {{2}})", (a, w, b), "layer_norm")
        if not ok:
            g.drop_pending()
        return ok
    reduction = str(rng.choice(["mean", "mean", "sum", "none"]))
    red = "" if reduction == "mean" else f", reduction='{reduction}'"
    if kind == "cross_entropy":
        c = const(shape[-1])
        if nd not in (1, 2) or not c:
            return False
        if nd == 2 and shape[0] != BATCH and const(shape[0]) is None:
            return False
        labels = g.new_input(("B",) if shape[0] == BATCH and nd == 2 else
                             (() if nd == 1 else (const(shape[0]),)), "int64", f"int:0:{c}")
        ok = g.try_op(f"F.cross_entropy({{0}}, {{1}}{red})", (a, labels), "cross_entropy")
        if not ok:
            g.drop_pending()
        return ok
    if kind == "cross_entropy_probs":
        if nd not in (1, 2):
            return False
        b = g.pick(lambda n, i: i.shape == shape and i.dtype.startswith("float") and n != a)
        if b is None:
            return False
        return g.try_op(f"F.cross_entropy({{0}}, {{1}}.softmax(-1){red})", (a, b),
                        "cross_entropy")
    b = g.pick(lambda n, i: i.shape == shape and i.dtype == g.dtype(a) and n != a)
    if b is None:
        return False
    return g.try_op(f"F.mse_loss({{0}}, {{1}}{red})", (a, b), "mse_loss")


def t_assign(g: Generator) -> bool:
    rng = g.rng
    free = [i for i in g.inputs if i.variable and i.name not in g.assigned_vars]
    if not free:
        return False
    w = free[int(rng.integers(len(free)))]
    src = g.pick(lambda n, i: i.dtype.startswith("float") and not i.assigned)
    if src is None:
        return False
    exprs = ["F.assign({0}, {0} * 0.5 + {1}.mean())", "F.assign({0}, ({0} - {1}.sum()).tanh())",
             "F.assign({0}, {0} + 1)"]
    expr = str(rng.choice(exprs))
    if not g.try_op(expr, (w.name, src) if "{1}" in expr else (w.name,), "assign"):
        return False
    g.assigned_vars.add(w.name)
    new = g.ops[-1].out
    if rng.random() < 0.6:  # fetch a view of the new value
        view = str(rng.choice(["{0}.T", "{0}[0]", "{0}.reshape(-1)", "{0}[None]"]))
        g.try_op(view, (new,), "assign_view", view=True)
    return True


# Ties: torch's SIMD and scalar paths may round one transcendental function of equal inputs
# differently (exp, gelu of the same number in two places), so an extremum over values that
# are not exact may pick another of the tied elements than eager: not a bug of either. Oracle
# (c) skips results that depend on such an extremum (Info.fragile); (a) and (b) check them.
EXACT_TAGS = {"add", "sub", "mul", "div", "neg", "abs", "relu", "clamp", "maximum", "minimum",
              "where", "compare", "logic", "cast", "cast_bool", "reshape", "flatten", "transpose",
              "permute", "unsqueeze", "squeeze", "expand", "slice", "select", "gather", "cat",
              "stack", "sign", "square", "sqrt", "assign", "assign_view", "max", "min", "amax",
              "amin", "max_dim", "min_dim", "argmax", "argmin"}
EXTREMUM_TAGS = {"max", "min", "amax", "amin", "max_dim", "min_dim", "argmax", "argmin",
                 "maximum", "minimum", "cast_int", "compare", "logic", "where", "sign"}
# (cast_int: a float32 tanh that is -1 or not; compare, where, sign: a sum that cancels to
# exactly 0 in one and to 1e-17 in the other)
GENERATOR_ERRORS: Counter = Counter()  # the fuzzer's own bugs while generating

TEMPLATES = [(t_unary, 6), (t_binary, 6), (t_where, 2), (t_reduce, 3), (t_movement, 3),
             (t_index, 2), (t_matmul, 2), (t_cast, 1.5), (t_intmix, 0.7), (t_concat, 1),
             (t_composite, 2.5)]


def generate(seed: int, max_ops: int = 40, min_ops: int = 5) -> tuple[Program, list[Run]]:
    rng = np.random.default_rng(seed)
    variables = rng.random() < 0.12
    g = Generator(rng, variables)
    for _ in range(int(rng.integers(1, 4))):
        rank = int(rng.integers(0, 4))
        g.new_input(tuple(["B"] + [int(rng.choice([1, 2, 3, 4])) for _ in range(rank)]),
                    "float64" if rng.random() < 0.8 else "float32")
    if rng.random() < 0.3:
        g.new_input(tuple(int(rng.choice([1, 2, 3])) for _ in range(int(rng.integers(0, 3)))),
                    "float64", variable=variables or None)
    if rng.random() < 0.2:
        g.new_input(("B", int(rng.integers(1, 4))), "bool", "mask")
    if variables:
        g.new_input((int(rng.integers(1, 4)), int(rng.integers(1, 4))), "float64",
                    variable=True)
    g.commit_inputs()
    n_ops = int(rng.integers(min_ops, max_ops + 1))
    funcs = [t for t, _ in TEMPLATES] + ([t_assign] if variables else [])
    weights = np.array([w for _, w in TEMPLATES] + ([1.5] if variables else []), float)
    tries = 0
    while len(g.ops) < n_ops and tries < n_ops * 20:
        tries += 1
        f = funcs[rng.choice(len(funcs), p=weights / weights.sum())]
        try:
            f(g)
        except Exception:  # noqa: BLE001 - a generator bug: this op is skipped, and counted
            GENERATOR_ERRORS[traceback.format_exc(limit=-2)] += 1
        finally:
            g.drop_pending()
    values = [op.out for op in g.ops]
    if not values:
        values = [i.name for i in g.inputs]
    used = {a for op in g.ops for a in op.args}
    sinks = [v for v in values[:-1] if v not in used]  # values nothing else uses
    rng.shuffle(sinks)
    outputs = [values[-1]] + sinks[:4]
    for _ in range(int(rng.integers(0, 2))):
        v = values[int(rng.integers(len(values)))]
        if v not in outputs:
            outputs.append(v)
    for op in g.ops:  # fetch every assign (its update happens only if fetched)
        if op.tag in ("assign", "assign_view") and op.out not in outputs:
            outputs.append(op.out)
    grad = rng.random() < 0.85
    prog = Program(tuple(g.inputs), tuple(g.ops), tuple(outputs), dict(g.info), grad,
                   grad and rng.random() < 0.35)
    prog = prune(prog)
    special, nonfinite = (0.4, 0.15) if rng.random() < 0.5 else (0.0, 0.0)
    several = int(rng.integers(2, 6))
    batches = [several, several, 0, 1] if not variables else [several, several, 1, 0]
    runs = []
    for b in batches:
        feeds = {i.name: sample(i, b, rng, special, nonfinite) for i in prog.inputs
                 if not i.variable}
        runs.append(Run(b, feeds, int(rng.integers(2 ** 31))))
    return prog, runs


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


# -- running each mode --------------------------------------------------------------------------
class Raised:
    """A run that raised: its exception's type and message (and where)."""

    def __init__(self, error: BaseException, phase: str) -> None:
        self.type = type(error).__name__
        self.message = str(error).split("\n")[0][:300]
        self.phase = phase

    def __repr__(self) -> str:
        return f"{self.type} ({self.phase}): {self.message}"


def _np(value):
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach()
        if value._is_zerotensor():  # torch's lazy zeros: reading their memory crashes
            return np.zeros(tuple(value.shape), str(value.dtype).removeprefix("torch."))
        return value.numpy(force=True).copy()
    if isinstance(value, eager.Tensor):
        return np.array(value.detach().numpy())
    return value


def float_dtype(dtype: str) -> bool:
    return dtype in ("float32", "float64")


def grad_targets(prog: Program) -> list[str]:
    return [o for o in prog.outputs if float_dtype(prog.info[o].dtype) and
            not prog.info[o].assigned]


def diff_inputs(prog: Program) -> list[In]:
    return [i for i in prog.inputs if i.differentiable]


def run_tensor_mode(prog: Program, runs: list[Run], mode: str) -> list:
    """eager or torch: each run's {label: array} or Raised; Variables carried between runs."""
    if mode == "torch":
        F, grad = TORCH_F, torch.autograd.grad

        def make(a, rg):  # torch.tensor refuses negative strides: torch gets a copy
            return torch.tensor(np.array(a), requires_grad=rg)
    else:
        F, make, grad = EAGER_F, (lambda a, rg: eager.tensor(a, requires_grad=rg)), \
            eager.autograd.grad
    fn = prog.function(torch_side=mode == "torch")
    state = {i.name: i.init for i in prog.inputs if i.variable}
    assigns = {op.out: op.args[0] for op in prog.ops if op.tag == "assign"}
    results = []
    targets, diffs = grad_targets(prog), diff_inputs(prog)
    for run in runs:
        phase = "forward"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                xs = [make(laid_out(run.feeds[i.name].copy(), i.layout) if not i.variable
                           else state[i.name], i.differentiable) for i in prog.inputs]
                outs = fn(F, *xs)
                values = {("out", n): _np(o) for n, o in zip(prog.outputs, outs)}
                values[("requires_grad",)] = tuple(bool(o.requires_grad) for o in outs)
                if prog.grad and targets and diffs:
                    phase = "gradient"
                    by_name = dict(zip(prog.outputs, outs))
                    ys = [by_name[t] for t in targets if by_name[t].requires_grad]
                    cots = [make(cotangent(run, t, tuple(by_name[t].shape), prog.info[t].dtype),
                                 False) for t in targets if by_name[t].requires_grad]
                    dx = {i.name: xs[prog.inputs.index(i)] for i in diffs}
                    gs = [None] * len(diffs)
                    if ys:
                        gs = list(grad(ys, list(dx.values()), grad_outputs=cots,
                                       create_graph=prog.grad2, allow_unused=True))
                    for i, gv in zip(diffs, gs):
                        values[("grad", i.name)] = None if gv is None else _np(gv)
                    if prog.grad2:
                        phase = "second-order gradient"
                        s = None
                        for i, gv in zip(diffs, gs):
                            if gv is not None:
                                v = make(cotangent(run, "dir/" + i.name, tuple(gv.shape),
                                                   i.dtype), False)
                                term = (gv * v).sum()
                                s = term if s is None else s + term
                        hs = [None] * len(diffs)
                        if s is not None and s.requires_grad:
                            hs = list(grad([s], list(dx.values()), allow_unused=True))
                        for i, h in zip(diffs, hs):
                            values[("grad2", i.name)] = None if h is None else _np(h)
            if mode == "eager":
                numpy_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
                if numpy_warnings:
                    values[("warning",)] = str(numpy_warnings[0].message)
        except Exception as error:  # noqa: BLE001 - any error is an outcome
            results.append(Raised(error, phase))
            continue
        for out, var in assigns.items():
            if ("out", out) in values:
                state[var] = np.asarray(values[("out", out)])
        results.append(values)
    return results


@dataclass
class GraphBuild:
    graph: object
    nodes: dict      # input name -> node
    labels: list
    fetches: list
    cots: dict       # target name -> placeholder
    dirs: dict       # input name -> placeholder
    error: Raised | None = None


def build_graph(prog: Program) -> GraphBuild:
    g = sg.Graph()
    nodes, labels, fetches, cots, dirs = {}, [], [], {}, {}
    phase = "graph build"
    try:
        with g.as_default():
            for i in prog.inputs:
                if i.variable:
                    nodes[i.name] = sg.Variable(i.init, name=i.name)
                else:
                    nodes[i.name] = sg.placeholder(tuple(None if d == "B" else d for d in i.shape),
                                                   i.dtype, name=i.name)
            outs = prog.function()(GRAPH_F, *(nodes[i.name] for i in prog.inputs))
            for n, o in zip(prog.outputs, outs):
                labels.append(("out", n))
                fetches.append(o)
            targets, diffs = grad_targets(prog), diff_inputs(prog)
            if prog.grad and targets and diffs:
                phase = "sg.gradients"
                by_name = dict(zip(prog.outputs, outs))
                for t in targets:
                    shape = tuple(const(d) for d in prog.info[t].shape)
                    cots[t] = sg.placeholder(shape, prog.info[t].dtype, name=f"cot_{t}")
                gs = sg.gradients([by_name[t] for t in targets],
                                  [nodes[i.name] for i in diffs],
                                  grad_ys=[cots[t] for t in targets])
                for i, gv in zip(diffs, gs):
                    if gv is not None:
                        labels.append(("grad", i.name))
                        fetches.append(gv)
                if prog.grad2:
                    s = None
                    for i, gv in zip(diffs, gs):
                        if gv is not None:
                            dirs[i.name] = sg.placeholder(
                                tuple(None if d == "B" else d for d in i.shape), i.dtype,
                                name=f"dir_{i.name}")
                            term = (gv * dirs[i.name]).sum()
                            s = term if s is None else s + term
                    if s is not None:
                        hs = sg.gradients(s, [nodes[i.name] for i in diffs])
                        for i, h in zip(diffs, hs):
                            if h is not None:
                                labels.append(("grad2", i.name))
                                fetches.append(h)
    except Exception as error:  # noqa: BLE001
        return GraphBuild(g, nodes, labels, fetches, cots, dirs, Raised(error, phase))
    return GraphBuild(g, nodes, labels, fetches, cots, dirs)


def graph_feeds(prog: Program, build: GraphBuild, run: Run) -> dict:
    feeds = {}
    for i in prog.inputs:
        if not i.variable:
            feeds[build.nodes[i.name]] = laid_out(run.feeds[i.name].copy(), i.layout)
    for t, node in build.cots.items():
        feeds[node] = cotangent(run, t, dims_at(prog.info[t].shape, run.batch),
                                prog.info[t].dtype)
    for name, node in build.dirs.items():
        inp = next(i for i in prog.inputs if i.name == name)
        shape = tuple(run.batch if d == "B" else d for d in inp.shape)
        feeds[node] = cotangent(run, "dir/" + name, shape, inp.dtype)
    return feeds


@dataclass
class Failure:
    oracle: str          # a | b | c | d | e | f | harness
    kind: str            # raises | no-raise | value | dtype | shape | ...
    label: str           # which fetch
    detail: str
    pipeline: tuple | None = None
    run: int = 0
    signature: str = ""  # the exception's type and normalised message, or the mismatch's shape

    def prekey(self) -> tuple:
        """The class before shrinking: for an error, its normalised message is the class."""
        if self.kind in ("raises", "no-raise") or self.oracle in "defw":
            return (self.oracle, self.kind, self.signature)
        return (self.oracle, self.kind, self.label.split(" ")[0], self.signature)

    def final_key(self, small: Program, pipeline) -> tuple:
        """The class after shrinking: a mismatch is told apart by the ops left in it."""
        if self.kind in ("raises", "no-raise") or self.oracle == "w":
            return self.prekey()
        return self.prekey() + (small.tags(), pipeline if self.oracle != "c" else None)


ORACLES = {
    "a": "numpy pipeline != interpreter passes=()",
    "b": "graph (interpreter passes=()) != eager",
    "c": "eager != torch",
    "d": "a held result or a feed changed by a later run",
    "e": "results share memory",
    "f": "writing into a returned array changed a later result",
    "w": "eager or graph leaked a numpy RuntimeWarning",
    "harness": "the fuzzer itself failed",
}


def _error_signature(raised: "Raised") -> str:
    """The innermost error's message, normalised: the same failure from the interpreter, the
    numpy runtime or a fused kernel (each wraps it differently) gets one signature."""
    message = raised.message
    inner = re.search(r"failed at run time[^:]*: (.*)$", message)
    if inner:
        message = re.sub(r"^\w+(Error|Exception): ", "", inner.group(1))
    elif raised.type == "RunError":
        message = re.sub(r"^.*?: ", "", message)
    return _norm(message)


def _norm(message: str) -> str:
    message = re.sub(r"(arguments?|argument): .*$", "argument", message)
    message = re.sub(r"at [^ ]+:\d+", "at L", message)
    message = re.sub(r"'[^']*'", "'_'", message)
    message = re.sub(r"\([^()]*\)", "(_)", message)
    message = re.sub(r"\d+", "N", message)
    return message[:70]


def run_graph_pipeline(prog: Program, build: GraphBuild, runs: list[Run], pipeline: tuple,
                       failures: list | None = None, debug: bool = True) -> list:
    """Each run's {label: array} or Raised, on one Session; (d) and (e) checked on the way."""
    if build.error is not None:
        return [build.error] * len(runs)
    backend, passes = pipeline
    try:
        sess = sg.Session(build.graph, backend=backend, passes=passes, debug=debug)
    except Exception as error:  # noqa: BLE001
        return [Raised(error, "Session")] * len(runs)
    results, held = [], []
    roots = {("out", n): prog.info[n].root for n in prog.outputs}
    assign_of = {op.args[0]: op.out for op in prog.ops if op.tag == "assign"}
    for r, run in enumerate(runs):
        feeds = graph_feeds(prog, build, run)
        feed_copies = {n: np.array(a, copy=True) for n, a in feeds.items()}
        old_vars = dict(getattr(sess, "_values", {}))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values = sess.run(build.fetches, feeds)
        except Exception as error:  # noqa: BLE001
            results.append(Raised(error, "run"))
            continue
        out = dict(zip(build.labels, values))
        runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        if runtime_warnings and failures is not None:
            failures.append(Failure("w", "warning", "run", str(runtime_warnings[0].message),
                                    pipeline, r, _norm(str(runtime_warnings[0].message))))
        results.append({k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                        for k, v in out.items()})
        held.append((r, out, {k: np.array(v, copy=True) for k, v in out.items()}))
        if failures is None:
            continue
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
                    for state in (old_vars.get(node), getattr(sess, "_values", {}).get(node)):
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
    if failures is not None:  # (d) held results unchanged by later runs
        for r, out, copies in held:
            for k, v in out.items():
                if not same(copies[k], v):
                    failures.append(Failure("d", "held result changed", f"{k[0]} {k[1]}",
                                            f"the result of run {r} changed after later runs",
                                            pipeline, r, "held"))
    return results


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
                                pipeline, 1, _error_signature(Raised(error, "run"))))
        return failures
    for label, a, b in zip(build.labels, expect[1], second):
        if not same(a, b):
            failures.append(Failure("f", "later result changed", f"{label[0]} {label[1]}",
                                    f"after writing into {scrubbed} of run 0, run 1's {label} "
                                    f"is {np.asarray(b).ravel()[:4]} not "
                                    f"{np.asarray(a).ravel()[:4]}", pipeline, 1, ""))
    return failures


# -- comparing outcomes -------------------------------------------------------------------------
TOLERANCE = {  # (rtol, atol relative to the reference's largest finite magnitude)
    "a": {"float64": (1e-10, 1e-12), "float32": (2e-4, 2e-5)},
    "b": {"float64": (1e-10, 1e-12), "float32": (2e-4, 2e-5)},
    "c": {"float64": (1e-7, 1e-9), "float32": (2e-3, 2e-4)},
}


def close(ref, got, oracle, low=False, scale=1.0):
    """None if equal enough, else (kind, signature, detail)."""
    if ref is None and got is None:
        return None
    if ref is None or got is None:
        present = got if ref is None else ref
        if not np.any(np.asarray(present)):
            return None  # no gradient and a zero gradient are the same
        return ("value", "missing", f"{'reference' if ref is None else 'result'} is None, "
                "the other is not zero")
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return ("shape", "shape", f"shape {got.shape}, expected {ref.shape}")
    if ref.dtype != got.dtype:
        return ("dtype", f"{ref.dtype}->{got.dtype}", f"dtype {got.dtype}, expected {ref.dtype}")
    if ref.dtype.kind not in "fc":
        if np.array_equal(ref, got):
            return None
        bad = np.argwhere(ref != got)[0]
        return ("value", "exact", f"at {tuple(bad)}: {got[tuple(bad)]!r}, expected "
                f"{ref[tuple(bad)]!r}")
    rtol, atol = TOLERANCE[oracle]["float64" if ref.dtype == np.float64 and not low
                                   else "float32"]
    finite = np.isfinite(ref)
    if finite.any():  # the noise of a value near 0 is that of the run's largest values
        scale = max(scale, float(np.abs(ref[finite]).max()))
    ok = np.isclose(got, ref, rtol=rtol, atol=atol * scale, equal_nan=True)
    ok |= (ref == got)  # infinities
    if ok.all():
        return None
    bad = tuple(np.argwhere(~ok)[0])
    r, q = ref[bad], got[bad]
    sig = "nan" if np.isnan(r) != np.isnan(q) else "inf" if np.isinf(r) or np.isinf(q) \
        else "finite"
    return ("value", sig, f"at {bad}: {q!r}, expected {r!r} ({(~ok).sum()} of {ok.size} differ)")


def compare(ref_results, got_results, oracle, pipeline=None, ref_name="reference",
            got_name="result", prog=None) -> list:
    failures = []
    low, skip = set(), set()
    if prog is not None:
        every_grad = {(kind, i.name) for i in prog.inputs for kind in ("grad", "grad2")}
        low = {("out", n) for n in prog.outputs if prog.info[n].low}
        if any(i.low for i in prog.info.values()):
            low |= every_grad
        if oracle == "c":  # see EXTREMUM_TAGS
            skip = {("out", n) for n in prog.outputs if prog.info[n].fragile}
            if any(i.fragile for i in prog.info.values()):
                skip |= every_grad
    for r, (ref, got) in enumerate(zip(ref_results, got_results)):
        if isinstance(ref, Raised) and isinstance(got, Raised):
            continue
        if isinstance(got, Raised):
            failures.append(Failure(oracle, "raises", got.phase, f"{got_name} raised {got!r}; "
                                    f"{ref_name} did not", pipeline, r,
                                    _error_signature(got)))
            continue
        if isinstance(ref, Raised):
            failures.append(Failure(oracle, "no-raise", ref.phase, f"{ref_name} raised {ref!r}; "
                                    f"{got_name} did not", pipeline, r,
                                    _error_signature(ref)))
            continue
        if oracle == "c" and ref.get(("requires_grad",)) != got.get(("requires_grad",)):
            failures.append(Failure(oracle, "requires_grad", "out", f"requires_grad "
                                    f"{got.get(('requires_grad',))}, expected "
                                    f"{ref.get(('requires_grad',))}", pipeline, r, "rg"))
        labels = [k for k in {**ref, **got} if k[0] in ("out", "grad", "grad2")
                  and k not in skip]
        scale = 1.0
        for k in labels:
            v = ref.get(k)
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
                finite = v[np.isfinite(v)]
                if finite.size:
                    scale = max(scale, float(np.abs(finite).max()))
        for label in labels:
            problem = close(ref.get(label), got.get(label), oracle, label in low, scale)
            if problem is not None:
                kind, sig, detail = problem
                failures.append(Failure(oracle, kind, f"{label[0]} {label[1]}", detail,
                                        pipeline, r, sig))
                if kind != "value":
                    break
    return failures


# -- one program through every oracle -----------------------------------------------------------
@dataclass
class Restrict:
    """Which part of the check to run (all of it by default; one oracle when shrinking)."""
    pipelines: list | None = None
    eager: bool = True
    torch: bool = True
    write: list | None = None


def random_orders(rng: np.random.Generator, n: int) -> list:
    names = [*PASSES, "plan_memory"]
    out = []
    for _ in range(n):
        order = [names[k] for k in rng.permutation(len(names))]
        if rng.random() < 0.4:
            order = order[:int(rng.integers(1, len(order)))]
        if rng.random() < 0.3:
            order = order + [str(rng.choice(names[:-1]))]
        out.append(("numpy", tuple(order)))
    return out


def check(prog: Program, runs: list[Run], restrict: Restrict | None = None,
          extra_pipelines: tuple = ()) -> list[Failure]:
    restrict = restrict or Restrict()
    failures: list[Failure] = []
    with np.errstate(all="ignore"):
        try:
            failures += _check(prog, runs, restrict, extra_pipelines)
        except Exception as error:  # noqa: BLE001
            failures.append(Failure("harness", "harness", "harness",
                                    traceback.format_exc(limit=-3), None, 0,
                                    f"{type(error).__name__}: {_norm(str(error))}"))
    return failures


def _check(prog, runs, restrict, extra_pipelines):
    failures = []
    eager_results = None
    if restrict.eager:
        eager_results = run_tensor_mode(prog, runs, "eager")
        for r, e in enumerate(eager_results):
            if isinstance(e, dict) and ("warning",) in e:
                failures.append(Failure("w", "warning", "eager", e[("warning",)], None, r,
                                        _norm(e[("warning",)])))
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
    if f.oracle == "c":
        return Restrict(pipelines=[], eager=True, torch=True, write=[])
    if f.oracle == "b":
        return Restrict(pipelines=[], eager=True, torch=False, write=[])
    if f.oracle == "f":
        return Restrict(pipelines=[], eager=False, torch=False, write=[f.pipeline])
    if f.oracle == "w" and f.pipeline is None:
        return Restrict(pipelines=[], eager=True, torch=False, write=[])
    if f.pipeline is None or f.pipeline == REFERENCE:
        return Restrict(pipelines=[], eager=f.oracle == "b", torch=False, write=[])
    return Restrict(pipelines=[f.pipeline], eager=False, torch=False, write=[])


# -- shrinking ----------------------------------------------------------------------------------
def _substitute(prog: Program, old: str, new: str) -> Program:
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
    deadline = time.monotonic() + budget_s
    restrict = restriction_for(failure)
    key = failure.prekey()
    calls, last = [0], [failure]

    def fails(p, rs, pipeline=None):
        if p is None or not p.outputs or time.monotonic() > deadline:
            return False
        calls[0] += 1
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
    return prog, runs, pipeline, calls[0], last[0]


# -- reproducers --------------------------------------------------------------------------------
def _literal(array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return f"np.array({array.tolist()!r}, bool)"
    if array.size == 0:
        return f"np.zeros({array.shape}, {str(array.dtype)!r})"
    return f"np.array({array.tolist()!r}, {str(array.dtype)!r})"


def _torch_source(prog: Program) -> str:
    source = prog.source("torch_program")
    source = re.sub(r"\.max\(([^()]*)\)\.values", r".amax(\1)", source)
    return re.sub(r"\.min\(([^()]*)\)\.values", r".amin(\1)", source)


HEADER = """\
import numpy as np
from types import SimpleNamespace
import staticgraph as sg
import eager
from staticgraph.ops import functional as shared
nan, inf = float("nan"), float("inf")
FUNCS = {funcs!r}
DTYPES = {dtypes!r}
G = SimpleNamespace(**{{n: getattr(shared, n) for n in FUNCS}}, tensor=sg.constant,
                    assign=sg.assign, **{{d: np.dtype(d) for d in DTYPES}})
E = SimpleNamespace(**{{n: getattr(shared, n) for n in FUNCS}}, tensor=eager.tensor,
                    assign=lambda v, x: x.to(v.dtype), **{{d: np.dtype(d) for d in DTYPES}})
"""
TORCH_HEADER = """\
import torch
import torch.nn.functional as tf
T = SimpleNamespace(gelu=tf.gelu, layer_norm=tf.layer_norm, cross_entropy=tf.cross_entropy,
                    mse_loss=tf.mse_loss, linear=tf.linear, cat=torch.cat, stack=torch.stack,
                    where=torch.where, softmax=torch.softmax, log_softmax=torch.log_softmax,
                    softplus=tf.softplus, relu=torch.relu, tensor=torch.tensor,
                    assign=lambda v, x: x.to(v.dtype), **{d: getattr(torch, d) for d in DTYPES})
def torch_tensor(a, requires_grad=False):  # torch.tensor refuses negative strides: a copy
    return torch.tensor(np.array(a), requires_grad=requires_grad)
"""
LAYOUT = """\
def fed(run, name):  # a fresh copy of a feed, in the fuzzer's layout (some not contiguous)
    a, layout = run["feeds"][name].copy(), LAYOUT.get(name, "c")
    if a.ndim == 0 or layout == "c":
        return a
    return {"f": np.asfortranarray, "T": lambda a: np.ascontiguousarray(a.T).T,
            "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
            "reversed": lambda a: np.flip(np.flip(a, 0).copy(), 0)}[layout](a)
"""
DIFFERENCES = """\
def differences(x, y, path=""):  # print where two results differ
    if isinstance(x, (str, Exception)) or isinstance(y, (str, Exception)):
        print("  ", path or "run", ":", x if isinstance(x, (str, Exception)) else "values", "|",
              y if isinstance(y, (str, Exception)) else "values")
    elif isinstance(x, dict):
        for k in x:
            differences(x[k], y.get(k), f"{path}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        for i, (a, b) in enumerate(zip(x, y)):
            differences(a, b, f"{path}[{i}]")
    elif x is None or y is None:
        if x is not None or y is not None:
            print("  ", path, ":", x, "|", y)
    else:
        a, b = np.asarray(x), np.asarray(y)
        if a.shape != b.shape or a.dtype != b.dtype or not np.allclose(
                a, b, rtol=1e-7, atol=1e-9, equal_nan=True):
            print("  ", path, ":", a.dtype, a.shape, a.ravel()[:6], "|", b.dtype, b.shape,
                  b.ravel()[:6])
"""
COT = """\
def cot(run, name, dtype):  # the fuzzer's cotangents and second-order directions
    shape = run["shapes"][name]
    return np.random.default_rng([run["seed"], *name.encode()]).standard_normal(shape).astype(dtype)
"""


def reproducer(prog: Program, runs: list[Run], failure: Failure, pipeline) -> str:
    oracle = failure.oracle
    tensor_side = oracle in ("b", "c") or (oracle == "w" and failure.pipeline is None)
    lines = [f"# fuzz failure ({oracle}) {ORACLES[oracle]}: {failure.kind} at {failure.label}",
             f"#   {failure.detail[:300]}",
             HEADER.format(funcs=FUNCS, dtypes=DTYPES)]
    if oracle == "c":
        lines.append(TORCH_HEADER)
    lines.append(DIFFERENCES)
    lines.append(prog.source())
    if oracle == "c" and _torch_source(prog) != prog.source("torch_program"):
        lines.append("# KNOWN_DIFFERENCES['max_dim_ties']: torch runs amax/amin for max/min(dim)")
        lines.append(_torch_source(prog))
    layouts = {i.name: i.layout for i in prog.inputs if i.layout != "c" and not i.variable}
    lines.append(f"LAYOUT = {layouts!r}")
    lines.append(LAYOUT)
    targets, diffs = grad_targets(prog), diff_inputs(prog)
    grads = bool(prog.grad and targets and diffs)
    if grads:
        lines.append(COT)
    lines.append("runs = [")
    for run in runs:
        items = []
        for i in prog.inputs:
            if i.variable:
                continue
            lit = _literal(run.feeds[i.name])
            items.append(f"{i.name!r}: {lit}")
        entry = f"    dict(seed={run.seed}, feeds={{" + ",\n                 ".join(items) + "}"
        if grads:
            shapes = {t: dims_at(prog.info[t].shape, run.batch) for t in targets}
            shapes.update({"dir/" + i.name: tuple(run.batch if d == "B" else d for d in i.shape)
                           for i in diffs})
            entry += f",\n         shapes={shapes!r}"
        lines.append(entry + "),")
    lines.append("]")
    states = ", ".join(f"{i.name!r}: {_literal(i.init)}" for i in prog.inputs if i.variable)
    lines.append(f"INITIAL = {{{states}}}  # Variables' initial values")
    if tensor_side:
        lines += _tensor_mode_source(prog, grads, targets, diffs, oracle)
    if oracle != "c" and not (oracle == "w" and failure.pipeline is None):
        lines += _graph_source(prog, grads, targets, diffs, oracle, pipeline or failure.pipeline)
    return "\n".join(lines) + "\n"


def _tensor_mode_source(prog, grads, targets, diffs, oracle):
    out = ["def run_tensors(F, tensor, grad, program, run, state):"]
    args = []
    for i in prog.inputs:
        src = f"state[{i.name!r}]" if i.variable else f"fed(run, {i.name!r})"
        args.append(f"tensor({src}, requires_grad={i.differentiable})")
    out.append(f"    xs = [{', '.join(args)}]")
    out.append("    outs = program(F, *xs)")
    out.append("    result = {'out': [o.detach().numpy() for o in outs],")
    out.append("              'requires_grad': [o.requires_grad for o in outs]}")
    for op in prog.ops:
        if op.tag == "assign" and op.out in prog.outputs:
            out.append(f"    state[{op.args[0]!r}] = "
                       f"outs[{prog.outputs.index(op.out)}].detach().numpy()")
    if grads:
        ti = [prog.outputs.index(t) for t in targets]
        out.append(f"    ys = [(outs[k], name) for k, name in zip({ti}, {targets!r}) "
                   "if outs[k].requires_grad]")
        out.append("    cots = [tensor(cot(run, name, str(y.dtype).replace('torch.', ''))) "
                   "for y, name in ys]")
        out.append(f"    diffs = [xs[k] for k in {[prog.inputs.index(i) for i in diffs]}]")
        out.append(f"    gs = grad([y for y, _ in ys], diffs, grad_outputs=cots, "
                   f"create_graph={prog.grad2}, allow_unused=True) if ys else [None] * "
                   "len(diffs)")
        out.append("    result['grad'] = [None if g is None else g.detach().numpy() for g in gs]")
        if prog.grad2:
            names = [i.name for i in diffs]
            out.append(f"    terms = [(g * tensor(cot(run, 'dir/' + n, str(g.dtype).replace("
                       f"'torch.', '')))).sum() for g, n in zip(gs, {names!r}) if g is not None]")
            out.append("    s = sum(terms[1:], terms[0]) if terms else None")
            out.append("    hs = grad([s], diffs, allow_unused=True) if s is not None and "
                       "s.requires_grad else [None] * len(diffs)")
            out.append("    result['grad2'] = [None if h is None else h.detach().numpy() "
                       "for h in hs]")
    out.append("    return result")
    out.append("")
    modes = [("eager", "E", "eager.tensor", "eager.autograd.grad", "program")]
    if oracle == "c":
        fn = "torch_program" if _torch_source(prog) != prog.source("torch_program") \
            else "program"
        modes.append(("torch", "T", "torch_tensor", "torch.autograd.grad", fn))
    for mode, var, tensor, grad, fn in modes:
        out += [f"state, {mode}_results = dict(INITIAL), []",
                "for run in runs:",
                "    try:",
                f"        {mode}_results.append(run_tensors({var}, {tensor}, {grad}, {fn}, run, "
                "state))",
                "    except Exception as error:",
                f"        {mode}_results.append(f'{{type(error).__name__}}: {{error}}')"]
    if oracle == "c":
        out += ["for r, (e, t) in enumerate(zip(eager_results, torch_results)):",
                "    print(f'run {r}: eager | torch differ at')",
                "    differences(e, t)"]
    return out


def _graph_source(prog, grads, targets, diffs, oracle, pipeline):
    names = ", ".join(i.name for i in prog.inputs)
    out = ["", "g = sg.Graph()", "with g.as_default():"]
    for i in prog.inputs:
        if i.variable:
            out.append(f"    {i.name} = sg.Variable(INITIAL[{i.name!r}], name={i.name!r})")
        else:
            shape = tuple(None if d == "B" else d for d in i.shape)
            out.append(f"    {i.name} = sg.placeholder({shape}, {i.dtype!r}, name={i.name!r})")
    out.append(f"    outs = program(G, {names})")
    out.append("    fetches = list(outs)")
    if grads:
        ti = [prog.outputs.index(t) for t in targets]
        out.append(f"    cots = {{name: sg.placeholder(tuple(None for _ in outs[k].shape), "
                   f"outs[k].dtype) for k, name in zip({ti}, {targets!r})}}")
        out.append(f"    diffs = [{', '.join(i.name for i in diffs)}]")
        out.append(f"    gs = sg.gradients([outs[k] for k in {ti}], diffs, "
                   "grad_ys=list(cots.values()))")
        out.append("    fetches += [g_ for g_ in gs if g_ is not None]")
        if prog.grad2:
            out.append("    dirs = {'dir/' + x.name: sg.placeholder(tuple(None for _ in x.shape),"
                       " x.dtype) for x, g_ in zip(diffs, gs) if g_ is not None}")
            out.append("    terms = [(g_ * dirs['dir/' + x.name]).sum() for x, g_ in "
                       "zip(diffs, gs) if g_ is not None]")
            out.append("    s = sum(terms[1:], terms[0])")
            out.append("    fetches += [h for h in sg.gradients(s, diffs) if h is not None]")
    out.append("")
    out.append("def feed(run):")
    pairs = ", ".join(f"{i.name}: fed(run, {i.name!r})" for i in prog.inputs
                      if not i.variable)
    out.append(f"    d = {{{pairs}}}")
    if grads:
        out.append("    d.update({c: cot(run, name, c.dtype) for name, c in cots.items()})")
        if prog.grad2:
            out.append("    d.update({c: cot(run, name, c.dtype) for name, c in dirs.items()})")
    out.append("    return d")
    out.append("")
    if oracle == "b":
        out += ["graph = sg.Session(g, backend='interpreter', passes=())",
                "for run, e in zip(runs, eager_results):",
                "    try:",
                "        print('graph:', graph.run(fetches, feed(run)))",
                "    except Exception as error:",
                "        print('graph:', f'{type(error).__name__}: {error}')",
                "    print('eager:', e)"]
        return out
    backend, passes = pipeline
    session = f"sg.Session(g, backend={backend!r}, passes={passes!r})"
    if oracle == "a":
        out += ["reference = sg.Session(g, backend='interpreter', passes=())",
                f"sess = {session}",
                "for r, run in enumerate(runs):",
                "    got = []",
                "    for s in (reference, sess):",
                "        try:",
                "            got.append(s.run(fetches, feed(run)))",
                "        except Exception as error:",
                "            got.append(f'{type(error).__name__}: {error}')",
                "    print(f'run {r}: interpreter passes=() | {sess.backend} passes={sess.passes} "
                "differ at')",
                "    differences(*got)"]
        return out
    if oracle == "f":
        seq = "[runs[0], runs[0]]" if not prog.has_variables else "runs[:2]"
        out += [f"seq = {seq}",
                f"plain, written = {session}, {session}",
                "expect = [plain.run(fetches, feed(run)) for run in seq]",
                "for v in written.run(fetches, feed(seq[0])):  # the user writes into results",
                "    if isinstance(v, np.ndarray) and v.size and v.flags.writeable:",
                "        v[...] = 7",
                "second = written.run(fetches, feed(seq[1]))",
                "for a, b in zip(expect[1], second):",
                "    print('same' if np.array_equal(a, b, equal_nan=a.dtype.kind == 'f') else "
                "'CHANGED', b, 'expected', a)"]
        return out
    out += [f"sess = {session}",
            "held = []",
            "for run in runs:",
            "    f = feed(run)",
            "    kept = {k: np.array(v, copy=True) for k, v in f.items()}",
            "    before = {v: sess._values.get(v) for v in g.variables}",
            "    got = sess.run(fetches, f)",
            "    held.append((got, [np.array(v, copy=True) for v in got]))",
            "    for k, v in f.items():",
            "        if not np.array_equal(kept[k], v, equal_nan=v.dtype.kind == 'f'):",
            "            print('feed', k.name, 'was written')",
            "    for i, a in enumerate(got):",
            "        for j, b in enumerate(got[:i]):",
            "            if np.shares_memory(a, b):",
            "                print('results', j, 'and', i, 'share memory')",
            "        for k, v in f.items():",
            "            if i < len(outs) and np.shares_memory(a, v):",
            "                print('result', i, 'shares memory with feed', k.name)",
            "        for var in g.variables:",
            "            for value in (before[var], sess._values.get(var)):",
            "                if value is not None and np.shares_memory(a, value):",
            "                    print('result', i, 'shares memory with Variable', var.name,",
            "                          'writable:', a.flags.writeable)",
            "for r, (got, copies) in enumerate(held):",
            "    for a, b in zip(got, copies):",
            "        if not np.array_equal(a, b, equal_nan=a.dtype.kind == 'f'):",
            "            print('the result of run', r, 'changed to', a, 'from', b)"]
    return out


# -- the driver ---------------------------------------------------------------------------------
@dataclass
class Stats:
    programs: int = 0
    failures: Counter = field(default_factory=Counter)     # class -> occurrences
    classes: dict = field(default_factory=dict)            # class -> reproducer
    prekeys: Counter = field(default_factory=Counter)
    names: dict = field(default_factory=dict)               # key -> class name
    shrink_calls: int = 0


def describe(f: Failure, small: Program, pipeline) -> str:
    where = ""
    if pipeline is not None and f.oracle not in ("b", "c"):
        where = f" [{pipeline[0]} passes={','.join(pipeline[1]) or '()'}]"
    return (f"({f.oracle}) {f.kind} in {f.label.split(' ')[0]}: {f.signature or '-'}"
            f" | ops {','.join(small.tags()) or '-'}{where}")


def fuzz_one(seed: int, stats: Stats, max_ops: int, report=print, shrink_budget: float = 20.0,
             pipelines_extra: int = 2) -> list:
    prog, runs = generate(seed, max_ops=max_ops)
    rng = np.random.default_rng(seed + 1)
    extra = tuple(random_orders(rng, pipelines_extra))
    failures = check(prog, runs, extra_pipelines=extra)
    stats.programs += 1
    found = []
    for key, f in {f.prekey(): f for f in failures}.items():
        stats.prekeys[key] += 1
        if f.oracle == "harness":
            name = f"(harness) {f.signature}"
            stats.failures[name] += 1
            if name not in stats.classes:
                stats.classes[name] = f"# seed {seed}\n{f.detail}"
                report(f"\n=== new failure class: {name}  (seed {seed})\n{f.detail}")
            found.append(name)
            continue
        known = stats.names.get(key)
        if known is not None and (f.kind in ("raises", "no-raise") or f.oracle == "w"):
            stats.failures[known] += 1  # an error's class is its message: nothing to shrink
            found.append(known)
            continue
        # a mismatch: shrink a few of each, then only now and then
        if stats.prekeys[key] > 3 and rng.random() > 0.1:
            stats.failures[stats.names.get(key) or describe(f, prog, f.pipeline)] += 1
            continue
        small, small_runs, pipeline, calls, f = shrink(prog, runs, f, shrink_budget)
        stats.shrink_calls += calls
        final = f.final_key(small, pipeline)
        name = stats.names.setdefault(final, describe(f, small, pipeline))
        stats.names.setdefault(key, name)
        stats.failures[name] += 1
        found.append(name)
        if name not in stats.classes:
            source = reproducer(small, small_runs, f, pipeline)
            stats.classes[name] = f"# program seed {seed}\n{source}"
            report(f"\n=== new failure class: {name}  (program seed {seed}; "
                   f"{len(prog.ops)} ops shrunk to {len(small.ops)})\n{source}")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-ops", type=int, default=40)
    parser.add_argument("--quiet", action="store_true", help="no reproducers while running")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    print(f"fuzzing for {args.minutes} min from seed {seed} (torch: "
          f"{'yes' if torch is not None else 'no, oracle (c) skipped'})", flush=True)
    stats = Stats()
    start = time.monotonic()
    end = start + args.minutes * 60
    last = start
    k = 0
    while time.monotonic() < end:
        try:
            fuzz_one(seed * 1_000_003 + k, stats, args.max_ops,
                     report=(lambda *a: None) if args.quiet else
                     (lambda *a: print(*a, flush=True)))
        except Exception:  # noqa: BLE001 - the fuzzer's own bug: report it, go on
            name = "(harness) " + traceback.format_exc(limit=-1).strip().splitlines()[-1]
            stats.failures[name] += 1
            if name not in stats.classes:
                stats.classes[name] = traceback.format_exc()
                print(f"\n=== {name} (program seed {seed * 1_000_003 + k})\n"
                      f"{traceback.format_exc()}", flush=True)
        k += 1
        now = time.monotonic()
        if now - last > 15:
            last = now
            print(f"[{(now - start) / 60:5.1f} min] programs {stats.programs}, failures "
                  f"{sum(stats.failures.values())}, classes {len(stats.classes)}", flush=True)
    print(f"\n==== totals: {stats.programs} programs in {(time.monotonic() - start) / 60:.1f} min "
          f"from seed {seed}; {len(stats.classes)} failure classes, "
          f"{sum(stats.failures.values())} failing checks ====")
    for name, count in stats.failures.most_common():
        print(f"{count:6d}  {name}")
    for text, count in GENERATOR_ERRORS.items():
        print(f"{count:6d}  (generator error, op skipped) {text.strip().splitlines()[-1]}")
    if args.quiet:
        for name, source in stats.classes.items():
            print(f"\n=== {name}\n{source}")
    return 1 if stats.classes else 0


if __name__ == "__main__":
    sys.exit(main())
