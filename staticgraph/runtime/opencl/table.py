"""The OpenCL backend's table, keyed by primitive (tinygrad's ``code_for_op`` for its OpenCL
renderer): how each primitive becomes OpenCL C.

- ``EXPR``: an elementwise primitive is a C expression of its operands' expressions, so any
  chain of them fuses into one kernel; a reduction's combining primitive is such an
  expression too, which is all code generation needs to know of a reduction (``REDUCE``).
- ``VIEW``: the same bytes read with another shape (reshape); no kernel at all.
- ``INDEX_MAP``: a strided copy whose strides and offset numpy's own view of the primitive
  gives (transpose, broadcasts, basic slicing); ``CONCAT`` copies each part into its place.
- ``SUM_TO``, ``MATMUL``, ``IM2COL`` and ``COL2IM``: their own kernels (the last two lay
  out a convolution's or a pool's windows and add them back: every conv and pool decomposes
  into them, matmuls and the expressions above).
- ``HOST``: the primitive's numpy kernel runs on the host between device kernels, its
  operands read back and its result written to the device (data-dependent shapes, scatter,
  the composites when they are not decomposed). Where an ``EXPR`` has no expression for the
  operands' dtypes (integer pow), that node runs on the host too.

Every primitive has an entry; ``tests/test_backend_tables.py`` names any that is missing.
"""

from __future__ import annotations

import enum
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...ops import P, Primitive, dtypes
from .device import C_TYPES


class How(enum.Enum):
    EXPR = "expression"
    REDUCE = "reduction"
    VIEW = "view"
    INDEX_MAP = "index map"
    CONCAT = "concat"
    SUM_TO = "sum_to"
    MATMUL = "matmul"
    IM2COL = "im2col"
    COL2IM = "col2im"
    HOST = "host"


@dataclass(frozen=True)
class Operand:
    """What an expression may know of an operand: its dtype and rank (torch's promotion of
    comparisons reads the rank)."""

    dtype: np.dtype
    ndim: int


# expr(args, operands, out dtype, **params) -> C expression, or None: no kernel for these dtypes
Expr = Callable[..., str | None]


@dataclass(frozen=True)
class OpenCLLowering:
    """``vectors``: the expression is as valid on OpenCL vector types (float16) as on
    scalars, so a CPU kernel may step a row's loop over vectors. ``costly``: a library
    function (exp, tanh), worth storing rather than computing again in a later pass."""

    how: How
    expr: Expr | None = None
    vectors: bool = False
    costly: bool = False


def c_type(dtype: np.dtype) -> str:
    return C_TYPES[np.dtype(dtype)]


def cast(arg: str, source: np.dtype, target: np.dtype) -> str:
    """``arg`` of dtype ``source`` as a ``target`` value (a bool is 0 or 1, as numpy's)."""
    if source == target:
        return arg
    if target == np.bool_:
        return f"(uchar)({arg} != 0)"
    return f"({c_type(target)})({arg})"


