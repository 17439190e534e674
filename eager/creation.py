"""Tensor factories with PyTorch's names and defaults (float32 unless told otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from staticgraph.ops import dtypes
from staticgraph.ops.callers import warn_user
from staticgraph.trace import tracing

from .tensor import Tensor

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed eager's random numbers (numpy's PCG64: the same seed does not give torch's values)."""
    global _generator
    _generator = np.random.default_rng(seed)


def _shape(size: Sequence[Any], caller: str) -> tuple[int, ...]:
    """Sizes as torch takes them: ints (or one tuple or list of them), never floats."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    for k, d in enumerate(size):
        if isinstance(d, (bool, np.bool_)) or not hasattr(d, "__index__"):  # (2.5, "3")
            raise TypeError(f"{caller}(): argument 'size' (position {k + 1}) must be tuple of "
                            f"ints, not {type(d).__name__}")
    return tuple(int(d) for d in size)


def _new(array: np.ndarray, dtype: Any, requires_grad: bool) -> Tensor:
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype), copy=False)
    return Tensor._make(array)._set_requires_grad(
        requires_grad, "Only Tensors of floating point and complex dtype can require gradients")


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, numpy arrays)."""
    if isinstance(data, Tensor):
        data = data._data
    # Convert straight to ``dtype``: going through float32 first would round 0.3.
    return _new(np.array(dtypes.as_array(data, dtype)), None, requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype):
        return data
    return tensor(data, dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory, as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._make(dtypes.as_array(array))


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape(size, "zeros"), dtypes.DEFAULT_FLOAT), dtype, requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape(size, "ones"), dtypes.DEFAULT_FLOAT), dtype, requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_shape(size, "empty"), dtypes.DEFAULT_FLOAT), dtype, requires_grad)


def _dtype(dtype: Any, default: np.dtype) -> np.dtype:
    """Compute in the requested dtype from the start: 0.1 made in float32 and then widened
    is not float64's 0.1."""
    return default if dtype is None else dtypes.as_dtype(dtype)


def full(size: Sequence[int], fill_value: Any, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    array = np.full(_shape((size,), "full"), fill_value,
                    _dtype(dtype, dtypes.scalar_dtype(fill_value)))
    return _new(array, None, requires_grad)


def _warn_if_traced(name: str) -> None:
    if tracing():
        warn_user(f"eager.{name} called while sg.trace traces a function: the numbers are "
                  "drawn once, now, and every call of the traced function uses the same ones; "
                  "draw them outside and pass them in as an input to get new ones each call")


def _random(name: str, draw, size, dtype: Any, requires_grad: bool) -> Tensor:
    _warn_if_traced(name)
    dtype = _dtype(dtype, dtypes.DEFAULT_FLOAT)
    if dtype not in (dtypes.float32, dtypes.float64):
        raise TypeError(f"random floats are drawn as float32 or float64, not {dtype.name}")
    return _new(draw(_shape(size, name), dtype=dtype), None, requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _random("randn", _generator.standard_normal, size, dtype, requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _random("rand", _generator.random, size, dtype, requires_grad)


def randint(low: int, high: int, size: Sequence[int], dtype: Any = None) -> Tensor:
    _warn_if_traced("randint")
    drawn = _generator.integers(low, high, _shape((size,), "randint"), dtype=np.int64)
    return _new(drawn, dtype, False)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    is_float = any(isinstance(v, float) for v in (start, end, step))
    default = dtypes.DEFAULT_FLOAT if is_float else dtypes.DEFAULT_INT
    return _new(np.arange(start, end, step, dtype=_dtype(dtype, default)), None, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    array = np.linspace(start, end, steps, dtype=_dtype(dtype, dtypes.DEFAULT_FLOAT))
    return _new(array, None, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=_dtype(dtype, dtypes.DEFAULT_FLOAT)), None, requires_grad)


def _like(factory):
    def like(input: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        return factory(*input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)
    like.__name__ = factory.__name__ + "_like"
    like.__doc__ = f"``{factory.__name__}`` with the shape and dtype of ``input``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
randn_like = _like(randn)
rand_like = _like(rand)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    return full(input.shape, fill_value, dtype=dtype or input.dtype, requires_grad=requires_grad)
