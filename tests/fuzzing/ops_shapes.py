"""Op templates for reductions, reshapes and other movement, indexing and concatenation: each
tries to add one op to the program and says whether it did."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .programs import BATCH, K, const, has_axes, picks

if TYPE_CHECKING:
    from .generator import Generator


@picks()
def t_reduce(g: Generator, a: str) -> bool:
    rng = g.rng
    nd = len(g.shape(a))
    keep = bool(rng.random() < 0.4)
    kd = ", keepdim=True" if keep else ""
    if nd == 0:
        d = int(rng.choice([0, -1]))
    else:
        d = g.dim(a)
    name = str(rng.choice(["sum", "mean", "prod", "amax", "amin", "max_dim", "min_dim", "max",
                           "min", "argmax", "argmin", "indices", "cumsum", "var", "std", "norm"]))
    if name == "cumsum":
        return g.try_op(f"{{0}}.cumsum({d})", (a,), name)
    if name in ("var", "std", "norm"):
        return g.try_op(f"{{0}}.{name}({d}{kd})" if name != "norm" else
                        f"{{0}}.norm(2, {d}{kd})", (a,), name)
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


@picks()
def t_movement(g: Generator, a: str) -> bool:
    rng = g.rng
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


@picks(has_axes)
def t_index(g: Generator, a: str) -> bool:
    rng = g.rng
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
        return g.try_op("{0}[{1}]", (a, i), "gather")
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
        return g.try_op(f"{{0}}[{prefix}{{1}}, {{2}}]", (a, i, j), "gather")
    else:
        return g.try_op(f"{{0}}[{prefix}{{1}}]", (a, i), "gather")


@picks(has_axes)
def t_concat(g: Generator, a: str) -> bool:
    rng = g.rng
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
