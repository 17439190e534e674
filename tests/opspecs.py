"""One table of op specs (tinygrad's helper_test_op, JAX's LAX_GRAD_OPS) that drives forward,
finite-difference and PyTorch checks of every primitive and composite, in each mode.

Each spec's ``fn(F, *xs)`` is written with the shared operator surface (torch's method
names), so the same function runs on eager Tensors, on torch tensors and on graph Nodes;
``F`` supplies the few free functions (``F.gelu``, ``F.cat``...) of the mode at hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from scipy import special

from staticgraph.graph import Node
from staticgraph.ops import Surface
from staticgraph.ops import functional as shared
from staticgraph.ops.indexing import parse_index


@dataclass(frozen=True)
class Input:
    shape: tuple[int, ...]
    kind: str = "normal"  # normal | positive | away (|x| >= 0.5) | int:<high> | mask

    def sample(self, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
        if self.kind.startswith("int:"):
            return rng.integers(0, int(self.kind[4:]), self.shape).astype(np.int64)
        if self.kind == "mask":
            return rng.random(self.shape) > 0.5
        x = rng.standard_normal(self.shape)
        if self.kind == "positive":
            x = np.abs(x) + 0.5
        elif self.kind == "away":
            x = np.sign(x) * (np.abs(x) + 0.5)
        elif self.kind == "simplex":
            x = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
        return x.astype(dtype)

    @property
    def differentiable(self) -> bool:
        return not (self.kind.startswith("int:") or self.kind == "mask")


@dataclass(frozen=True)
class OpSpec:
    name: str
    fn: Callable
    inputs: tuple[Input, ...]
    ref: Callable | None = None       # numpy reference of the forward value
    grad_name: str | None = None      # torch's grad_fn name, where eager matches it
    second_order: bool = True         # False where the function is piecewise linear
    tags: frozenset = field(default_factory=frozenset)  # "parameters": inputs after the first
    #                                                     are weights of known shape


def _in(*shapes, kind="normal"):
    return tuple(Input(s, kind) for s in shapes)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _log_softmax(x, axis):
    s = x - x.max(axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis, keepdims=True))


def _layer_norm(x, w, b, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def _cross_entropy(logits, labels):
    return -_log_softmax(logits, -1)[np.arange(len(labels)), labels].mean()


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _np_batch_norm(x, w=None, b=None, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w.reshape(shape)) + (0 if b is None else b.reshape(shape))


def _np_conv2d(x, w, b=None, stride=(1, 1), pad=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """A direct loop over output pixels: an independent reference for conv2d."""
    x = np.pad(x, ((0, 0), (0, 0), *pad))
    (kh, kw), (sh, sw), (dh, dw) = w.shape[2:], stride, dilation
    ho, wo = ((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in
              zip(x.shape[2:], (kh, kw), stride, dilation))
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    per_out, per_in = w.shape[0] // groups, w.shape[1]
    for o in range(w.shape[0]):
        c0 = o // per_out * per_in
        for i in range(ho):
            for j in range(wo):
                patch = x[:, c0:c0 + per_in, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                          j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, o, i, j] = (patch * w[o]).sum((1, 2, 3))
    return out if b is None else out + b[:, None, None]


def _np_conv_transpose2d(x, w, b, stride, pad, output_padding, groups):
    """Each input pixel scattered over its window of the output: an independent reference."""
    (kh, kw), (sh, sw) = w.shape[2:], stride
    per_in, per_out = x.shape[1] // groups, w.shape[1]
    h, wd = ((n - 1) * s + k + e for n, s, k, e in zip(x.shape[2:], stride, (kh, kw),
                                                        output_padding))
    out = np.zeros((x.shape[0], per_out * groups, h, wd))
    for c in range(x.shape[1]):
        o0 = c // per_in * per_out
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                out[:, o0:o0 + per_out, i * sh:i * sh + kh, j * sw:j * sw + kw] += \
                    x[:, c, i, j, None, None, None] * w[c]
    return out[:, :, pad[0]:h - pad[0], pad[1]:wd - pad[1]] + b[:, None, None]


def _np_pool(x, kernel, stride, pads, reduce, dilation=(1, 1), fill=-np.inf):
    """The windows of x padded with ``fill``, each reduced."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    padded = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=fill)
    ho, wo = ((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in
              zip(padded.shape[2:], kernel, stride, dilation))
    return np.stack([np.stack([reduce(padded[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                             j * sw:j * sw + dw * (kw - 1) + 1:dw])
                               for j in range(wo)], -1) for i in range(ho)], -2)


def _np_avg_pool_exclude_pad(x):
    """avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False)."""
    def window_sums(a):  # (the last window, past the padding by ceil_mode, is cut short)
        return _np_pool(a, (3, 3), (2, 2), ((1, 2), (1, 1)), lambda w: w.sum((2, 3)),
                        fill=0)
    return window_sums(x) / window_sums(np.ones(x.shape))


def _setitem(x, index, value):
    """x with ``x[index] = value``, out of place: clone-then-assign in eager and torch (torch's
    CopySlices); a graph node, which cannot be assigned to, records the same index_put."""
    if not isinstance(x, Node):
        y = x.clone()
        y[index] = value
        return y
    spec, arrays = parse_index(index, lambda item: isinstance(item, Surface))
    return x._index_put(x._operand(value).to(x.dtype), [x._operand(a) for a in arrays], spec)


def _np_setitem(x, index, value):
    y = x.copy()
    y[index] = value
    return y


# Free functions of each mode, under one set of names: torch.nn.functional's (the shared ones
# in eager, the same names in torch), torch's cat/stack/where, and an arange of a size.
NN_NAMES = [n for n in shared.NN_FUNCTIONAL if n not in ("sigmoid", "tanh", "relu")]
EAGER_F = SimpleNamespace(**{n: getattr(shared, n) for n in NN_NAMES + ["cat", "stack", "where"]},
                          arange_like=lambda x, axis: x._arange_like(axis))


def torch_f():
    import torch
    import torch.nn.functional as tf
    return SimpleNamespace(**{n: getattr(tf, n) for n in NN_NAMES},
                           cat=torch.cat, stack=torch.stack, where=torch.where,
                           arange_like=lambda x, axis: torch.arange(x.shape[axis]))


S = OpSpec
SPECS: list[OpSpec] = [
    # elementwise binary, with broadcasting
    S("add", lambda F, a, b: a + b, _in((3, 4), (4,)), np.add, "AddBackward0"),
    S("add_scalar", lambda F, a: a + 2, _in((2, 3)), lambda a: a + 2, "AddBackward0"),
    S("sub", lambda F, a, b: a - b, _in((2, 1, 4), (3, 1)), np.subtract, "SubBackward0"),
    S("rsub", lambda F, a: 2 - a, _in((3,)), lambda a: 2 - a, "RsubBackward1"),
    S("mul", lambda F, a, b: a * b, _in((3, 4), (3, 1)), np.multiply, "MulBackward0"),
    S("mul_scalar", lambda F, a: 3 * a, _in((3,)), lambda a: 3 * a, "MulBackward0"),
    S("div", lambda F, a, b: a / b, (Input((2, 3)), Input((3,), "away")), np.divide,
      "DivBackward0"),
    S("rdiv", lambda F, a: 2 / a, _in((4,), kind="away"), lambda a: 2 / a),
    S("neg", lambda F, a: -a, _in((3,)), np.negative, "NegBackward0"),
    S("pow", lambda F, a, b: a ** b, (Input((2, 3), "positive"), Input((3,))), np.power,
      "PowBackward1"),
    S("pow_scalar", lambda F, a: a ** 3, _in((4,)), lambda a: a ** 3, "PowBackward0"),
    S("rpow", lambda F, a: 2 ** a, _in((4,)), lambda a: 2 ** a, "PowBackward2"),
    S("maximum", lambda F, a, b: a.maximum(b), _in((3, 4), (4,)), np.maximum,
      "MaximumBackward0", second_order=False),
    S("minimum", lambda F, a, b: a.minimum(b), _in((3, 4), (3, 1)), np.minimum,
      "MinimumBackward0", second_order=False),
    S("where", lambda F, c, a, b: F.where(c, a, b), (Input((3, 4), "mask"),) + _in((3, 4), (4,)),
      np.where, "WhereBackward0"),
    # comparisons and logic: bool masks, so each picks between differentiable values
    S("lt", lambda F, a, b: a.where(a < b, b), _in((3, 4), (4,)),
      lambda a, b: np.where(a < b, a, b), "WhereBackward0", second_order=False),
    S("le", lambda F, a, b: a.where(a <= b, b), _in((3, 4), (3, 1)),
      lambda a, b: np.where(a <= b, a, b), "WhereBackward0", second_order=False),
    S("gt", lambda F, a, b: a.where(a > b, b), _in((3, 4), (4,)),
      lambda a, b: np.where(a > b, a, b), "WhereBackward0", second_order=False),
    S("ge", lambda F, a, b: a.where(a >= b, -b), _in((4,), (3, 4)),
      lambda a, b: np.where(a >= b, a, -b), "WhereBackward0", second_order=False),
    S("eq", lambda F, a, i, j: a.where(i == j, 0), (Input((3, 4)), Input((3, 4), "int:2"),
                                                    Input((4,), "int:2")),
      lambda a, i, j: np.where(i == j, a, 0), "WhereBackward0"),
    S("ne", lambda F, a, i: a.where(i != 1, -a), (Input((3, 4)), Input((3, 4), "int:3")),
      lambda a, i: np.where(i != 1, a, -a), "WhereBackward0"),
    S("logical_and", lambda F, m, n, a, b: F.where(m & n, a, b),
      _in((3, 4), (4,), kind="mask") + _in((3, 4), (3, 4)),
      lambda m, n, a, b: np.where(m & n, a, b), "WhereBackward0"),
    S("logical_or", lambda F, m, n, a, b: F.where(m | n, a, b),
      _in((3, 1), (3, 4), kind="mask") + _in((3, 4), (4,)),
      lambda m, n, a, b: np.where(m | n, a, b), "WhereBackward0"),
    S("logical_not", lambda F, m, a: a.where(~m, 0), (Input((3, 4), "mask"), Input((3, 4))),
      lambda m, a: np.where(~m, a, 0), "WhereBackward0"),
    S("type_as", lambda F, a, m: a * m.type_as(a), (Input((3, 4)), Input((3, 4), "mask")),
      lambda a, m: a * m, "MulBackward0"),
    # elementwise unary
    S("exp", lambda F, a: a.exp(), _in((3, 4)), np.exp, "ExpBackward0"),
    S("log", lambda F, a: a.log(), _in((3, 4), kind="positive"), np.log, "LogBackward0"),
    S("sqrt", lambda F, a: a.sqrt(), _in((3, 4), kind="positive"), np.sqrt, "SqrtBackward0"),
    S("tanh", lambda F, a: a.tanh(), _in((3, 4)), np.tanh, "TanhBackward0"),
    S("sigmoid", lambda F, a: a.sigmoid(), _in((3, 4)), lambda a: 1 / (1 + np.exp(-a)),
      "SigmoidBackward0"),
    S("relu", lambda F, a: a.relu(), _in((3, 4), kind="away"), lambda a: np.maximum(a, 0),
      "ReluBackward0", second_order=False),
    S("abs", lambda F, a: a.abs(), _in((3, 4), kind="away"), np.abs, "AbsBackward0",
      second_order=False),
    S("erf", lambda F, a: a.erf(), _in((3, 4)), special.erf, "ErfBackward0"),
    S("floor", lambda F, a: a.floor() * a, _in((3, 4)), lambda a: np.floor(a) * a,
      "MulBackward0"),
    S("leaky_relu", lambda F, a: F.leaky_relu(a, 0.2), _in((3, 4), kind="away"),
      lambda a: np.where(a > 0, a, 0.2 * a), "LeakyReluBackward0", second_order=False),
    S("silu", lambda F, a: F.silu(a), _in((3, 4)), lambda a: a / (1 + np.exp(-a)),
      "SiluBackward0"),
    S("elu", lambda F, a: F.elu(a, 0.7), _in((3, 4), kind="away"),
      lambda a: np.where(a > 0, a, 0.7 * np.expm1(a)), "EluBackward0"),
    S("hardtanh", lambda F, a: F.hardtanh(a * 2, -1.5, 0.5), _in((3, 4), kind="away"),
      lambda a: np.clip(a * 2, -1.5, 0.5), "HardtanhBackward0", second_order=False),
    S("sin", lambda F, a: a.sin(), _in((3, 4)), np.sin, "SinBackward0"),
    S("cos", lambda F, a: a.cos(), _in((3, 4)), np.cos, "CosBackward0"),
    # // has no gradient (torch's is not implemented): a detached quotient scales a
    S("floor_divide", lambda F, a: a * (a.detach() // (a.detach().T @ a.detach() / 4 + 0.5)
                                         + 3 // a.detach()),
      _in((4, 4), kind="away"), lambda a: a * (a // (a.T @ a / 4 + 0.5) + 3 // a),
      "MulBackward0"),
    S("floor_divide_int", lambda F, a, i: a * (i // 3 - (i + 1) // -2),
      (Input((3, 4)), Input((3, 4), "int:10")),
      lambda a, i: a * (i // 3 - (i + 1) // -2), "MulBackward0"),
    S("remainder", lambda F, a, b: a % b, (Input((3, 4)), Input((4,), "away")), np.remainder,
      "RemainderBackward1"),
    S("remainder_scalar", lambda F, a: a % 0.75, _in((3, 4)), lambda a: a % 0.75,
      "RemainderBackward0"),
    S("remainder_int", lambda F, a, i: a * (i % 4 + (i - 5) % -3),
      (Input((3, 4)), Input((3, 4), "int:10")),
      lambda a, i: a * (i % 4 + (i - 5) % -3), "MulBackward0"),
    S("clamp", lambda F, a: a.clamp(-0.5, 0.5), _in((3, 4), kind="away"),
      lambda a: np.clip(a, -0.5, 0.5), "ClampBackward1", second_order=False),
    S("clamp_tensors", lambda F, a, lo, hi: a.clamp(lo, hi + 1), _in((3, 4), (4,), (3, 1)),
      lambda a, lo, hi: np.minimum(np.maximum(a, lo), hi + 1), "ClampBackward0",
      second_order=False),
    S("clamp_max", lambda F, a: a.clamp(max=0.25), _in((3, 4), kind="away"),
      lambda a: np.minimum(a, 0.25), "ClampBackward1", second_order=False),
    S("sign", lambda F, a: a.sign(), _in((3, 4), kind="away"), np.sign, "SignBackward0"),
    # (finite differences see the detached copy too: it must not change the value)
    S("detach", lambda F, a: a + a.detach() * 0, _in((3, 4)), lambda a: a, "AddBackward0"),
    S("softplus", lambda F, a: F.softplus(a), _in((3, 4)), lambda a: np.log1p(np.exp(a)),
      "SoftplusBackward0"),
    S("softplus_threshold", lambda F, a: F.softplus(a * 4, beta=0.5, threshold=1.5),
      _in((3, 4)), lambda a: np.where(a * 2 > 1.5, a * 4, np.log1p(np.exp(a * 2)) / 0.5),
      "SoftplusBackward0"),
    # reductions
    S("sum", lambda F, a: a.sum(), _in((3, 4)), np.sum, "SumBackward0"),
    S("sum_dim", lambda F, a: a.sum(1), _in((2, 3, 4)), lambda a: a.sum(1), "SumBackward1"),
    S("sum_dims_keepdim", lambda F, a: a.sum((0, 2), keepdim=True), _in((2, 3, 4)),
      lambda a: a.sum((0, 2), keepdims=True), "SumBackward1"),
    S("mean", lambda F, a: a.mean(), _in((3, 4)), np.mean, "MeanBackward0"),
    S("mean_dim", lambda F, a: a.mean(-1), _in((3, 4)), lambda a: a.mean(-1), "MeanBackward1"),
    S("prod", lambda F, a: a.prod(), _in((3, 4)), np.prod, "ProdBackward0"),
    S("prod_dim", lambda F, a: a.prod(1), _in((2, 3, 4)), lambda a: a.prod(1), "ProdBackward1"),
    # zeros: one in a row (its gradient is the product of the others), two, or none
    S("prod_zeros", lambda F, a, m: (a * m).prod(0, keepdim=True),
      (Input((4, 5)), Input((4, 5), "mask")), lambda a, m: (a * m).prod(0, keepdims=True),
      "ProdBackward1"),
    S("cumsum", lambda F, a: a.cumsum(1), _in((3, 4)), lambda a: a.cumsum(1),
      "CumsumBackward0"),
    S("cumsum_dim0", lambda F, a: a.cumsum(-3) * a, _in((3, 2, 2)), lambda a: a.cumsum(0) * a),
    S("cumsum_int", lambda F, a, i: a * i.cumsum(0), (Input((3, 4)), Input((3, 4), "int:5")),
      lambda a, i: a * i.cumsum(0), "MulBackward0"),
    S("var", lambda F, a: a.var(), _in((3, 4)), lambda a: a.var(ddof=1)),
    S("var_dim_biased", lambda F, a: a.var(0, unbiased=False, keepdim=True), _in((3, 4)),
      lambda a: a.var(0, keepdims=True)),
    S("std_dim", lambda F, a: a.std(-1, correction=2), _in((3, 5)),
      lambda a: a.std(-1, ddof=2)),
    S("norm", lambda F, a: a.norm(), _in((3, 4)), np.linalg.norm),
    S("norm_p_dim", lambda F, a: a.norm(3, dim=1, keepdim=True), _in((3, 4)),
      lambda a: (np.abs(a) ** 3).sum(1, keepdims=True) ** (1 / 3)),
    S("norm_1", lambda F, a: a.norm(1, dim=0), _in((3, 4), kind="away"),
      lambda a: np.abs(a).sum(0), second_order=False),
    S("norm_inf", lambda F, a: a.norm(float("inf")), _in((3, 4)), lambda a: np.abs(a).max(),
      second_order=False),
    S("any_all", lambda F, a, m: a.where(m.any(1, keepdim=True), 0) + a.where(m.all(0), -a),
      (Input((3, 4)), Input((3, 4), "mask")),
      lambda a, m: np.where(m.any(1, keepdims=True), a, 0) + np.where(m.all(0), a, -a)),
    S("max", lambda F, a: a.max(), _in((3, 4)), np.max, "MaxBackward1", second_order=False),
    S("max_dim", lambda F, a: a.max(1).values, _in((3, 4)), lambda a: a.max(1), "MaxBackward0",
      second_order=False),
    S("min_dim_keepdim", lambda F, a: a.min(0, keepdim=True)[0], _in((3, 4)),
      lambda a: a.min(0, keepdims=True), "MinBackward0", second_order=False),
    S("amax", lambda F, a: a.amax((0, 1)), _in((3, 4, 2)), lambda a: a.max((0, 1)),
      "AmaxBackward0", second_order=False),
    S("argmax", lambda F, a: a * a.argmax(1, keepdim=True), _in((3, 4)),
      lambda a: a * a.argmax(1)[:, None], "MulBackward0"),
    S("argmin", lambda F, a: a * a.argmin(), _in((3, 4)), lambda a: a * a.argmin(),
      "MulBackward0"),
    S("arange_like", lambda F, a: a * F.arange_like(a, 1), _in((3, 4)),
      lambda a: a * np.arange(4), "MulBackward0"),
    # matmul in numpy's cases
    S("mm", lambda F, a, b: a @ b, _in((2, 3), (3, 4)), np.matmul, "MmBackward0"),
    S("dot", lambda F, a, b: a @ b, _in((3,), (3,)), np.matmul, "DotBackward0"),
    S("mv", lambda F, a, b: a @ b, _in((2, 3), (3,)), np.matmul, "MvBackward0"),
    S("vm", lambda F, a, b: a @ b, _in((3,), (3, 2)), np.matmul),
    S("bmm", lambda F, a, b: a.matmul(b), _in((2, 2, 3), (2, 3, 2)), np.matmul),
    S("matmul_broadcast", lambda F, a, b: a @ b, _in((2, 1, 2, 3), (3, 3, 1)), np.matmul),
    S("batched_vector", lambda F, a, b: a @ b, _in((2, 2, 3), (3,)), np.matmul),
    # movement
    S("reshape", lambda F, a: a.reshape(4, -1), _in((2, 3, 2)), lambda a: a.reshape(4, -1),
      "ViewBackward0"),
    S("reshape_as", lambda F, a, b: a.reshape_as(b), _in((2, 3), (3, 2)),
      lambda a, b: a.reshape(b.shape), "ViewBackward0"),
    S("view", lambda F, a: a.view(6), _in((2, 3)), lambda a: a.reshape(6), "ViewBackward0"),
    S("flatten", lambda F, a: a.flatten(1), _in((2, 3, 2)), lambda a: a.reshape(2, 6),
      "ViewBackward0"),
    S("transpose", lambda F, a: a.transpose(0, 2), _in((2, 3, 4)), lambda a: a.swapaxes(0, 2),
      "TransposeBackward0"),
    S("permute", lambda F, a: a.permute(2, 0, 1), _in((2, 3, 4)),
      lambda a: a.transpose(2, 0, 1), "PermuteBackward0"),
    S("T", lambda F, a: a.T, _in((2, 3)), lambda a: a.T, "PermuteBackward0"),
    S("t", lambda F, a: a.t(), _in((2, 3)), lambda a: a.T, "TBackward0"),
    S("unsqueeze", lambda F, a: a.unsqueeze(1), _in((2, 3)), lambda a: a[:, None],
      "UnsqueezeBackward0"),
    S("squeeze", lambda F, a: a.squeeze(1), _in((2, 1, 3)), lambda a: a[:, 0],
      "SqueezeBackward1"),
    S("expand", lambda F, a: a.expand(2, 3, 4), _in((3, 1)),
      lambda a: np.broadcast_to(a, (2, 3, 4)), "ExpandBackward0"),
    S("expand_as", lambda F, a, b: a.expand_as(b), _in((3, 1), (3, 4)),
      lambda a, b: np.broadcast_to(a, b.shape), "ExpandBackward0"),
    S("select", lambda F, a: a[1], _in((3, 4)), lambda a: a[1], "SelectBackward0"),
    S("select_inner", lambda F, a: a[:, -1], _in((3, 4)), lambda a: a[:, -1],
      "SelectBackward0"),
    S("slice", lambda F, a: a[1:3], _in((4, 2)), lambda a: a[1:3], "SliceBackward0"),
    S("slice_step", lambda F, a: a[..., ::2], _in((3, 5)), lambda a: a[..., ::2],
      "SliceBackward0"),
    S("newaxis", lambda F, a: a[None], _in((3,)), lambda a: a[None], "UnsqueezeBackward0"),
    S("gather", lambda F, a, i: a[i], (Input((4, 3)), Input((6,), "int:4")),
      lambda a, i: a[i], "IndexBackward0"),
    S("gather_2d", lambda F, a, i, j: a[i, j], (Input((4, 3)), Input((5,), "int:4"),
                                                 Input((5,), "int:3")),
      lambda a, i, j: a[i, j], "IndexBackward0"),
    S("mask", lambda F, a, m: a[m], (Input((3, 4)), Input((3, 4), "mask")),
      lambda a, m: a[m], "IndexBackward0"),
    S("index_put", lambda F, a, v: _setitem(a, np.s_[1:, [2, 0]], v), _in((3, 4), (2,)),
      lambda a, v: _np_setitem(a, np.s_[1:, [2, 0]], v), "torch::autograd::CopySlices"),
    S("index_put_basic", lambda F, a, v: _setitem(a, np.s_[0, ::2], v), _in((3, 4), (2,)),
      lambda a, v: _np_setitem(a, np.s_[0, ::2], v), "torch::autograd::CopySlices"),
    # torch's own name here is IndexPutBackward0 (a mask writes through index_put_)
    S("index_put_mask", lambda F, a, m, v: _setitem(a, m, v),
      (Input((3, 4)), Input((3, 4), "mask"), Input(())), _np_setitem, "IndexPutBackward0"),
    S("nonzero", lambda F, a, m: a * m.nonzero().sum(0), (Input((3, 2)), Input((4, 2), "mask")),
      lambda a, m: a * np.argwhere(m).sum(0), "MulBackward0"),
    S("cat", lambda F, a, b: F.cat([a, b], 1), _in((2, 3), (2, 2)),
      lambda a, b: np.concatenate([a, b], 1), "CatBackward0"),
    S("stack", lambda F, a, b: F.stack([a, b], 1), _in((2, 3), (2, 3)),
      lambda a, b: np.stack([a, b], 1)),
    S("gather_dim", lambda F, a, i: a.gather(1, i), (Input((4, 3)), Input((4, 5), "int:3")),
      lambda a, i: np.take_along_axis(a, i, 1), "GatherBackward0"),
    S("gather_dim0", lambda F, a, i: a.gather(0, i), (Input((4, 3)), Input((2, 2), "int:4")),
      lambda a, i: a[i, np.arange(2)]),
    S("masked_fill", lambda F, a, m: a.masked_fill(m, 0.5), (Input((3, 4)), Input((4,), "mask")),
      lambda a, m: np.where(m, 0.5, a), "MaskedFillBackward0"),
    S("repeat", lambda F, a: a.repeat(2, 1, 3), _in((2, 3)), lambda a: np.tile(a, (2, 1, 3))),
    S("chunk", lambda F, a: a.chunk(3, 1)[1] * a.chunk(3, 1)[2], _in((2, 5)),
      lambda a: a[:, 2:4] * a[:, 4:]),
    S("split", lambda F, a: a.split([1, 3], 1)[1] + a.split(2, -1)[0].sum(), _in((3, 4)),
      lambda a: a[:, 1:] + a[:, :2].sum()),
    # composites
    S("softmax", lambda F, a: a.softmax(-1), _in((3, 5)), lambda a: _softmax(a, -1),
      "SoftmaxBackward0"),
    S("softmax_dim0", lambda F, a: F.softmax(a, 0), _in((3, 5)), lambda a: _softmax(a, 0),
      "SoftmaxBackward0"),
    S("log_softmax", lambda F, a: a.log_softmax(1), _in((3, 5)), lambda a: _log_softmax(a, 1),
      "LogSoftmaxBackward0"),
    S("gelu", lambda F, a: F.gelu(a), _in((3, 4)),
      lambda a: 0.5 * a * (1 + special.erf(a / math.sqrt(2))), "GeluBackward0"),
    S("gelu_tanh", lambda F, a: F.gelu(a, approximate="tanh"), _in((3, 4)), _gelu_tanh,
      "GeluBackward0"),
    S("layer_norm", lambda F, x, w, b: F.layer_norm(x, (5,), w, b), _in((3, 5), (5,), (5,)),
      _layer_norm, "NativeLayerNormBackward0"),
    S("layer_norm_plain", lambda F, x: F.layer_norm(x, (2, 3)), _in((4, 2, 3)),
      lambda x: _layer_norm(x.reshape(4, 6), 1, 0).reshape(4, 2, 3),
      "NativeLayerNormBackward0"),
    S("nll_loss_ignore", lambda F, x, y: F.nll_loss(x, y.masked_fill(y == 1, -100)),
      (Input((6, 4)), Input((6,), "int:4")),
      lambda x, y: -x[np.arange(6), y][y != 1].sum() / (y != 1).sum(), "NllLossBackward0"),
    S("cross_entropy_smoothing", lambda F, x, y: F.cross_entropy(
        x, y.masked_fill(y == 2, -100), ignore_index=-100, label_smoothing=0.2, reduction="sum"),
      (Input((6, 4)), Input((6,), "int:4")), lambda x, y: (
          0.8 * -_log_softmax(x, -1)[np.arange(6), y][y != 2].sum()
          + 0.05 * -_log_softmax(x, -1)[y != 2].sum())),
    S("cross_entropy_smoothing_mean", lambda F, x, y: F.cross_entropy(
        x, y, ignore_index=0, label_smoothing=0.1), (Input((6, 4)), Input((6,), "int:4")),
      lambda x, y: (0.9 * -_log_softmax(x, -1)[np.arange(6), y][y != 0].sum()
                    + 0.025 * -_log_softmax(x, -1)[y != 0].sum()) / (y != 0).sum()),
    S("binary_cross_entropy", lambda F, x, y: F.binary_cross_entropy(x, y),
      _in((3, 4), (3, 4), kind="simplex"),
      lambda x, y: -(y * np.log(x) + (1 - y) * np.log1p(-x)).mean(),
      "BinaryCrossEntropyBackward0"),
    S("binary_cross_entropy_weight", lambda F, x, y, m: F.binary_cross_entropy(
        x, y, m.type_as(x) + 0.5, reduction="none"),
      _in((3, 4), (3, 4), kind="simplex") + (Input((4,), "mask"),),
      lambda x, y, m: -(y * np.log(x) + (1 - y) * np.log1p(-x)) * (m + 0.5),
      "BinaryCrossEntropyBackward0"),
    # convolutional networks (references: tests/test_conv.py checks each against torch)
    S("conv2d", lambda F, x, w, b: F.conv2d(x, w, b), _in((2, 3, 5, 5), (4, 3, 3, 3), (4,)),
      _np_conv2d, "ConvolutionBackward0", tags=frozenset({"parameters"})),
    S("conv2d_strided_grouped", lambda F, x, w: F.conv2d(x, w, stride=2, padding=1,
                                                         dilation=(1, 2), groups=2),
      _in((2, 4, 6, 7), (6, 2, 2, 3)),
      lambda x, w: _np_conv2d(x, w, None, (2, 2), ((1, 1), (1, 1)), (1, 2), 2),
      "ConvolutionBackward0", tags=frozenset({"parameters"})),
    S("conv2d_same", lambda F, x, w: F.conv2d(x, w, padding="same"),
      _in((1, 2, 5, 4), (2, 2, 2, 3)), lambda x, w: _np_conv2d(x, w, pad=((0, 1), (1, 1))),
      "ConvolutionBackward0", tags=frozenset({"parameters"})),
    S("conv_transpose2d", lambda F, x, w, b: F.conv_transpose2d(
        x, w, b, stride=2, padding=1, output_padding=1, groups=2),
      _in((2, 4, 3, 3), (4, 1, 3, 3), (2,)),
      lambda x, w, b: _np_conv_transpose2d(x, w, b, (2, 2), (1, 1), (1, 1), 2),
      "ConvolutionBackward0", tags=frozenset({"parameters"})),
    S("conv_transpose2d_apart", lambda F, x, w: F.conv_transpose2d(x, w, stride=3, padding=1,
                                                                   output_padding=1),
      _in((1, 2, 2, 3), (2, 3, 3, 3)),  # (windows that do not overlap: one strided copy)
      lambda x, w: _np_conv_transpose2d(x, w, np.zeros(3), (3, 3), (1, 1), (1, 1), 1),
      "ConvolutionBackward0", tags=frozenset({"parameters"})),
    S("max_pool2d", lambda F, x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
      _in((2, 3, 6, 7)), lambda x: _np_pool(x, (3, 3), (2, 2), ((1, 2), (1, 1)),
                                            lambda w: w.max((2, 3))),
      "MaxPool2DWithIndicesBackward0", second_order=False),
    S("max_pool2d_padded", lambda F, x: F.max_pool2d(x, 2, padding=1), _in((1, 2, 3, 4)),
      lambda x: _np_pool(x, (2, 2), (2, 2), ((1, 1), (1, 1)), lambda w: w.max((2, 3))),
      "MaxPool2DWithIndicesBackward0", second_order=False),
    S("max_pool2d_tiles", lambda F, x: F.max_pool2d(x, 2), _in((2, 3, 4, 6)),
      lambda x: x.reshape(2, 3, 2, 2, 3, 2).max((3, 5)), "MaxPool2DWithIndicesBackward0",
      second_order=False),
    S("max_pool2d_dilated", lambda F, x: F.max_pool2d(x, 2, 1, dilation=2), _in((1, 2, 5, 5)),
      lambda x: _np_pool(x, (2, 2), (1, 1), ((0, 0), (0, 0)), lambda w: w.max((2, 3)),
                         (2, 2)), "MaxPool2DWithIndicesBackward0", second_order=False),
    S("avg_pool2d", lambda F, x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True,
                                             count_include_pad=False),
      _in((2, 3, 6, 7)), _np_avg_pool_exclude_pad, "AvgPool2DBackward0"),
    S("avg_pool2d_divisor", lambda F, x: F.avg_pool2d(x, 2, 1, padding=1, divisor_override=3),
      _in((1, 2, 3, 4)), lambda x: _np_pool(x, (2, 2), (1, 1), ((1, 1), (1, 1)),
                                            lambda w: w.sum((2, 3)), fill=0) / 3,
      "AvgPool2DBackward0"),
    S("adaptive_avg_pool2d", lambda F, x: F.adaptive_avg_pool2d(x, (2, 3)) ** 2,
      _in((2, 3, 4, 6)), lambda x: x.reshape(2, 3, 2, 2, 3, 2).mean((3, 5)) ** 2,
      "PowBackward0"),
    S("batch_norm_training", lambda F, x, w, b: F.batch_norm(x, None, None, w, b, True),
      _in((4, 3, 2, 2), (3,), (3,)), lambda x, w, b: _np_batch_norm(x, w, b),
      "NativeBatchNormBackward0", tags=frozenset({"parameters"})),
    S("batch_norm_training_2d", lambda F, x: F.batch_norm(x, None, None, training=True,
                                                          eps=0.1),
      _in((5, 3)), lambda x: _np_batch_norm(x, eps=0.1), "NativeBatchNormBackward0"),
    S("batch_norm_eval", lambda F, x, m, w: F.batch_norm(
        x, m.type_as(x) - 0.5, m.type_as(x) + 0.5, w, None, False),
      (Input((2, 3, 4)), Input((3,), "mask"), Input((3,))), lambda x, m, w: (
          (x - (m - 0.5)[:, None]) / np.sqrt(m + 0.5 + 1e-5)[:, None] * w[:, None]),
      "NativeBatchNormBackward0", tags=frozenset({"parameters"})),
    S("cross_entropy", lambda F, x, y: F.cross_entropy(x, y),
      (Input((4, 5)), Input((4,), "int:5")), _cross_entropy, "NllLossBackward0"),
    S("cross_entropy_sum", lambda F, x, y: F.cross_entropy(x, y, reduction="sum"),
      (Input((4, 5)), Input((4,), "int:5")), lambda x, y: _cross_entropy(x, y) * 4,
      "NllLossBackward0"),
    S("nll_loss_none", lambda F, x, y: F.nll_loss(x, y, reduction="none"),
      (Input((4, 5)), Input((4,), "int:5")), lambda x, y: -x[np.arange(4), y],
      "NllLossBackward0"),
    S("cross_entropy_probs", lambda F, x, p: F.cross_entropy(x, p),
      (Input((4, 5)), Input((4, 5), "simplex")),
      lambda x, p: -(_log_softmax(x, -1) * p).sum(-1).mean()),
    S("mse_loss", lambda F, a, b: F.mse_loss(a, b), _in((3, 4), (3, 4)),
      lambda a, b: ((a - b) ** 2).mean(), "MseLossBackward0"),
    S("mse_loss_none", lambda F, a, b: F.mse_loss(a, b, reduction="none"), _in((3, 4), (3, 4)),
      lambda a, b: (a - b) ** 2, "MseLossBackward0"),
    S("linear", lambda F, x, w, b: F.linear(x, w, b), _in((2, 3), (4, 3), (4,)),
      lambda x, w, b: x @ w.T + b),
]

SPEC_IDS = [s.name for s in SPECS]


@dataclass(frozen=True)
class SpecGraph:
    """A spec built in graph mode on placeholders for its sampled inputs, with the gradient
    graph of ``out.sum()`` with respect to its differentiable inputs (built, not run)."""

    arrays: list
    placeholders: list
    out: object
    grads: list


def spec_graph(spec: OpSpec, dtype=np.float64) -> SpecGraph:
    import staticgraph as sg
    arrays = [i.sample(np.random.default_rng(0), dtype) for i in spec.inputs]
    with sg.Graph().as_default():
        xs = [sg.placeholder(a.shape, a.dtype, name=f"x{k}") for k, a in enumerate(arrays)]
        out = spec.fn(EAGER_F, *xs)
        diff = [x for x, i in zip(xs, spec.inputs) if i.differentiable]
        grads = [g for g in sg.gradients(out.sum(), diff) if g is not None]
    return SpecGraph(arrays, xs, out, grads)
