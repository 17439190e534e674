"""TF1's random ops and initializers. The numbers are drawn from numpy when the graph is built
(TF draws them each time the graph runs), so they serve as initial values of Variables; the
seeds are TF1's: ``set_random_seed`` for the graph, ``seed=`` for one op."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...graph import Node, constant, get_default_graph
from ...ops import dtypes

_DEFAULT_GRAPH_SEED = 87654321  # TF1's, for an op seed without a graph seed


def set_random_seed(seed: int | None) -> None:
    """The default graph's seed: its random ops draw the same numbers each time the program
    builds it."""
    get_default_graph().seed = seed


def _generator(seed: int | None) -> np.random.Generator:
    # TF1's rule: an op without a seed of its own takes the graph's op count as one when the
    # graph has a seed; with neither seed, the numbers differ from run to run.
    graph = get_default_graph()
    if graph.seed is None and seed is None:
        return np.random.default_rng()
    graph_seed = _DEFAULT_GRAPH_SEED if graph.seed is None else graph.seed
    op_seed = len(graph) if seed is None else seed
    return np.random.default_rng([graph_seed % 2**64, op_seed % 2**64])


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(shape)
    if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
        raise ValueError(f"random values need a fully known shape of sizes >= 0, got {shape}")
    return shape


def _normal(shape, mean, stddev, dtype, seed) -> np.ndarray:
    values = _generator(seed).normal(mean, stddev, _shape(shape))
    return values.astype(dtypes.as_dtype(dtype))


def _truncated_normal(shape, mean, stddev, dtype, seed) -> np.ndarray:
    """Normal values more than two standard deviations from the mean drawn again, as TF's."""
    rng = _generator(seed)
    values = rng.standard_normal(_shape(shape))
    while (outside := np.abs(values) > 2).any():
        values[outside] = rng.standard_normal(int(outside.sum()))
    return (mean + stddev * values).astype(dtypes.as_dtype(dtype))


def _uniform(shape, minval, maxval, dtype, seed) -> np.ndarray:
    dtype, rng = dtypes.as_dtype(dtype), _generator(seed)
    if dtypes.is_floating(dtype):
        return rng.uniform(minval, 1 if maxval is None else maxval, _shape(shape)).astype(dtype)
    if maxval is None:
        raise ValueError(f"Must specify maxval for integer dtype {dtype.name}")
    return rng.integers(minval, maxval, _shape(shape)).astype(dtype)


def random_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0,
                  dtype: Any = dtypes.float32, seed: int | None = None,
                  name: str | None = None) -> Node:
    return constant(_normal(shape, mean, stddev, dtype, seed), name=name or "random_normal")


def truncated_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0,
                     dtype: Any = dtypes.float32, seed: int | None = None,
                     name: str | None = None) -> Node:
    return constant(_truncated_normal(shape, mean, stddev, dtype, seed),
                    name=name or "truncated_normal")


def random_uniform(shape: Sequence[int], minval: float = 0, maxval: float | None = None,
                   dtype: Any = dtypes.float32, seed: int | None = None,
                   name: str | None = None) -> Node:
    """Uniform in [minval, maxval); maxval defaults to 1 for floats and is required for
    integers."""
    return constant(_uniform(shape, minval, maxval, dtype, seed), name=name or "random_uniform")


def filled(value: Any, shape: Sequence[int] | None, dtype: Any) -> np.ndarray:
    """``value`` as an array of ``shape``: a single value fills it, as many values as it has
    elements are reshaped to it (TF1's tf.constant and constant_initializer)."""
    array = dtypes.as_array(value, dtype)
    if shape is None:
        return array
    shape = tuple(shape)
    if array.size == 1:
        return np.full(shape, array.reshape(()), array.dtype)
    if array.size != math.prod(shape):
        raise TypeError(f"Expected {math.prod(shape)} values for shape {list(shape)}, got "
                        f"{array.size}")
    return array.reshape(shape)


class Initializer:
    """TF1's initializers: ``init(shape, dtype=None)`` gives a Variable's initial value (an
    array, drawn now), in the initializer's dtype unless one is given."""

    def __init__(self, dtype: Any = dtypes.float32) -> None:
        self.dtype = dtypes.as_dtype(dtype)

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return self._values(_shape(shape), dtypes.as_dtype(dtype or self.dtype))

    def _values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        raise NotImplementedError


class Zeros(Initializer):
    def _values(self, shape, dtype):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    def _values(self, shape, dtype):
        return np.ones(shape, dtype)


class Constant(Initializer):
    def __init__(self, value: Any = 0, dtype: Any = dtypes.float32) -> None:
        super().__init__(dtype)
        self.value = value

    def _values(self, shape, dtype):
        return filled(self.value, shape, dtype)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = dtypes.float32) -> None:
        super().__init__(dtype)
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def _values(self, shape, dtype):
        return _normal(shape, self.mean, self.stddev, dtype, self.seed)


class TruncatedNormal(RandomNormal):
    def _values(self, shape, dtype):
        return _truncated_normal(shape, self.mean, self.stddev, dtype, self.seed)


class RandomUniform(Initializer):
    def __init__(self, minval: float = 0, maxval: float | None = None,
                 seed: int | None = None, dtype: Any = dtypes.float32) -> None:
        super().__init__(dtype)
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def _values(self, shape, dtype):
        return _uniform(shape, self.minval, self.maxval, dtype, self.seed)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """TF's fan-in and fan-out: a kernel's (..., in, out), its receptive field counted."""
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    """Values of variance ``scale / n``, n the fan-in, fan-out or their mean (``mode``);
    "normal" is truncated at two standard deviations (and rescaled for it), as TF1's."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 dtype: Any = dtypes.float32) -> None:
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}")
        if distribution not in ("normal", "truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}")
        super().__init__(dtype)
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def _values(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return _uniform(shape, -limit, limit, dtype, self.seed)
        if self.distribution == "untruncated_normal":
            return _normal(shape, 0.0, math.sqrt(variance), dtype, self.seed)
        # the standard deviation of a unit normal truncated at +-2
        return _truncated_normal(shape, 0.0, math.sqrt(variance) / .87962566103423978, dtype,
                                 self.seed)


class GlorotUniform(VarianceScaling):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)): TF1's default for get_variable."""

    def __init__(self, seed: int | None = None, dtype: Any = dtypes.float32) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None, dtype: Any = dtypes.float32) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)


# TF1's names for them
zeros_initializer, ones_initializer, constant_initializer = Zeros, Ones, Constant
random_normal_initializer, truncated_normal_initializer = RandomNormal, TruncatedNormal
random_uniform_initializer, variance_scaling_initializer = RandomUniform, VarianceScaling
glorot_uniform_initializer, glorot_normal_initializer = GlorotUniform, GlorotNormal
