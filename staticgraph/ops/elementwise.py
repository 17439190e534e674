"""Elementwise primitives: arithmetic, transcendental functions, comparisons, where, cast."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from . import dtypes
from .primitive import Kind, Primitive, Saves
from .shapes import Shape, broadcast_shapes

E = Kind.ELEMENTWISE


def same_shape(x, **_) -> Shape:
    return x.shape


def broadcast_shape(*xs, **_) -> Shape:
    return broadcast_shapes(*(x.shape for x in xs))


def promoted(*xs, **_) -> np.dtype:
    return dtypes.result_type(*xs)


def _not_on_bools(message: str):
    """torch's promotion, refusing what torch refuses for bools (numpy would only fail when
    the kernel runs)."""
    def rule(*xs, **_) -> np.dtype:
        dtype = dtypes.result_type(*xs)
        if dtype == np.bool_:
            raise dtypes.DTypeError(message)
        return dtype
    return rule


def promoted_float(*xs, **_) -> np.dtype:
    """Division and transcendental functions of integers give the default float (torch)."""
    dtype = dtypes.result_type(*xs)
    return dtype if dtypes.is_floating(dtype) else dtypes.DEFAULT_FLOAT


def boolean(*_, **__) -> np.dtype:
    return dtypes.bool_


def quiet(ufunc: Callable) -> Callable:
    """log(0), x/0, sqrt(-1), inf - inf give inf/nan silently, as in torch, instead of numpy
    warnings.
    (Compiled schedules silence the whole run once instead, and call the ufunc itself: the
    numpy runtime's table.)"""
    def kernel(*arrays):
        with np.errstate(all="ignore"):
            return ufunc(*arrays)
    kernel.__name__ = ufunc.__name__
    return kernel


def sigmoid_kernel(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows, so both branches are exact and warning-free.
    if x.dtype.kind not in "fc":  # torch: the sigmoid of integers is a float
        x = x.astype(dtypes.DEFAULT_FLOAT)
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r).astype(x.dtype, copy=False)


def _in_default_float(kernel: Callable) -> Callable:
    """Integers and bools computed in the default float, as torch does (numpy would pick
    float16 for small integers: exp of a uint8 4 would be 54.59, not 54.598)."""
    def run(x):
        return kernel(x.astype(dtypes.DEFAULT_FLOAT) if x.dtype.kind in "biu" else x)
    run.__name__ = getattr(kernel, "__name__", "kernel")
    return run


def _unary(name: str, kernel, vjp, saves=Saves.INPUTS, dtype_rule=promoted_float) -> Primitive:
    if dtype_rule is promoted_float:
        kernel = _in_default_float(kernel)
    return Primitive(name=name, kind=E, kernel=kernel, shape_rule=same_shape,
                     dtype_rule=dtype_rule, vjps=(vjp,), saves=saves,
                     grad_name=name.capitalize() + "Backward0")


def _binary(name: str, kernel, vjps, saves=Saves.INPUTS, dtype_rule=promoted) -> Primitive:
    return Primitive(name=name, kind=E, kernel=kernel, shape_rule=broadcast_shape,
                     dtype_rule=dtype_rule, vjps=vjps, saves=saves,
                     grad_name=name.capitalize() + "Backward0")


def _pow_base_vjp(g, out, x, y):
    # d/dx x**y = y * x**(y-1); torch defines it as 0 where y == 0 (even at x == 0).
    return (g * y * x ** (y - 1)).where(~(y == 0), 0)


def _pow_exponent_vjp(g, out, x, y):
    # d/dy x**y = x**y * log(x); torch defines it as 0 where x == 0 and y >= 0.
    return (g * out * x.log()).where(~((x == 0) & (y >= 0)), 0)


def _zero_where(condition, g):
    """0 where ``condition`` holds, else g: torch's masked_fill and threshold_backward, which
    pass g on where the condition is false, NaN comparisons included."""
    return g._apply(where, condition, g._lift(0, g.dtype), g)


def _extremum_vjp(loses: Callable) -> tuple:
    """maximum/minimum: the winner takes the gradient, a tie splits it in half; a NaN on
    either side passes it to both (torch masks only the side that loses)."""
    def first(g, out, x, y):
        return (g * 0.5).where(x == y, _zero_where(loses(x, y), g))

    def second(g, out, x, y):
        return (g * 0.5).where(x == y, _zero_where(loses(y, x), g))
    return first, second


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)