def literal(value: Any, dtype: np.dtype) -> str:
    """An exact C literal of ``value`` as ``dtype`` (hex floats keep every bit)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = float(np.asarray(value, dtype))
        if math.isnan(v) or math.isinf(v):  # OpenCL's macros are floats; a cast widens them
            text = "NAN" if math.isnan(v) else "INFINITY" if v > 0 else "(-INFINITY)"
            return text if dtype == np.float32 else f"((double){text})"
        return v.hex() + ("f" if dtype == np.float32 else "")
    if dtype == np.bool_:
        return "(uchar)1" if value else "(uchar)0"
    return f"(({c_type(dtype)}){int(value)}{'UL' if dtype.kind == 'u' else 'L'})"


def _floating(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _in(out: np.dtype) -> np.dtype:
    """Arithmetic on bools computes in int (numpy: True + True is True; the cast makes it)."""
    return np.dtype(np.int32) if out == np.bool_ else out


def _binary(symbol: str) -> Expr:
    def expr(args, operands, out, **_):
        t = _in(out)
        a, b = (cast(x, o.dtype, t) for x, o in zip(args, operands))
        return cast(f"({a} {symbol} {b})", t, out)
    return expr


def _div(args, operands, out, **_):
    a, b = (cast(x, o.dtype, out) for x, o in zip(args, operands))
    return f"({a} / {b})" if _floating(out) else None  # (an integer division is torch's //)


def _pow(args, operands, out, **_):
    a, b = (cast(x, o.dtype, out) for x, o in zip(args, operands))
    return f"pow({a}, {b})" if _floating(out) else None


def _extreme(pick: str) -> Expr:
    """maximum / minimum: a NaN on either side wins, as numpy's (C's fmax drops it)."""
    def expr(args, operands, out, **_):
        t = _in(out)
        a, b = (cast(x, o.dtype, t) for x, o in zip(args, operands))
        helper = "sg_max" if pick == ">" else "sg_min"
        if _floating(t):
            return f"{helper}({a}, {b})"
        return cast(f"(({a}) {pick} ({b}) ? ({a}) : ({b}))", t, out)
    return expr


def _math_expr(function: str) -> Expr:
    def expr(args, operands, out, **_):
        return f"{function}({cast(args[0], operands[0].dtype, out)})" if _floating(out) \
            else None
    return expr


def _floating_helper(function: str) -> Expr:
    """A helper of the prelude on floats; integers (whose division by zero must raise) run
    on the host."""
    def expr(args, operands, out, **_):
        if not _floating(out):
            return None
        return f"{function}({', '.join(cast(a, o.dtype, out) for a, o in zip(args, operands))})"
    return expr


def _floor(args, operands, out, **_):
    a = cast(args[0], operands[0].dtype, out)
    return f"floor({a})" if _floating(out) else a


def _neg(args, operands, out, **_):
    return f"(-{cast(args[0], operands[0].dtype, out)})"


def _abs(args, operands, out, **_):
    a = cast(args[0], operands[0].dtype, out)
    if _floating(out):
        return f"fabs({a})"
    return a if out == np.bool_ else f"(({c_type(out)})abs({a}))"


def _sign(args, operands, out, **_):
    a = cast(args[0], operands[0].dtype, out)
    if out == np.bool_:
        return a
    return f"(({c_type(out)})((({a}) > 0) - (({a}) < 0)))"  # NaN compares false: 0, as torch


def _relu(args, operands, out, **_):
    a = cast(args[0], operands[0].dtype, out)
    zero = literal(0, out)
    return f"sg_max({a}, {zero})" if _floating(out) else f"(({a}) > 0 ? ({a}) : {zero})"


def _sigmoid(args, operands, out, **_):
    return f"sg_sigmoid({cast(args[0], operands[0].dtype, out)})" if _floating(out) else None


def _softplus(args, operands, out, beta, threshold):
    if not _floating(out):
        return None
    a = cast(args[0], operands[0].dtype, out)
    return f"sg_softplus({a}, {literal(beta, out)}, {literal(threshold, out)})"


def _leaky_relu(args, operands, out, negative_slope):
    if not _floating(out):
        return None
    a = cast(args[0], operands[0].dtype, out)
    return f"(({a}) > 0 ? ({a}) : ({a}) * {literal(negative_slope, out)})"


def _silu(args, operands, out):
    a = cast(args[0], operands[0].dtype, out)
    return f"(({a}) * sg_sigmoid({a}))" if _floating(out) else None


def _elu(args, operands, out, alpha):
    a = cast(args[0], operands[0].dtype, out)
    return f"(({a}) > 0 ? ({a}) : {literal(alpha, out)} * expm1({a}))" if _floating(out) \
        else None


def _hardtanh(args, operands, out, min_val, max_val):
    value, same = cast(args[0], operands[0].dtype, out), [Operand(out, 0)] * 2
    value = _extreme(">")([value, literal(min_val, out)], same, out)
    return _extreme("<")([value, literal(max_val, out)], same, out)


def _threshold_backward(args, operands, out, threshold):
    g, x = args
    g_dtype, x_dtype = operands[0].dtype, operands[1].dtype
    if not _floating(x_dtype):  # (numpy compares an integer x in float64: left to the host)
        return None
    return (f"(({x}) <= {literal(threshold, x_dtype)} ? "
            f"{literal(0, out)} : {cast(g, g_dtype, out)})")


def _clamp(args, operands, out, has_min, has_max):
    value = cast(args[0], operands[0].dtype, out)
    bounds = [cast(a, o.dtype, out) for a, o in zip(args[1:], operands[1:])]
    maximum, minimum = _extreme(">"), _extreme("<")
    same = [Operand(out, 0)] * 2
    if has_min:
        value = maximum([value, bounds[0]], same, out)
    if has_max:
        value = minimum([value, bounds[-1]], same, out)
    return value


def _where(args, operands, out, **_):
    c, x, y = args
    return (f"(({c}) ? {cast(x, operands[1].dtype, out)} : "
            f"{cast(y, operands[2].dtype, out)})")


def _cast(args, operands, out, **_):
    return cast(args[0], operands[0].dtype, out)


def _fill(args, operands, out, value):
    return literal(value, out)


def _compare(symbol: str) -> Expr:
    def expr(args, operands, out, **_):
        t = dtypes.result_type(*operands)  # torch's: a 0-d float64 compares in float32
        a, b = (cast(x, o.dtype, t) for x, o in zip(args, operands))
        return f"(uchar)(({a}) {symbol} ({b}))"
    return expr


def _logical(symbol: str) -> Expr:
    def expr(args, operands, out, **_):
        return "(uchar)(" + f" {symbol} ".join(f"({a} != 0)" for a in args) + ")"
    return expr


def _not(args, operands, out, **_):
    return f"(uchar)({args[0]} == 0)"


def _e(expr: Expr) -> OpenCLLowering:
    return OpenCLLowering(How.EXPR, expr)


def _v(expr: Expr, costly: bool = False) -> OpenCLLowering:
    """An expression of arithmetic, OpenCL's math functions and the helpers' vector
    overloads: valid on vectors too."""
    return OpenCLLowering(How.EXPR, expr, vectors=True, costly=costly)


def _math(function: str) -> OpenCLLowering:
    return _v(_math_expr(function), costly=True)


REDUCE = OpenCLLowering(How.REDUCE, vectors=True)  # (their combines are vector-safe)
VIEW = OpenCLLowering(How.VIEW, vectors=True)
INDEX_MAP = OpenCLLowering(How.INDEX_MAP, vectors=True)  # (in a fused kernel: broadcasts)
HOST = OpenCLLowering(How.HOST)

OPENCL: dict[Primitive, OpenCLLowering] = {
    # elementwise: expressions, fused by the code generator into any kernel
    P.add: _v(_binary("+")), P.sub: _v(_binary("-")), P.mul: _v(_binary("*")),
    P.div: _v(_div), P.pow: _v(_pow, costly=True), P.maximum: _v(_extreme(">")),
    P.minimum: _v(_extreme("<")), P.neg: _v(_neg), P.exp: _math("exp"),
    P.log: _math("log"), P.sqrt: _v(_math_expr("sqrt")), P.tanh: _math("tanh"),
    P.erf: _math("erf"), P.floor: _v(_floor), P.sin: _math("sin"), P.cos: _math("cos"),
    P.floor_divide: _e(_floating_helper("sg_floor_divide")),
    P.remainder: _e(_floating_helper("sg_remainder")), P.abs: _v(_abs), P.sign: _e(_sign),
    P.sigmoid: _e(_sigmoid),
    P.relu: _e(_relu), P.threshold_backward: _e(_threshold_backward),
    P.softplus: _e(_softplus), P.leaky_relu: _e(_leaky_relu), P.silu: _e(_silu),
    P.elu: _e(_elu), P.hardtanh: _e(_hardtanh), P.clamp: _e(_clamp), P.where: _e(_where),
    P.cast: _e(_cast),
    P.fill: _e(_fill), P.stop_gradient: VIEW,
    P.eq: _e(_compare("==")), P.ne: _e(_compare("!=")), P.lt: _e(_compare("<")),
    P.le: _e(_compare("<=")), P.gt: _e(_compare(">")), P.ge: _e(_compare(">=")),
    P.logical_and: _e(_logical("&&")), P.logical_or: _e(_logical("||")),
    P.logical_not: _e(_not),
    # reductions: what they compute is the primitive's ``reduction``
    P.sum: REDUCE, P.mean: REDUCE, P.prod: REDUCE, P.max: REDUCE, P.min: REDUCE,
    P.sum_to: OpenCLLowering(How.SUM_TO),
    P.argmax: HOST, P.argmin: HOST, P.size_of: HOST, P.cumsum: HOST,
    # movement
    P.reshape: VIEW, P.reshape_as: VIEW, P.expand_dims: VIEW, P.squeeze: VIEW,
    P.transpose: INDEX_MAP, P.broadcast_to: INDEX_MAP, P.expand_as: INDEX_MAP,
    P.concat: OpenCLLowering(How.CONCAT),
    # indexing: basic slicing is an index map; with index arrays it runs on the host
    P.getitem: INDEX_MAP, P.check_index: HOST, P.scatter_add: HOST, P.index_put: HOST,
    P.arange_like: HOST, P.nonzero: HOST,
    # composites: decomposed into the primitives above unless the passes leave them whole
    P.softmax: HOST, P.log_softmax: HOST, P.gelu: HOST, P.layer_norm: HOST,
    P.nll_loss: HOST, P.mse_loss: HOST, P.gather: HOST,
    P.binary_cross_entropy: HOST, P.conv2d: HOST, P.conv_transpose2d: HOST,
    P.max_pool2d: HOST, P.avg_pool2d: HOST, P.batch_norm: HOST,
    # convolutions' windows: a gather each (see codegen's im2col_launch, col2im_launch)
    P.im2col: OpenCLLowering(How.IM2COL), P.col2im: OpenCLLowering(How.COL2IM),
    P.after: VIEW, P.uniform_like: HOST, P.check_range: HOST,
    # MPI collectives: on host arrays, between device kernels
    P.allreduce: HOST, P.broadcast: HOST, P.allgather: HOST,
    P.allreduce_start: HOST, P.allreduce_wait: HOST,
    # linear algebra
    P.matmul: OpenCLLowering(How.MATMUL),
}

# Identities of the reductions' combining primitives, and helpers the expressions call.
IDENTITY = {P.add: 0, P.mul: 1, P.maximum: -math.inf, P.minimum: math.inf}


def identity(combine: Primitive, dtype: np.dtype) -> str:
    value = IDENTITY[combine]
    if math.isinf(value) and not _floating(dtype):
        info = np.iinfo(dtype) if dtype != np.bool_ else None
        value = (0 if value < 0 else 1) if info is None else \
            (info.min if value < 0 else info.max)
    return literal(value, dtype)


def member_expr(prim: Primitive, args: list[str], operands: list[Operand], out: np.dtype,
                params: dict) -> str | None:
    """A fused member as a C expression. Fusion also admits broadcasts (``broadcast_to``,
    ``expand_as``) and ``stop_gradient``: in a kernel that reads operands through broadcast
    index arithmetic, each is its first operand."""
    lowering = OPENCL[prim]
    if lowering.how is How.EXPR:
        return lowering.expr(args, operands, out, **params)
    return cast(args[0], operands[0].dtype, out)


def combine_expr(combine: Primitive, a: str, b: str, dtype: np.dtype) -> str:
    operands = [Operand(dtype, 0)] * 2
    return OPENCL[combine].expr([a, b], operands, dtype)


LANES = 16  # elements of a vector a CPU kernel's row loop steps over (AVX-512: 16 floats)

# ($T is the floating type, $V its vector; the sigmoid is the reference kernel's: exp(-|x|)
# never overflows)
_HELPERS = string.Template("""
OVERLOAD $T sg_max($T a, $T b) { return (isnan(a) || a > b) ? a : b; }
OVERLOAD $T sg_min($T a, $T b) { return (isnan(a) || a < b) ? a : b; }
OVERLOAD $T sg_sigmoid($T x) {
    $T e = exp(-fabs(x)); $T r = ($T)1 / (($T)1 + e); return x >= 0 ? r : e * r; }
