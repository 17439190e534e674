"""Op templates for matmul and linear, the composites (softmax, layer_norm, losses...) and
sg.assign: each tries to add one op to the program and says whether it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .programs import BATCH, K, const, float_with_axes, picks

if TYPE_CHECKING:
    from .generator import Generator


@picks(float_with_axes)
def t_matmul(g: Generator, a: str) -> bool:
    rng = g.rng
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
            return False
        bias = g.new_input((m,), g.dtype(a)) if rng.random() < 0.6 else None
        expr = "F.linear({0}, {1}.t()" + (", {2})" if bias else ")")
        return g.try_op(expr, (a, partner) + ((bias,) if bias else ()), "linear")
    else:
        return g.try_op(str(rng.choice(["{0} @ {1}", "{0}.matmul({1})"])), (a, partner), "matmul")


def _image_size(n: int) -> tuple[int, int]:
    """n pixels as an image (h, w), as square as n allows."""
    h = max(d for d in range(1, int(n ** 0.5) + 1) if n % d == 0)
    return h, n // h


@picks(lambda n, i: i.dtype.startswith("float") and len(i.shape) >= 2 and i.shape[0] == BATCH
       and all(const(d) for d in i.shape[1:]))
def t_conv(g: Generator, a: str) -> bool:
    """A batch's rows as one-channel images, then a convolution, a pool or an activation of
    convolutional networks."""
    rng = g.rng
    h, w = _image_size(int(np.prod([const(d) for d in g.shape(a)[1:]])))
    image = f"{{0}}.reshape(-1, 1, {h}, {w})"
    kind = str(rng.choice(["conv2d", "max_pool2d", "avg_pool2d", "activation"]))
    k = int(rng.integers(1, min(h, w) + 2))  # (with padding 1 a kernel may pass the edge)
    pad = int(rng.integers(0, k // 2 + 1))
    if min(h, w) + 2 * pad < k:
        return False
    if kind == "conv2d":
        out = int(rng.integers(1, 4))
        weight = g.new_input((out, 1, k, k), g.dtype(a))
        stride = int(rng.integers(1, 3))
        return g.try_op(f"F.conv2d({image}, {{1}}, stride={stride}, padding={pad})",
                        (a, weight), "conv2d")
    if kind in ("max_pool2d", "avg_pool2d"):
        ceil = bool(rng.random() < 0.3)
        return g.try_op(f"F.{kind}({image}, {k}, padding={pad}, ceil_mode={ceil})", (a,), kind)
    act = str(rng.choice(["F.leaky_relu({0}, 0.2)", "F.silu({0})", "F.elu({0}, 0.5)",
                          "F.hardtanh({0}, -0.5, 0.5)"]))
    return g.try_op(act.format(image), (a,), act[2:act.index("(")])


@picks(float_with_axes)
def t_composite(g: Generator, a: str) -> bool:
    rng = g.rng
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
        return g.try_op(f"F.layer_norm({{0}}, [{n}], {{1}}, {{2}})", (a, w, b), "layer_norm")
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
        return g.try_op(f"F.cross_entropy({{0}}, {{1}}{red})", (a, labels), "cross_entropy")
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