add = _binary("add", quiet(np.add), (lambda g, out, x, y: g, lambda g, out, x, y: g), Saves.NOTHING)
sub = _binary("sub", quiet(np.subtract), (lambda g, out, x, y: g, lambda g, out, x, y: -g),
              Saves.NOTHING, dtype_rule=_not_on_bools(
                  "Subtraction, the `-` operator, with two bool tensors is not supported. Use "
                  "the `^` or `logical_xor()` operator instead."))
mul = _binary("mul", quiet(np.multiply), (lambda g, out, x, y: g * y, lambda g, out, x, y: g * x))
div = _binary("div", quiet(np.true_divide),
              (lambda g, out, x, y: g / y, lambda g, out, x, y: -g * x / (y * y)),
              dtype_rule=promoted_float)
pow = _binary("pow", quiet(np.power), (_pow_base_vjp, _pow_exponent_vjp),
              Saves.INPUTS | Saves.OUTPUT)
maximum = _binary("maximum", np.maximum, _extremum_vjp(lambda x, y: x < y))
minimum = _binary("minimum", np.minimum, _extremum_vjp(lambda x, y: x > y))

neg = _unary("neg", np.negative, lambda g, out, x: -g, Saves.NOTHING, _not_on_bools(
    "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
    "invert a mask, use the `~` or `logical_not()` operator instead."))
exp = _unary("exp", quiet(np.exp), lambda g, out, x: g * out, Saves.OUTPUT)
log = _unary("log", quiet(np.log), lambda g, out, x: g / x)
sqrt = _unary("sqrt", quiet(np.sqrt), lambda g, out, x: g / (2 * out), Saves.OUTPUT)
tanh = _unary("tanh", np.tanh, lambda g, out, x: g * (1 - out * out), Saves.OUTPUT)
sigmoid = _unary("sigmoid", sigmoid_kernel, lambda g, out, x: g * out * (1 - out), Saves.OUTPUT)
# torch's threshold_backward: 0 where out <= 0, else the gradient (NaN passes it on).
def threshold_backward_into(g, x, out, threshold: float):
    return where_into(x <= threshold, 0, g, out)


def _threshold_backward(g, x, threshold: float):
    return threshold_backward_into(g, x, np.empty(np.broadcast_shapes(g.shape, x.shape),
                                                  g.dtype), threshold)


# torch's threshold_backward: g where x > threshold, else 0 (a NaN x passes g on). relu's VJP;
# its own derivative in x is zero but keeps x connected, so a second-order gradient through
# relu is zeros where torch gives zeros, not an unused input.
threshold_backward = Primitive(
    name="threshold_backward", kind=E, kernel=_threshold_backward, shape_rule=broadcast_shape,
    dtype_rule=lambda g, x, threshold: g.dtype,
    vjps=(lambda gg, out, g, x, threshold: gg._apply(threshold_backward, gg, x,
                                                     threshold=threshold),
          lambda gg, out, g, x, threshold: x._fill(0)),
    saves=Saves.INPUTS, grad_name="ThresholdBackwardBackward0")
relu = _unary("relu", lambda x: np.maximum(x, 0),
              lambda g, out, x: g._apply(threshold_backward, g, out, threshold=0.0),
              Saves.OUTPUT, promoted)
abs = _unary("abs", np.abs, lambda g, out, x: g * x.sign(), dtype_rule=promoted)
def sign_kernel(x, out=None):
    """-1, 0 or 1; torch's sign of nan is 0 (numpy's is nan)."""
    out = np.asarray(np.sign(x, out=out))
    if out.dtype.kind == "f":
        np.copyto(out, 0, where=np.isnan(out))
    return out


# Zeros, not g * 0: an infinite or nan g must not make them nan (torch's sign backward).
sign = _unary("sign", sign_kernel, lambda g, out, x: g._fill(0), Saves.NOTHING, promoted)
erf = _unary("erf", special.erf,
             lambda g, out, x: g * _TWO_OVER_SQRT_PI * (-(x * x)).exp())
# Zeros (torch's floor backward): flat between the steps, where a gradient is defined.
floor = _unary("floor", np.floor, lambda g, out, x: g._fill(0), Saves.NOTHING, promoted)
sin = _unary("sin", np.sin, lambda g, out, x: g * x.cos())
cos = _unary("cos", np.cos, lambda g, out, x: -g * x.sin())


