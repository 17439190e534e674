"""Bodies: the subgraphs control flow runs. A body is built by calling the user's function
on placeholders (its parameters) inside a ``Subgraph``; what the function reads from the
enclosing graph (weights, other values) becomes a parameter too, as JAX closes over a
jaxpr's constants, so a finished body is closed: it depends on its parameters alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..graph import Graph, GraphError, Node, Role, _body_hint, _shape_str, constant, infer
from ..ops.shapes import Shape
from ..program import Program, origin_of


class Subgraph(Program):
    """A body being built inside ``enclosing``: its ``params`` (placeholders) come first, the
    arguments; then one parameter per enclosing node it reads (``captured``, in order)."""

    def __init__(self, enclosing: Graph, name: str) -> None:
        super().__init__()
        self.enclosing = enclosing
        self._scopes = [name]
        self.params: list[Node] = []
        self.captured: dict[Node, Node] = {}  # enclosing graph's node -> its parameter here
    def add(self, node: Node) -> Node:
        if self.closed:
            raise GraphError(f"at {node.location}: a value built inside a control-flow body "
                             f"({self._scopes[0]}) is used after the body was finished; use it "
                             "inside the body's function, or return it from the body")
        return super().add(node)

    def parameter(self, shape: Shape, dtype: np.dtype, name: str) -> Node:
        node = self.add(Node(self, Role.PLACEHOLDER, (), {}, shape, dtype,
                             self.unique_name(name)))
        self.params.append(node)
        return node

    def capture_outer(self, node: Node) -> Node:
        """The parameter standing for ``node`` of an enclosing graph (made on first use)."""
        if node.graph is self:
            return node
        outer = node if node.graph is self.enclosing else self.enclosing.capture_outer(node)
        if outer not in self.captured:
            self.captured[outer] = self.parameter(outer.shape, outer.dtype,
                                                  outer.name.rsplit("/", 1)[-1])
        return self.captured[outer]

    def random_key(self) -> Node:
        return self.capture_outer(self.enclosing.random_key())


@dataclass(frozen=True, eq=False)
class Body:
    """A closed subgraph: ``program`` computes ``program.outputs`` from placeholders that stand
    for ``params`` (its own placeholders when built; after specialization and passes, copies
    whose ``origin`` is one of them)."""

    params: tuple[Node, ...]
    program: Program

    @property
    def outputs(self) -> list[Node]:
        return self.program.outputs

    def with_program(self, program: Program) -> Body:
        return Body(self.params, program)

    def feed_order(self, placeholders: Sequence[Node]) -> list[int]:
        """For each of a compiled program's placeholders, which argument it is fed."""
        index = {p: i for i, p in enumerate(self.params)}
        return [index[origin_of(p)] for p in placeholders]


def to_values(results: Any, where: str) -> tuple[list[Any], bool]:
    """A body function's results as a list, and whether it returned a sequence."""
    if isinstance(results, (list, tuple)):
        return list(results), True
    if results is None:
        raise TypeError(f"{where}: the function returned None; it must return a value or a "
                        "tuple of values")
    return [results], False


def build(graph: Graph, name: str, fn: Callable[..., Any],
          params: Sequence[tuple[Shape, np.dtype, str]], where: str,
          dtypes_like: Sequence[Node] | None = None) -> tuple[Subgraph, list[Node], bool]:
    """Call ``fn`` on new parameters (shape, dtype, name) inside a Subgraph of ``graph``;
    returns the subgraph, the function's results as nodes of it, and whether ``fn`` returned
    a sequence. Python numbers among the results take ``dtypes_like``'s dtypes."""
    body = Subgraph(graph, graph.unique_name(name))
    with body.as_default():
        args = [body.parameter(shape, dtype, label) for shape, dtype, label in params]
        results, sequence = to_values(fn(*args), where)
        nodes = []
        for k, value in enumerate(results):
            dtype = dtypes_like[k].dtype if dtypes_like and k < len(dtypes_like) else None
            node = value if isinstance(value, Node) else constant(value, dtype, graph=body)
            nodes.append(body.capture_outer(node) if body.sees(node.graph) else node)
        for k, node in enumerate(nodes):
            if node.graph is not body:
                raise GraphError(f"{where}: result {k} ({node.name!r}) belongs to another "
                                 f"graph{_body_hint(node, body)}")
    return body, nodes, sequence


def close(bodies: Sequence[Subgraph], outputs: Sequence[Sequence[Node]],
          leading: int) -> tuple[list[Body], list[Node]]:
    """Finish bodies built side by side (a cond's branches, a loop's test and step), whose
    first ``leading`` parameters are the same arguments: each gets a parameter for every
    outer value any of them read, in one order. Returns the Bodies and those outer values
    (the control node's inputs after the arguments)."""
    outer: list[Node] = list(dict.fromkeys(n for body in bodies for n in body.captured))
    closed = []
    for body, results in zip(bodies, outputs):
        for node in outer:
            body.capture_outer(node)
        body.outputs = list(results)
        body.closed = True
        params = body.params[:leading] + [body.captured[n] for n in outer]
        closed.append(Body(tuple(params), body))
    return closed, outer


def inline(body: Body, args: Sequence[Node]) -> list[Node]:
    """``body``'s nodes copied into the graph of ``args`` with its parameters set to ``args``;
    returns its outputs there (a backward body recomputes the forward step this way)."""
    graph = args[0].graph if args else None
    mapping: dict[Node, Node] = {}
    index = {p: a for p, a in zip(body.params, args)}
    for node in body.program.nodes:
        if node.role is Role.PLACEHOLDER:
            mapping[node] = index[origin_of(node)]
            continue
        inputs = tuple(mapping[i] for i in node.inputs)
        target = graph if graph is not None else node.graph
        shape, dtype = node.shape, node.dtype
        if node.role is Role.OP:
            shape, dtype = infer(node.prim, inputs, node.params, node.location)
        mapping[node] = target.add(Node(
            target, node.role, inputs, node.params, shape, dtype,
            target.unique_name(node.name.rsplit("/", 1)[-1]), node.prim, node.value,
            location=node.location, control=node.control))
    return [mapping[o] for o in body.outputs]


def check_same(kind: str, first: Sequence[Node], second: Sequence[Node], names: tuple[str, str],
               where: str, label: str = "result") -> None:
    """Two lists of values that must agree in count, shape (a size unknown on one side fits
    any) and dtype: a cond's branches, a loop's variables before and after its body."""
    if len(first) != len(second):
        raise ValueError(f"{kind} at {where}: {names[0]} gives {len(first)} values and "
                         f"{names[1]} {len(second)}; they must give the same number")
    for k, (a, b) in enumerate(zip(first, second)):
        fits = len(a.shape) == len(b.shape) and all(
            x is None or y is None or x == y for x, y in zip(a.shape, b.shape))
        if not fits or a.dtype != b.dtype:
            raise ValueError(
                f"{kind} at {where}: {label} {k} is {_shape_str(a.shape)} {a.dtype.name} in "
                f"{names[0]} but {_shape_str(b.shape)} {b.dtype.name} in {names[1]}; they must "
                "have the same shape and dtype")
