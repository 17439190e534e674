"""Op templates for control flow: ``F.cond``, ``F.while_loop`` and ``F.scan`` (staticgraph's
functions on graph nodes and eager tensors, plain Python on torch: see surface.py) whose
bodies apply a few random ops to their arguments and to values of the program they read from
outside, now and then with one nested in another's body. Each is one expression with lambdas,
so shrinking and the reproducer handle it as any other op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .programs import BATCH, K, const, float_dtype, picks

if TYPE_CHECKING:
    from .generator import Generator

THRESHOLDS = ("0.3", "-0.7", "1.3", "2.9", "-1.1", "0.05")  # no sum of exact feeds lands on one
PREDICATES = ("@.sum()", "(@ * @).sum()", "@.abs().sum()", "@.mean()")
# shape- and dtype-keeping steps of a body (@: the value so far; D: one of its dimensions)
UNARY = ("@.tanh()", "(@ * 0.5)", "@.sin()", "(@.abs() + 0.5).log()", "@.sigmoid()",
         "F.relu(@)", "(@ * 0.7 - 0.25).exp()", "(@ * @)", "@.clamp(-1.0, 1.0)", "(-@)",
         "F.softplus(@)")
REDUCING = ("(@ - @.mean(D, keepdim=True))", "@.softmax(D)", "@.cumsum(D)",
            "(@ / (@.abs().sum() + 1))")
CAPTURE_FITTING = ("(@ + X)", "(@ * X)", "(@ - X.tanh())")   # X broadcasts into @
CAPTURE_SCALAR = ("(@ + X.sum())", "(@ * X.sum().tanh())", "(@ - X.mean())")
FINAL = (".sum(D)", ".mean(D, keepdim=True)", ".sum()")       # both branches end alike


@dataclass(frozen=True)
class Local:
    """A value a body can read: its source (a lambda's parameter, an expression of one, or
    ``{k}`` for a value of the program), its shape formula and dtype."""
    src: str
    shape: tuple
    dtype: str


def fits_into(small: tuple, big: tuple) -> bool:
    """``small`` broadcasts to ``big`` without growing it."""
    return len(small) <= len(big) and all(
        x == y or x == K(1) for x, y in zip(reversed(small), reversed(big)))


class Expr:
    """One control-flow op's expression being written: the program values it reads (its
    ``{k}`` operands), fresh names for its lambdas' parameters, and whether it decides
    anything from data (a cond or a loop's test: such a decision may flip where torch rounds
    differently, as a comparison's does)."""

    def __init__(self, g: Generator) -> None:
        self.g, self.rng = g, g.rng
        self.args: list[str] = []
        self.count = 0
        self.decides = False

    def value(self, name: str) -> Local:
        if name not in self.args:
            self.args.append(name)
        info = self.g.info[name]
        return Local(f"{{{self.args.index(name)}}}", info.shape, info.dtype)

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def choose(self, options) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def dim(self, shape: tuple) -> str:
        return str(int(self.rng.integers(-len(shape), len(shape))))

    def pred(self, x: Local) -> str:
        self.decides = True
        return (f"{self.choose(PREDICATES).replace('@', x.src)} "
                f"{self.choose(('>', '<'))} {self.choose(THRESHOLDS)}")

    def chain(self, x: Local, depth: int) -> str:
        """``x`` through 1 to 3 steps that keep its shape and dtype, some reading values of
        the program; with ``depth`` left, a step may be control flow itself."""
        src = x.src
        for _ in range(int(self.rng.integers(1, 4))):
            r = self.rng.random()
            here = Local(src, x.shape, x.dtype)
            if depth and r < 0.12:
                src = self.nested(here, depth - 1)
            elif r < 0.45:
                src = self.capture(here)
            else:
                short = len(src) < 40  # (a step that repeats @ doubles the source)
                options = [t for t in (REDUCING if x.shape and r < 0.6 else UNARY)
                           if short or t.count("@") == 1]
                template = self.choose(options)
                if "D" in template:
                    template = template.replace("D", self.dim(x.shape))
                src = template.replace("@", src)
        return src

    def capture(self, x: Local) -> str:
        """``x`` combined with a value of the program read from inside the body."""
        g = self.g
        fitting = g.pick(lambda n, i: i.dtype == x.dtype and fits_into(i.shape, x.shape))
        if fitting is not None and self.rng.random() < 0.5:
            template, other = self.choose(CAPTURE_FITTING), fitting
        else:
            other = g.pick(lambda n, i: i.dtype == x.dtype)
            if other is None:
                return x.src
            template = self.choose(CAPTURE_SCALAR)
        return template.replace("X", self.value(other).src).replace("@", x.src)

    def step(self, v: Local, depth: int) -> str:
        """A loop body's new value of ``v``, halved now and then (a norm test then ends)."""
        new = self.chain(v, depth)
        return f"({new} * 0.5)" if self.rng.random() < 0.5 else new

    def nested(self, x: Local, depth: int) -> str:
        """Control flow inside a body, keeping ``x``'s shape and dtype."""
        kind = self.choose(("cond", "while_loop", "scan") if x.shape else ("cond", "while_loop"))
        if kind == "cond":
            return (f"F.cond({self.pred(x)}, lambda: {self.chain(x, depth)}, "
                    f"lambda: {self.chain(x, depth)})")
        if kind == "while_loop":
            u = self.fresh("u")
            local = Local(u, x.shape, x.dtype)
            return (f"F.while_loop(lambda {u}: {self.pred(local)}, lambda {u}: "
                    f"{self.step(local, depth)}, {x.src}, "
                    f"maximum_iterations={int(self.rng.integers(0, 5))})")
        a, e = self.fresh("a"), self.fresh("e")
        body = self.chain(Local(f"({a} * 0.5 + {e})", x.shape[1:], x.dtype), depth)
        reverse = ", reverse=True" if self.rng.random() < 0.4 else ""
        return (f"({x.src} + F.scan(lambda {a}, {e}: {body}, {x.src}, "
                f"initializer={x.src}.mean(0){reverse}).sum(0))")

    def add(self, expr: str, tag: str) -> bool:
        return self.g.try_op(expr, tuple(self.args), tag, decides=self.decides)


def _float(name, info) -> bool:
    return float_dtype(info.dtype)


@picks(_float)
def t_cond(g: Generator, a: str) -> bool:
    """A cond on a sum of a value: branches of a few ops each on one or two values, alike in
    shape and dtype, sometimes ending in the same reduction."""
    e, rng = Expr(g), g.rng
    pred = e.pred(e.value(g.pick(_float)))
    targets = [a]
    if rng.random() < 0.3:
        targets.append(g.pick(_float))
    finals = [e.choose(FINAL).replace("D", e.dim(g.shape(t))) if g.shape(t) and
              rng.random() < 0.3 else "" for t in targets]
    as_tuple = len(targets) > 1 or rng.random() < 0.1

    def branch() -> str:
        items = []
        for t, final in zip(targets, finals):
            alt = g.pick(lambda n, i: n != t and i.shape == g.shape(t) and
                         i.dtype == g.dtype(t))
            x = e.value(alt if alt is not None and rng.random() < 0.3 else t)
            items.append(e.chain(x, 1) + final)
        return f"({', '.join(items)},)" if as_tuple else items[0]

    expr = f"F.cond({pred}, lambda: {branch()}, lambda: {branch()})"
    if as_tuple:
        expr += f"[{int(rng.integers(len(targets)))}]"
    return e.add(expr, "cond")


@picks(_float)
def t_while_loop(g: Generator, a: str) -> bool:
    """A while loop over a value of a few trips at most, decided by a norm of the value or a
    counter, whose body reads other values of the program."""
    e, rng = Expr(g), g.rng
    x = e.value(a)
    v = e.fresh("v")
    var = Local(v, x.shape, x.dtype)
    test, step = e.pred(var), e.step(var, 1)
    bound = f", maximum_iterations={int(rng.integers(0, 5))}"
    kind = e.choose(("halve", "counter", "accumulate"))
    if kind == "halve":
        return e.add(f"F.while_loop(lambda {v}: {test}, lambda {v}: {step}, {x.src}{bound})",
                     "while_loop")
    if kind == "counter":  # (its final value, an int64 count of trips, is a result too)
        i = e.fresh("i")
        test = f"({i} < {int(rng.integers(1, 5))})" + (f" & ({test})" if rng.random() < 0.7
                                                        else "")
        return e.add(f"F.while_loop(lambda {i}, {v}: {test}, lambda {i}, {v}: ({i} + 1, "
                     f"{step}), (F.tensor(0), {x.src}){bound if rng.random() < 0.6 else ''})"
                     f"[{int(rng.random() < 0.75)}]", "while_loop")
    s = e.fresh("s")
    start = e.value(g.pick(lambda n, i: i.dtype == x.dtype) or a)
    total = e.choose((f"{v}.sum()", f"({v} * {v}).sum()", f"{v}.abs().mean()"))
    if rng.random() < 0.3:
        test = f"{s}.abs() < {e.choose(THRESHOLDS[:4])}"
    return e.add(f"F.while_loop(lambda {v}, {s}: {test}, lambda {v}, {s}: ({step}, "
                 f"{s} + {total}), ({x.src}, {start.src}.sum()){bound})"
                 f"[{int(rng.integers(2))}]", "while_loop")


def t_scan(g: Generator) -> bool:
    """A scan over the first axis of a value (mostly the batch axis: 0, 1 and several
    elements), its accumulator started from another value (a scalar, a value the element
    broadcasts into, a pair of them, or the first element), sometimes in reverse."""
    e, rng = Expr(g), g.rng
    on_batch = rng.random() < 0.75
    a = g.pick(lambda n, i: _float(n, i) and len(i.shape) >= 1 and (
        i.shape[0] == BATCH or not on_batch))
    if a is None:
        return False
    xs = e.value(a)
    acc, el = e.fresh("a"), e.fresh("e")
    elem = Local(el, xs.shape[1:], xs.dtype)
    kind = e.choose(("like", "scalar", "pair", "first"))
    if kind == "first" and not const(xs.shape[0]):
        kind = "like"
    like = g.pick(lambda n, i: n != a and i.dtype == xs.dtype and fits_into(elem.shape, i.shape))
    if kind in ("like", "pair") and like is None:
        kind = "scalar"

    def update(carry: str, shape: tuple, reduce: bool) -> str:
        contribution = e.chain(elem, 1) + (".sum()" if reduce else "")
        new = f"({carry} * {e.choose(('0.5', '0.9', '1'))} + {contribution})"
        return e.chain(Local(new, shape, xs.dtype), 0) if rng.random() < 0.5 else new

    if kind == "first":
        init, body = "", update(acc, elem.shape, False)
    elif kind == "like":
        init, body = e.value(like).src, update(acc, g.shape(like), False)
    else:
        start = e.value(g.pick(lambda n, i: i.dtype == xs.dtype) or a).src
        scalar = f"{start}.{e.choose(('sum', 'mean'))}()"
        if kind == "pair":
            init = f"({e.value(like).src}, {scalar})"
            body = f"({update(f'{acc}[0]', g.shape(like), False)}, " \
                   f"{update(f'{acc}[1]', (), True)})"
        else:
            init, body = scalar, update(acc, (), True)
    args = f", initializer={init}" if init else ""
    args += ", reverse=True" if rng.random() < 0.4 else ""
    index = f"[{int(rng.integers(2))}]" if kind == "pair" else ""
    return e.add(f"F.scan(lambda {acc}, {el}: {body}, {xs.src}{args}){index}", "scan")