def _integer_division(ufunc: np.ufunc) -> Callable:
    """numpy's floor division or remainder (Python's, as torch's ``//`` and ``%``); an integer
    division by zero raises, as torch does, where numpy would give 0 and warn."""
    def kernel(x, y, out=None):
        if dtypes.result_type(x, y).kind in "iub" and not np.all(y):
            raise RuntimeError("ZeroDivisionError: an integer division or remainder by zero")
        with np.errstate(all="ignore"):
            return ufunc(x, y, out=out, casting="unsafe")
    kernel.__name__ = ufunc.__name__
    return kernel


def _remainder_divisor_vjp(g, out, x, y):
    # x % y = x - floor(x / y) y: -floor(x / y) per unit of y (torch's remainder backward)
    return -g * (x // y)


_NO_BOOLS = "{} of two bool tensors is not supported; cast them to an integer type first"
# torch's ``//``: its gradient is not implemented in torch, and here there is none (a result
# never requires grad); ``%`` passes g to x and -floor(x / y) g to y.
floor_divide = Primitive(name="floor_divide", kind=E, kernel=_integer_division(np.floor_divide),
                         shape_rule=broadcast_shape,
                         dtype_rule=_not_on_bools(_NO_BOOLS.format("floor_divide")))
remainder = _binary("remainder", _integer_division(np.remainder),
                    (lambda g, out, x, y: g, _remainder_divisor_vjp),
                    dtype_rule=_not_on_bools(_NO_BOOLS.format("remainder")))


def softplus_kernel(x: np.ndarray, beta: float, threshold: float,
                    out: np.ndarray | None = None) -> np.ndarray:
    """torch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold
    (where the two agree to float precision and exp would overflow)."""
    linear = x * beta > threshold
    with np.errstate(over="ignore"):
        out = np.asarray(np.multiply(x, beta, out=out))  # (a 0-d x gives a numpy scalar)
        np.exp(out, out=out)
    np.log1p(out, out=out)
    np.divide(out, beta, out=out)
    np.copyto(out, x, where=linear, casting="unsafe")
    return out


def _softplus_vjp(g, out, x, beta, threshold):
    # torch's softplus_backward: 1 where the result is x itself, else the sigmoid of beta x
    # (so a nan x gives a nan gradient, as in torch).
    return g.where(x * beta > threshold, g * (x * beta).sigmoid())


softplus = Primitive(name="softplus", kind=E, kernel=softplus_kernel, shape_rule=same_shape,
                     dtype_rule=promoted_float, vjps=(_softplus_vjp,), saves=Saves.INPUTS,
                     grad_name="SoftplusBackward0")

# x, once the other inputs are computed: a control dependency. Batch norm's output carries the
# updates of its running statistics this way, so they run whenever the output is computed.
after = Primitive(name="after", kind=Kind.OPAQUE, kernel=lambda x, *_: x,
                  shape_rule=lambda x, *_: x.shape, dtype_rule=lambda x, *_: x.dtype,
                  vjps=lambda g, out, x, *_, index: g, diff_inputs=(0,))


def _check_range_kernel(x, low: float, high: float, message: str):
    if ((x < low) | (x > high)).any():  # (a NaN passes, as in torch)
        raise RuntimeError(message)
    return x


# x itself, once every element lies in [low, high]: a decomposed composite keeps its
# kernel's refusal (binary_cross_entropy of values that are not probabilities).
check_range = Primitive(name="check_range", kind=Kind.OPAQUE, kernel=_check_range_kernel,
                        shape_rule=lambda x, **_: x.shape, dtype_rule=lambda x, **_: x.dtype,
                        vjps=(lambda g, out, x, **_: g,))


def _uniform_kernel(like, key, stream: int):
    """Uniform numbers in [0, 1) of like's shape and float dtype, a function of (key,
    stream) alone: the same key gives the same numbers; another run, another key."""
    rng = np.random.default_rng([int(k) for k in np.ravel(key)] + [stream])
    dtype = like.dtype if like.dtype.kind == "f" else dtypes.DEFAULT_FLOAT
    return rng.random(like.shape, dtype=dtype)


# The random numbers graphs draw (dropout's mask): ``key`` is fed by the Session for each
# run (its seed and a run counter), ``stream`` tells the draws of one run apart.
uniform_like = Primitive(name="uniform_like", kind=Kind.OPAQUE, kernel=_uniform_kernel,
                         shape_rule=lambda like, key, stream: like.shape,
                         dtype_rule=lambda like, key, stream: promoted_float(like))


# -- activations of convolutional networks (torch.nn.functional's) ------------------------------

def _floats_only(name: str):
    def rule(x, **_) -> np.dtype:
        if not dtypes.is_floating(x.dtype):
            raise dtypes.DTypeError(f'"{name}" not implemented for '
                                    f"'{dtypes.torch_name(x.dtype).capitalize()}'")
        return x.dtype
    return rule


def _written(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """A kernel's result, in ``out`` where the numpy runtime gives a buffer."""
    if out is None:
        return result
    np.copyto(out, result, casting="unsafe")
    return out


def leaky_relu_kernel(x, negative_slope: float, out=None):
    return _written(np.where(x > 0, x, x * x.dtype.type(negative_slope)), out)


def silu_kernel(x, out=None):
    return _written(x * sigmoid_kernel(x), out)


def elu_kernel(x, alpha: float, out=None):
    with np.errstate(over="ignore"):
        return _written(np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))),
                        out)


