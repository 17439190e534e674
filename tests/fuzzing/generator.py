"""Growing a random program op by op (the op templates are in ``ops_*``), and its runs."""

from __future__ import annotations

import itertools
import math
import traceback
from collections import Counter

import numpy as np

import eager

from .ops_control import t_cond, t_scan, t_while_loop
from .ops_elementwise import t_binary, t_cast, t_intmix, t_unary, t_where
from .ops_layers import t_assign, t_composite, t_conv, t_matmul
from .ops_shapes import t_concat, t_index, t_movement, t_reduce
from .programs import BATCH, NEEDED_B, PROBE_B, In, Info, K, Op, Program, Run, const, prune, sample
from .surface import DTYPES, PROBE_F, torch

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


class Generator:
    """Grows a program op by op; each op is tried on the probe mode (torch if installed, else
    eager, its control flow checked as a graph's is: surface.PROBE_F) at every batch size of
    PROBE_B, so every op it keeps is valid and its shape is known at each of them."""

    def __init__(self, rng: np.random.Generator, variables: bool) -> None:
        self.rng, self.variables = rng, variables
        self.F = PROBE_F
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

    def try_op(self, expr, args, tag, view=False, decides=False) -> bool:
        """Add ``out = expr(*args)`` if it is valid; ``decides``: it branches on data (a cond,
        a loop's test), so it is fragile as a comparison is."""
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
        decision = tag in EXTREMUM_TAGS or decides
        fragile = any(i.fragile for i in infos) or (decision and not all(i.exact for i in infos))
        self.info[out] = Info(tuple(formula), dtype, root, assigned, low, exact, fragile)
        self.ops.append(Op(out, expr, tuple(args), tag, view))
        return True

    # helpers for templates
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

    def dim(self, name):
        """A dimension of ``name``, sometimes counted from the end; None for a 0-d value."""
        shape = self.shape(name)
        if not shape:
            return None
        k = int(self.rng.choice(list(range(len(shape)))))
        return k - len(shape) if self.rng.random() < 0.4 else k


GENERATOR_ERRORS: Counter = Counter()  # the fuzzer's own bugs while generating

TEMPLATES = [(t_unary, 6), (t_binary, 6), (t_where, 2), (t_reduce, 3), (t_movement, 3),
             (t_index, 2), (t_matmul, 2), (t_cast, 1.5), (t_intmix, 0.7), (t_concat, 1),
             (t_composite, 2.5), (t_conv, 1), (t_cond, 1.5), (t_while_loop, 1.2), (t_scan, 1.2)]


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
