"""Tracing: run a Python function written on the shared surface with placeholders in place
of its inputs, and compile the graph it builds. As with ``jax.jit``, a call with new input
shapes or dtypes traces again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import Graph, placeholder
from .session import Function, Session


def _signature(value: Any) -> tuple[tuple[int, ...], np.dtype]:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape), np.dtype(value.dtype)
    array = np.asarray(value)
    return array.shape, array.dtype


class TracedFunction:
    """Calls ``fn`` as a compiled graph; ``.graph`` is the graph of the latest trace."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._traces: dict[tuple, Function] = {}
        self.graph: Graph | None = None

    def trace(self, *example_inputs: Any) -> Function:
        key = tuple(_signature(x) for x in example_inputs)
        compiled = self._traces.get(key)
        if compiled is None:
            graph = Graph()
            with graph.as_default():
                inputs = [placeholder(shape, dtype, name=f"input_{i}")
                          for i, (shape, dtype) in enumerate(key)]
                outputs = self.fn(*inputs)
            compiled = self._traces[key] = Function(Session(graph), outputs, inputs)
        self.graph = compiled.graph
        return compiled

    @property
    def traces(self) -> int:
        """How many shapes this function has been traced for."""
        return len(self._traces)

    def __call__(self, *arrays: Any) -> Any:
        return self.trace(*arrays)(*(_array(a) for a in arrays))


def _array(value: Any) -> Any:
    return value.detach().numpy() if hasattr(value, "detach") else value


def trace(fn: Callable[..., Any], *example_inputs: Any) -> TracedFunction:
    """Trace ``fn`` for ``example_inputs`` (arrays or eager Tensors) and return a callable
    that runs the compiled graph; ``.graph`` shows what was built."""
    traced = TracedFunction(fn)
    traced.trace(*example_inputs)
    return traced