def hardtanh_kernel(x, min_val: float, max_val: float, out=None):
    return _written(np.clip(x, x.dtype.type(min_val), x.dtype.type(max_val)), out)


def _silu_vjp(g, out, x):
    s = x.sigmoid()
    return g * s * (1 + x * (1 - s))


# torch's backward rules, NaN included: leaky_relu's slope where x is not > 0, elu's g
# where x is not <= 0, hardtanh's g where x is not at or past a bound.
leaky_relu = Primitive(
    name="leaky_relu", kind=E, kernel=leaky_relu_kernel, shape_rule=same_shape,
    dtype_rule=_floats_only("leaky_relu_cpu"), saves=Saves.INPUTS,
    vjps=(lambda g, out, x, negative_slope: g.where(x > 0, g * negative_slope),),
    grad_name="LeakyReluBackward0")
silu = Primitive(name="silu", kind=E, kernel=silu_kernel, shape_rule=same_shape,
                 dtype_rule=_floats_only("silu"), vjps=(_silu_vjp,), saves=Saves.INPUTS,
                 grad_name="SiluBackward0")
elu = Primitive(
    name="elu", kind=E, kernel=elu_kernel, shape_rule=same_shape, dtype_rule=_floats_only("elu"),
    vjps=(lambda g, out, x, alpha: (g * alpha * x.exp()).where(x <= 0, g),),
    saves=Saves.INPUTS, grad_name="EluBackward0")
hardtanh = Primitive(
    name="hardtanh", kind=E, kernel=hardtanh_kernel, shape_rule=same_shape, dtype_rule=promoted,
    vjps=(lambda g, out, x, min_val, max_val: _zero_where((x <= min_val) | (x >= max_val), g),),
    saves=Saves.INPUTS, grad_name="HardtanhBackward0")


def where_into(c, x, y, out):
    """where() as bit arithmetic for floats: out = (x & m) | (y & ~m), m all ones where c.
    Exactly np.where (nan, inf and -0.0 included) but about 8x faster: np.where branches
    per element, which random masks (relu's) make slow."""
    if out.dtype.kind != "f":
        np.copyto(out, y, casting="unsafe")
        np.copyto(out, x, casting="unsafe", where=c)
        return out
    bits = np.dtype(f"i{out.dtype.itemsize}")
    mask = np.negative(c, dtype=bits)  # True -> -1, all bits set
    x_bits = np.asarray(x, out.dtype).view(bits)
    y = np.asarray(y, out.dtype)
    np.bitwise_and(x_bits, mask, out=out.view(bits))
    if y.any() or np.signbit(y).any():  # y = +0.0 adds nothing
        out.view(bits)[...] |= np.bitwise_and(y.view(bits), np.invert(mask))
    return out


def _where(c, x, y):
    out = np.empty(np.broadcast_shapes(np.shape(c), np.shape(x), np.shape(y)),
                   np.result_type(x, y))
    return where_into(c, x, y, out)


