"""The straightforward runtime: evaluate nodes one by one in topological order with the
primitives' numpy kernels (JAX's eval_jaxpr). It is the reference the compiled runtimes are
checked against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..graph import Node


class RunError(RuntimeError):
    """A kernel failed while a graph ran; says which node and where it was built."""


def evaluate(steps: Sequence[Node], values: dict[Node, np.ndarray],
             variables: Mapping[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute ``steps`` in order into ``values`` (which holds the feeds). Returns the staged
    Variable updates; nothing is written to ``variables``."""
    updates: dict[Node, np.ndarray] = {}
    for node in steps:
        if node.op == "variable":
            values[node] = variables[node]
        elif node.op == "constant":
            values[node] = node.value
        elif node.op == "assign":
            values[node] = updates[node.inputs[0]] = _checked_assign(node, values)
        elif node.op == "group":
            values[node] = None
        else:
            values[node] = run_kernel(node, [values[i] for i in node.inputs])
    return updates


def run_kernel(node: Node, arrays: list[np.ndarray]) -> np.ndarray:
    try:
        out = node.prim.kernel(*arrays, **node.params)
    except Exception as exc:  # a user's data can break any kernel: say where
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        raise RunError(f"{node.op} node {node.name!r} (built at {node.location}) failed at run "
                       f"time on inputs of shapes {shapes}: {exc}") from None
    out = np.asarray(out)
    return out if out.dtype == node.dtype else out.astype(node.dtype)


def _checked_assign(node: Node, values: dict[Node, np.ndarray]) -> np.ndarray:
    variable, value = node.inputs
    array = np.asarray(values[value])
    if array.shape != variable.shape:
        raise RunError(f"assign {node.name!r} (built at {node.location}) got a value of shape "
                       f"{array.shape} for variable {variable.name!r} of shape "
                       f"{variable.shape}")
    return array.astype(variable.dtype, copy=True)