OVERLOAD $T sg_softplus($T x, $T beta, $T threshold) {
    return x * beta > threshold ? x : log1p(exp(x * beta)) / beta; }
OVERLOAD $T sg_floor_divide($T a, $T b) {  /* numpy's (Python's) floor division */
    if (b == 0) return a / b;
    $T m = fmod(a, b), d = (a - m) / b;
    if (m != 0 && ((b < 0) != (m < 0))) d -= 1;
    if (d == 0) return copysign(($T)0, a / b);
    $T f = floor(d); return d - f > ($T)0.5 ? f + 1 : f; }
OVERLOAD $T sg_remainder($T a, $T b) {  /* the sign of b, as numpy's and torch's % */
    $T m = fmod(a, b);
    if (m == 0) return copysign(($T)0, b);
    return ((b < 0) != (m < 0)) ? m + b : m; }
OVERLOAD $V sg_max($V a, $V b) { return (isnan(a) || a > b) ? a : b; }
OVERLOAD $V sg_min($V a, $V b) { return (isnan(a) || a < b) ? a : b; }
""")


def prelude(float_types: Sequence[str]) -> str:
    """The helper functions, overloaded for each floating type the device computes in."""
    lines = ["#pragma OPENCL EXTENSION cl_khr_fp64 : enable"] if "double" in float_types else []
    lines.append("#define OVERLOAD inline __attribute__((overloadable))")
    lines += [_HELPERS.substitute(T=t, V=f"{t}{LANES}") for t in float_types]
    return "\n".join(lines)