where = Primitive(name="where", kind=E, kernel=_where, shape_rule=broadcast_shape,
                  dtype_rule=lambda c, x, y: dtypes.result_type(x, y),
                  vjps=(None, lambda g, out, c, x, y: g.where(c, 0),
                        lambda g, out, c, x, y: g.where(~c, 0)),
                  saves=Saves.INPUTS, grad_name="WhereBackward0")


def clamp_bounds(bounds: tuple, has_min: bool, has_max: bool) -> tuple:
    """(min or None, max or None) from clamp's bound inputs."""
    return (bounds[0] if has_min else None), (bounds[-1] if has_max else None)


def _clamp_kernel(x, *bounds, has_min: bool, has_max: bool):
    lo, hi = clamp_bounds(bounds, has_min, has_max)
    out = x if lo is None else np.maximum(x, lo)
    return out if hi is None else np.minimum(out, hi)


def _clamp_vjp(g, out, x, *bounds, has_min: bool, has_max: bool, index: int):
    """torch's clamp_backward: x gets the gradient where it lies within the bounds (ends
    included); a tensor bound gets it where it clamped x."""
    lo, hi = clamp_bounds(bounds, has_min, has_max)
    if index == 0:
        inside = x >= lo if lo is not None else None
        if hi is not None:
            inside = x <= hi if inside is None else inside & (x <= hi)
        return g.where(inside, 0)
    return g.where(x < lo, 0) if index == 1 and has_min else g.where(x > hi, 0)


# x with values below min set to min and above max set to max; the bounds are inputs
# (``has_min``/``has_max`` say which are there), numbers lifted as constants.
clamp = Primitive(name="clamp", kind=E, kernel=_clamp_kernel, shape_rule=broadcast_shape,
                  dtype_rule=promoted, vjps=_clamp_vjp, saves=Saves.INPUTS,
                  grad_name="ClampBackward0")


def _cast_kernel(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


cast = Primitive(name="cast", kind=E, kernel=_cast_kernel, shape_rule=same_shape,
                 dtype_rule=lambda x, dtype: dtype,
                 vjps=(lambda g, out, x, dtype: g.to(x.dtype),), grad_name="ToCopyBackward0")
# A tensor of x's shape and dtype filled with ``value``: zero_/fill_ in eager, and the
# zeros and ones gradient code needs when shapes are known only at run time.
fill = Primitive(name="fill", kind=E, kernel=lambda x, value: np.full(x.shape, value, x.dtype),
                 shape_rule=same_shape, dtype_rule=lambda x, value: x.dtype,
                 vjps=(lambda g, out, x, value: g._fill(0),), grad_name="FillBackward2")
# The identity that hides its input from differentiation (eager's detach, tf.stop_gradient).
stop_gradient = Primitive(name="stop_gradient", kind=E, kernel=lambda x: x,
                          shape_rule=same_shape, dtype_rule=promoted)


def comparison_kernel(ufunc: np.ufunc) -> Callable:
    """Compare in torch's promoted dtype: a float32 tensor against a float64 0-d value compares
    in float32 (numpy would compare in float64)."""
    def kernel(x, y, out=None):
        if x.dtype != y.dtype:
            dtype = dtypes.result_type(x, y)
            x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        return ufunc(x, y, out=out)
    kernel.__name__ = ufunc.__name__
    return kernel


def _comparison(name: str, ufunc) -> Primitive:
    return Primitive(name=name, kind=E, kernel=comparison_kernel(ufunc),
                     shape_rule=broadcast_shape, dtype_rule=boolean)


eq = _comparison("eq", np.equal)
ne = _comparison("ne", np.not_equal)
lt = _comparison("lt", np.less)
le = _comparison("le", np.less_equal)
gt = _comparison("gt", np.greater)
ge = _comparison("ge", np.greater_equal)
logical_and = _comparison("logical_and", np.logical_and)
logical_or = _comparison("logical_or", np.logical_or)
logical_not = Primitive(name="logical_not", kind=E, kernel=np.logical_not,
                        shape_rule=same_shape, dtype_rule=boolean)

PRIMITIVES = (add, sub, mul, div, pow, maximum, minimum, neg, exp, log, sqrt, tanh, sigmoid,
              relu, threshold_backward, abs, sign, erf, floor, sin, cos, floor_divide, remainder,
              softplus, leaky_relu, silu, elu, hardtanh, after, check_range, uniform_like,
              clamp, where, cast,
              fill, stop_gradient, eq, ne, lt, le, gt, ge, logical_and, logical_or, logical_not)
