"""Tensor repr text, character for character what PyTorch prints with its default options.

Reproduces the behaviour of torch's ``_tensor_str`` (precision 4, threshold 1000, edgeitems 3,
linewidth 80, automatic scientific mode) for dense CPU tensors held as numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_PRECISION = 4
_THRESHOLD = 1000  # more elements than this and only the edges of each axis are shown
_EDGEITEMS = 3
_LINEWIDTH = 80
_PREFIX = "tensor("

_SUPPORTED_DTYPES = frozenset(
    {"float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"}
)
# Dtypes torch can infer from the printed literals, so it leaves them out of the repr.
_IMPLIED_DTYPES = frozenset({"float32", "int64", "bool"})


def format_tensor(array: np.ndarray, suffixes: Sequence[str] = ()) -> str:
    """Return what torch prints for repr(tensor) holding `array`, e.g. 'tensor([1., 2.])'.

    `suffixes` are extra 'key=value' strings appended in order, e.g. ['grad_fn=<AddBackward0>']
    or ['requires_grad=True']; they follow torch's own size/dtype suffixes.
    """
    array = np.asarray(array)
    dtype_name = array.dtype.name
    if dtype_name not in _SUPPORTED_DTYPES:
        raise TypeError(f"cannot format an array of dtype {array.dtype}")

    indent = len(_PREFIX)
    own_suffixes: list[str] = []
    if array.size == 0:
        body = "[]"
        # An empty literal shows neither shape nor element type, so torch spells out both
        # (only a 1-D shape is implied by "[]", and only the default float dtype).
        if array.ndim != 1:
            own_suffixes.append(f"size={tuple(array.shape)}")
        if dtype_name != "float32":
            own_suffixes.append(f"dtype=eager.{dtype_name}")
    else:
        body = _format_body(array, indent)
        if dtype_name not in _IMPLIED_DTYPES:
            own_suffixes.append(f"dtype=eager.{dtype_name}")
    return _close_with_suffixes(_PREFIX + body, [*own_suffixes, *suffixes], indent)


@dataclass(frozen=True)
class _ElementFormatter:
    """Formats single elements, right-aligned to a width shared by the whole tensor."""

    to_text: Callable[[Any], str]
    width: int

    def __call__(self, value: Any) -> str:
        return self.to_text(value).rjust(self.width)


def _format_body(array: np.ndarray, indent: int) -> str:
    summarize = array.size > _THRESHOLD
    # The shared width and float style are decided only by the elements actually shown.
    shown = _edge_elements(array) if summarize else array
    formatter = _make_formatter(shown)
    return _format_nested(array, indent, summarize, formatter)


def _edge_elements(array: np.ndarray) -> np.ndarray:
    """Keep only the leading and trailing edge items along every over-long axis."""
    for axis, size in enumerate(array.shape):
        if size > 2 * _EDGEITEMS:
            keep = np.r_[0:_EDGEITEMS, size - _EDGEITEMS : size]
            array = np.take(array, keep, axis=axis)
    return array


def _make_formatter(shown: np.ndarray) -> _ElementFormatter:
    values = shown.ravel()
    if values.dtype.kind != "f":
        # str() of Python ints and bools gives torch's '-3' and 'True' spellings.
        return _ElementFormatter(str, max(len(str(v)) for v in values.tolist()))

    values = values.astype(np.float64)  # exact for every float dtype; matches torch's .item()
    significant = values[np.isfinite(values) & (values != 0)]
    if significant.size == 0:
        # Only zeros, nans and infs: torch keeps its defaults (integer style, width 1).
        return _ElementFormatter(_integral_text, 1)

    magnitudes = np.abs(significant)
    # Python floats: the ratio may overflow to inf, which numpy would warn about.
    smallest, largest = float(magnitudes.min()), float(magnitudes.max())
    if largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4:
        to_text = _scientific_text
    elif np.all(significant == np.ceil(significant)):
        to_text = _integral_text
    else:
        to_text = _fixed_text
    # Zeros and non-finite values are left out of the width, so they may overflow or under-fill it.
    width = max(len(to_text(v)) for v in significant.tolist())
    return _ElementFormatter(to_text, width)


def _scientific_text(value: float) -> str:
    return f"{value:.{_PRECISION}e}"


def _fixed_text(value: float) -> str:
    return f"{value:.{_PRECISION}f}"


def _integral_text(value: float) -> str:
    # The trailing dot marks a float tensor whose values all happen to be whole numbers.
    text = f"{value:.0f}"
    return text + "." if math.isfinite(value) else text


def _format_nested(
    array: np.ndarray, indent: int, summarize: bool, formatter: _ElementFormatter
) -> str:
    if array.ndim == 0:
        return formatter(array.item())
    if array.ndim == 1:
        return _format_row(array, indent, summarize, formatter)

    head, tail = _split_edges(array, summarize)
    blocks = [_format_nested(sub, indent + 1, summarize, formatter) for sub in head]
    if tail is not None:
        blocks.append("...")
        blocks += [_format_nested(sub, indent + 1, summarize, formatter) for sub in tail]
    # Deeper blocks are set apart by one blank line per extra dimension.
    separator = "," + "\n" * (array.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(blocks) + "]"


def _format_row(
    row: np.ndarray, indent: int, summarize: bool, formatter: _ElementFormatter
) -> str:
    head, tail = _split_edges(row, summarize)
    cells = [formatter(value) for value in head.tolist()]
    if tail is not None:
        cells.append(" ...")
        cells += [formatter(value) for value in tail.tolist()]

    # Every cell is budgeted its width plus ", ", whatever its real length (' ...' included).
    per_line = max(1, (_LINEWIDTH - indent) // (formatter.width + 2))
    lines = [", ".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _split_edges(array: np.ndarray, summarize: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Split the first axis into its shown head and tail; tail is None when nothing is elided."""
    if summarize and len(array) > 2 * _EDGEITEMS:
        return array[:_EDGEITEMS], array[-_EDGEITEMS:]
    return array, None


def _close_with_suffixes(text: str, suffixes: Sequence[str], indent: int) -> str:
    """Append ', key=value' suffixes and the closing parenthesis, wrapping long last lines."""
    # torch's bookkeeping, kept exactly: the running length starts at the last line's length
    # plus 2, but restarts at the bare indent plus suffix length after a wrap.
    line_length = len(text) - text.rfind("\n") + 1
    parts = [text]
    for suffix in suffixes:
        if line_length + len(suffix) + 2 > _LINEWIDTH:
            parts.append(",\n" + " " * indent + suffix)
            line_length = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            line_length += len(suffix) + 2
    return "".join(parts) + ")"
