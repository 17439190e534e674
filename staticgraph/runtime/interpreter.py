"""The straightforward runtime: evaluate nodes one by one in topological order with the
primitives' numpy kernels (JAX's eval_jaxpr). It is the reference the compiled runtimes are
checked against."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..graph import Node, Role, check_assigned_shape
from ..program import Program


class RunError(RuntimeError):
    """A kernel failed while a graph ran; says which node and where it was built."""


class Executable:
    """What every runtime's executable shares: ``run(feeds, variables) -> (outputs, new
    values of the assigned variables)``, with feeds and variables in the order of
    ``placeholders`` and ``variables``."""

    def __init__(self, graph: Program) -> None:
        self.graph = graph
        self.placeholders = [n for n in graph.nodes if n.role is Role.PLACEHOLDER]
        self.variables = [n for n in graph.nodes if n.role is Role.VARIABLE]
        self.assigns = [n for n in graph.nodes if n.role is Role.ASSIGN]
        self.kernels_per_run = 0


def evaluate(steps: Sequence[Node], values: dict[Node, np.ndarray],
             variables: Mapping[Node, np.ndarray]) -> dict[Node, np.ndarray]:
    """Compute ``steps`` in order into ``values`` (which holds the feeds). Returns the staged
    Variable updates; nothing is written to ``variables``."""
    updates: dict[Node, np.ndarray] = {}
    for node in steps:
        role = node.role
        if role is Role.OP:
            values[node] = run_kernel(node, [values[i] for i in node.inputs])
        elif role is Role.VARIABLE:
            values[node] = variables[node]
        elif role is Role.CONSTANT:
            values[node] = node.value
        elif role is Role.ASSIGN:
            values[node] = updates[node.inputs[0]] = _checked_assign(node, values)
        elif role is Role.GROUP:
            values[node] = None
        elif role is Role.OUTPUT:  # one result of a fused kernel or control flow
            values[node] = values[node.inputs[0]][node.params["index"]]
        elif role is Role.FUSED:
            values[node] = node.fused.kernel(*(values[i] for i in node.inputs))
        elif role is Role.CONTROL:
            values[node] = node.control.run([values[i] for i in node.inputs],
                                            _interpreted(node.control.bodies),
                                            wanted_outputs(node, steps))
    return updates


def wanted_outputs(node: Node, steps: Sequence[Node]) -> set[int]:
    """The results of a CONTROL node that something reads (a loop records its history only
    when a gradient does)."""
    return {n.params["index"] for n in steps if n.role is Role.OUTPUT and n.inputs[0] is node}


def _interpreted(bodies) -> Callable[[int, list], list]:
    """Call a body by evaluating its nodes one by one (the reference)."""
    prepared = []
    for body in bodies:
        placeholders = [n for n in body.program.nodes if n.role is Role.PLACEHOLDER]
        steps = [n for n in body.program.nodes if n.role is not Role.PLACEHOLDER]
        prepared.append((placeholders, body.feed_order(placeholders), steps, body.outputs))

    def call(index: int, args: list) -> list:
        placeholders, order, steps, outputs = prepared[index]
        values = {p: args[i] for p, i in zip(placeholders, order)}
        evaluate(steps, values, {})
        return [values[o] for o in outputs]
    return call
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
    check_assigned_shape(variable, array.shape, node.location, RunError)
    return array.astype(variable.dtype, copy=True)


class InterpretedExecutable(Executable):
    """The interpreter behind the same interface as the compiled runtime (the reference the
    compiled one is tested against)."""

    def __init__(self, graph: Program) -> None:
        super().__init__(graph)
        self.kernels_per_run = sum(n.role in (Role.OP, Role.FUSED, Role.CONTROL)
                                   for n in graph.nodes)
        self._steps = [n for n in graph.nodes if n.role is not Role.PLACEHOLDER]

    def run(self, feeds: Sequence[np.ndarray], variables: Sequence[np.ndarray]):
        values = dict(zip(self.placeholders, feeds))
        updates = evaluate(self._steps, values, dict(zip(self.variables, variables)))
        return [values[o] for o in self.graph.outputs], [updates[a.inputs[0]] for a in self.assigns]
