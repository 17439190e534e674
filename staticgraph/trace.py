"""Tracing: run a Python function written on the shared surface with placeholders in place
of its inputs, and compile the graph it builds. As with ``jax.jit``, a call with new input
shapes or dtypes traces again. Eager tensors the function reads but does not take (a
module's weights) are read again at every call, as torch.compile does, so training them
between calls is seen; random numbers drawn while tracing are drawn once (eager warns)."""

from __future__ import annotations

import contextvars
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
        self._traces: dict[tuple, tuple[Function, list[Any]]] = {}
        self.graph: Graph | None = None

    def trace(self, *example_inputs: Any) -> Function:
        """The compiled function for inputs like these: it takes the inputs, then the values
        of the eager tensors the trace read (``captured``)."""
        return self._trace(example_inputs)[0]

    def _trace(self, example_inputs: tuple) -> tuple[Function, list[Any]]:
        key = tuple(_signature(x) for x in example_inputs)
        entry = self._traces.get(key)
        if entry is None:
            graph = Graph()
            graph.captures = {}
            token = _TRACING.set(True)
            try:
                with graph.as_default():
                    inputs = [placeholder(shape, dtype, name=f"input_{i}")
                              for i, (shape, dtype) in enumerate(key)]
                    outputs = self.fn(*inputs)
            finally:
                _TRACING.reset(token)
            tensors = [tensor for tensor, _ in graph.captures.values()]
            captured = [node for _, node in graph.captures.values()]
            graph.captures = None
            entry = self._traces[key] = (Function(Session(graph), outputs, inputs + captured),
                                         tensors)
        self.graph = entry[0].graph
        return entry

    @property
    def traces(self) -> int:
        """How many shapes this function has been traced for."""
        return len(self._traces)

    def __call__(self, *arrays: Any) -> Any:
        compiled, captured = self._trace(arrays)
        return compiled(*(_array(a) for a in [*arrays, *captured]))


def _array(value: Any) -> Any:
    return value.detach().numpy() if hasattr(value, "detach") else value


_TRACING: contextvars.ContextVar[bool] = contextvars.ContextVar("tracing", default=False)


def tracing() -> bool:
    """Whether ``sg.trace`` is running a function now (eager's random draws warn then)."""
    return _TRACING.get()


def trace(fn: Callable[..., Any], *example_inputs: Any) -> TracedFunction:
    """Trace ``fn`` for ``example_inputs`` (arrays or eager Tensors) and return a callable
    that runs the compiled graph; ``.graph`` shows what was built."""
    traced = TracedFunction(fn)
    traced.trace(*example_inputs)
    return traced
