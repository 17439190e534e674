"""The few free functions each mode supplies as ``F`` (the rest of the surface is methods),
and the intended differences from torch."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np

import eager
import staticgraph as sg
from staticgraph.ops import functional as shared

try:
    import torch
except ImportError:  # the torch oracle (c) is skipped
    torch = None

# Intended, documented differences from torch that are not failures: name -> one-line reason.
# Each is handled where the name is used (grep for it).
KNOWN_DIFFERENCES = {
    "max_dim_ties": "docs/eager.md: max(dim)/min(dim) share the gradient evenly among ties, as "
                    "amax does; torch sends it to the returned index. torch runs .amax/.amin "
                    "there.",
    "max_nan": "docs/eager.md: max()/min() of values holding a NaN give a NaN gradient, as "
               "amax/amin do; torch's max() sends it to the NaN. torch runs .amax()/.amin() "
               "there.",
}

DTYPES = ("float64", "float32", "int64", "int32", "int16", "uint8", "bool")
FUNCS = ("gelu", "layer_norm", "cross_entropy", "mse_loss", "linear", "cat", "stack", "where",
         "softmax", "log_softmax", "softplus", "relu", "conv2d", "max_pool2d", "avg_pool2d",
         "leaky_relu", "silu", "elu", "hardtanh")


def _identity_assign(variable, value):
    """sg.assign's value in eager and torch: the new value, in the Variable's dtype."""
    return value.to(variable.dtype)


def python_control(stack):
    """sg.cond, sg.while_loop and sg.scan as plain Python on tensors that ``stack`` stacks
    (torch's side, an oracle written apart from staticgraph's own Python path)."""
    def seq(values):
        return (list(values), True) if isinstance(values, (tuple, list)) else ([values], False)

    def packed(values, sequence):
        return tuple(values) if sequence else values[0]

    def cond(pred, true_fn, false_fn):
        return true_fn() if bool(pred) else false_fn()

    def while_loop(test, body, loop_vars, maximum_iterations=None):
        values, sequence = seq(loop_vars)
        trips = 0
        while (maximum_iterations is None or trips < maximum_iterations) and bool(
                test(*values)):
            values, trips = seq(body(*values))[0], trips + 1
        return packed(values, sequence)

    def scan(fn, elems, initializer=None, reverse=False):
        xs, xs_seq = seq(elems)
        if initializer is None:  # the first element starts, and is part of the result
            first, init_seq = [x[-1] if reverse else x[0] for x in xs], xs_seq
            xs = [x[:-1] if reverse else x[1:] for x in xs]
        else:
            first, init_seq = seq(initializer)
        acc, accs = first, []
        order = range(len(xs[0]))
        for k in reversed(order) if reverse else order:
            acc = seq(fn(packed(acc, init_seq), packed([x[k] for x in xs], xs_seq)))[0]
            accs.append(acc)
        if reverse:
            accs.reverse()
        if initializer is None:
            accs = [*accs, first] if reverse else [first, *accs]
        return packed([stack([a[i] for a in accs]) if accs else first[i].unsqueeze(0)[:0]
                       for i in range(len(first))], init_seq)

    return SimpleNamespace(cond=cond, while_loop=while_loop, scan=scan)


def checked_control(F: SimpleNamespace) -> SimpleNamespace:
    """``F`` whose control flow also refuses what a graph refuses (branches or a loop body
    that change a shape or dtype, a predicate that is not a bool scalar), trying both branches
    and a loop's body at least once: the generator probes programs with it, so every program
    it keeps builds as a graph."""
    plain = python_control(F.stack)

    def typed(values):
        values = list(values) if isinstance(values, (tuple, list)) else [values]
        return [(tuple(v.shape), str(v.dtype).removeprefix("torch.")) for v in values]

    def same(first, second):
        if typed(first) != typed(second):
            raise ValueError(f"control flow: {typed(first)} != {typed(second)}")

    def predicate(value):
        if typed(value) != [((), "bool")]:
            raise TypeError(f"control flow: the predicate is {typed(value)}, not a bool scalar")
        return value

    def cond(pred, true_fn, false_fn):
        results = true_fn(), false_fn()
        same(*results)
        return results[0] if bool(predicate(pred)) else results[1]

    def while_loop(test, body, loop_vars, maximum_iterations=None):
        values = list(loop_vars) if isinstance(loop_vars, (tuple, list)) else [loop_vars]
        predicate(test(*values))
        same(loop_vars, body(*values))
        return plain.while_loop(lambda *v: predicate(test(*v)), body, loop_vars,
                                maximum_iterations)

    def scan(fn, elems, initializer=None, reverse=False):
        def step(acc, x):
            out = fn(acc, x)
            same(acc, out)
            return out
        return plain.scan(step, elems, initializer, reverse)

    return SimpleNamespace(**{**vars(F), "cond": cond, "while_loop": while_loop, "scan": scan})


GRAPH_CONTROL = {"cond": sg.cond, "while_loop": sg.while_loop, "scan": sg.scan}
GRAPH_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=sg.constant,
                          assign=sg.assign, **GRAPH_CONTROL, **{d: np.dtype(d) for d in DTYPES})
# eager runs staticgraph's own functions: on eager tensors they run as Python
EAGER_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=eager.tensor,
                          assign=_identity_assign, **GRAPH_CONTROL,
                          **{d: np.dtype(d) for d in DTYPES})
TORCH_F = None
if torch is not None:
    import torch.nn.functional as _tf
    TORCH_F = SimpleNamespace(
        gelu=_tf.gelu, layer_norm=_tf.layer_norm, cross_entropy=_tf.cross_entropy,
        mse_loss=_tf.mse_loss, linear=_tf.linear, cat=torch.cat, stack=torch.stack,
        where=torch.where, softmax=torch.softmax, log_softmax=torch.log_softmax,
        softplus=_tf.softplus, relu=torch.relu, conv2d=_tf.conv2d, max_pool2d=_tf.max_pool2d,
        avg_pool2d=_tf.avg_pool2d, leaky_relu=_tf.leaky_relu, silu=_tf.silu, elu=_tf.elu,
        hardtanh=_tf.hardtanh, tensor=torch.tensor, assign=_identity_assign,
        **vars(python_control(torch.stack)), **{d: getattr(torch, d) for d in DTYPES})
PROBE_F = checked_control(TORCH_F if torch is not None else EAGER_F)


def torch_side(source: str) -> str:
    """A program's source as torch runs it: KNOWN_DIFFERENCES["max_dim_ties"] and
    ["max_nan"]."""
    source = re.sub(r"\.max\(([^()]*)\)\.values", r".amax(\1)", source)
    source = re.sub(r"\.min\(([^()]*)\)\.values", r".amin(\1)", source)
    return re.sub(r"\.(max|min)\(\)", r".a\1()", source)
