"""dtype rules shared by both modes: PyTorch's type promotion on numpy dtypes.

PyTorch (and so this project) promotes in three tiers: tensors with dimensions, then
zero-dimensional tensors, then Python numbers. A later tier changes the result only when it
is of a higher *category* (bool < integer < floating), so ``float32_tensor * 2.5`` stays
float32 and ``float32_tensor + float64_zero_dim`` stays float32, unlike numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
int16 = np.dtype("int16")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32
DEFAULT_INT = int64
SUPPORTED = (float32, float64, float16, int64, int32, int16, int8, uint8, bool_)

_BOOL, _INT, _FLOAT = 0, 1, 2

# PyTorch's scalar-type names, for error texts that match torch's.
_TORCH_NAMES = {float32: "Float", float64: "Double", float16: "Half", int64: "Long",
                int32: "Int", int16: "Short", int8: "Char", uint8: "Byte", bool_: "Bool"}


class DTypeError(TypeError, RuntimeError):
    """An operation got a dtype it cannot work with (TypeError for numpy/TF habits,
    RuntimeError for PyTorch's)."""


def torch_name(dtype: np.dtype) -> str:
    return _TORCH_NAMES.get(dtype, dtype.name)


# The names torch and TensorFlow give these dtypes (numpy's "float" would be float64).
_NAMES = {"float": np.dtype(np.float32), "double": np.dtype(np.float64),
          "half": np.dtype(np.float16), "long": np.dtype(np.int64)}


def as_dtype(dtype: Any) -> np.dtype:
    """Turn 'float32', np.float32 or np.dtype('float32') into a supported np.dtype; "float"
    is float32 and "double" float64, as torch and TensorFlow name them."""
    try:
        result = _NAMES[dtype] if isinstance(dtype, str) and dtype in _NAMES else \
            np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}; expected one of "
                        f"{', '.join(d.name for d in SUPPORTED)}") from None
    if result not in SUPPORTED:
        raise TypeError(f"unsupported dtype {result.name}; expected one of "
                        f"{', '.join(d.name for d in SUPPORTED)}")
    return result


def category(dtype: np.dtype) -> int:
    if dtype.kind == "f":
        return _FLOAT
    return _BOOL if dtype.kind == "b" else _INT


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def scalar_dtype(value: bool | int | float) -> np.dtype:
    """The dtype a Python number gets on its own (torch.tensor(2.5) is float32)."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return DEFAULT_INT
    return DEFAULT_FLOAT


def as_array(value: Any, dtype: Any = None) -> np.ndarray:
    """Data as an array, inferring the dtype as torch.tensor does: numpy data keeps its dtype;
    Python floats become float32, ints int64, bools bool."""
    if dtype is not None:
        return np.asarray(value, dtype=as_dtype(dtype))
    array = np.asarray(value)
    if array.dtype == float64 and not isinstance(value, (np.ndarray, np.generic)):
        array = array.astype(DEFAULT_FLOAT)
    if array.dtype not in SUPPORTED:
        raise TypeError(f"can't convert {type(value).__name__} of dtype {array.dtype} to a "
                        f"tensor; supported dtypes are {', '.join(d.name for d in SUPPORTED)}")
    return array


def _promote_tier(dtypes: list[np.dtype]) -> np.dtype | None:
    if not dtypes:
        return None
    result = dtypes[0]
    for d in dtypes[1:]:
        result = promote_types(result, d)
    return result


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """Two tensor dtypes: the higher category wins outright, else numpy's widening."""
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def result_type(*operands: Any) -> np.dtype:
    """Promote values with ``.dtype`` and ``.ndim`` (tensors, graph nodes) and Python numbers."""
    fast = _one_dtype(operands)
    if fast is not None:
        return fast
    dims, zero_dims, numbers = [], [], []
    for x in operands:
        if isinstance(x, (bool, int, float, np.number, np.bool_)):
            numbers.append(scalar_dtype(x))
        elif x.ndim:
            dims.append(x.dtype)
        else:
            zero_dims.append(x.dtype)
    result = None
    for tier in (dims, zero_dims, numbers):
        candidate = _promote_tier(tier)
        if candidate is None:
            continue
        if result is None:
            result = candidate
        elif category(candidate) > category(result):
            # A higher tier of lower rank only lifts the category, e.g. int tensor * 2.5:
            # Python numbers land on the default dtype of their category.
            result = candidate if tier is not numbers else scalar_dtype(
                {_BOOL: False, _INT: 0, _FLOAT: 0.0}[category(candidate)])
    if result is None:
        raise TypeError("result_type() needs at least one operand")
    return result


def _one_dtype(operands: tuple) -> np.dtype | None:
    """The common case, cheaply: every tensor has one dtype and no number outranks it."""
    dtype = None
    numbers = []
    for x in operands:
        if isinstance(x, (bool, int, float)):
            numbers.append(x)
        elif dtype is None:
            dtype = x.dtype
        elif x.dtype != dtype:
            return None
    if dtype is None:
        return None
    top = category(dtype)
    return dtype if all(category(scalar_dtype(n)) <= top for n in numbers) else None
