"""Op templates for elementwise ops, comparisons and casts: each tries to add one op to the
program and says whether it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .programs import picks

if TYPE_CHECKING:
    from .generator import Generator


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
        "sin": "{0}.sin()", "cos": "({0} * 2).cos()", "floor": "({0} * 2.5).floor()",
    }
    raw = {"log_raw", "sqrt_raw"}
    tag = str(rng.choice([k for k in exprs if k not in raw or rng.random() < 0.3]))
    return g.try_op(exprs[tag], (a,), tag.split("_")[0] if tag not in ("relu_f",) else "relu")


@picks(lambda n, i: i.dtype != "bool")
def t_binary(g: Generator, a: str) -> bool:
    rng = g.rng
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
           ("{0}.add({1})", "add"), ("{0}.mul({1})", "mul"),
           ("{0} % ({1}.abs() + 0.5)", "remainder"),
           # (torch's // has no gradient: its operands are detached)
           ("{0}.detach() // ({1}.detach().abs() + 0.5)", "floor_divide")]
    expr, tag = ops[int(rng.integers(len(ops)))]
    return g.try_op(expr, (a, b), tag)


@picks(lambda n, i: i.dtype != "bool")
def t_where(g: Generator, a: str) -> bool:
    rng = g.rng
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
    return g.try_op(expr, args, tag)


@picks()
def t_cast(g: Generator, a: str) -> bool:
    rng = g.rng
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
    return g.try_op(expr, args, tag)
