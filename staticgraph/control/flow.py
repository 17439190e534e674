"""What a control-flow node means: its bodies, the types of its results, how it is
specialized to concrete shapes, and how it runs, given a way to call a body.

A CONTROL node's inputs are its arguments followed by the values its bodies read from
outside (captured); its results are taken with OUTPUT nodes (``params["index"]``):

- ``Cond``: inputs (pred, *operands); runs ``branches[int(pred)]`` (false, true) on the
  operands; results: the branch's.
- ``WhileLoop``: inputs (*vars, *captured); ``test(vars) -> pred`` once, then while pred
  (and fewer than ``maximum_iterations`` trips) ``step(vars) -> (*new vars, pred)``: one body
  call per iteration (ONNX's Loop body has this shape too). Results: the final vars, then
  each var's history, (trips, *shape): its value before each trip (what the gradient's
  reverse loop reads; computed only where something uses it).
- ``Scan``: inputs (*carry, *xs, *captured); for each index k of the xs' first axis (last to
  first if ``reverse``), ``body(carry, xs[k]) -> (*new carry, *ys)``. Results: the final
  carry, the ys stacked along a new first axis (index k holds element k's), then each carry's
  history (its value before element k was processed).

The interpreter and the compiled runtimes share ``run``; they differ in how a body is
called (interpreted, or a call of its compiled code)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..graph import Node, Role, ShapeError
from ..ops.shapes import Shape
from ..program import origin_of
from .body import Body

Type = tuple[Shape, np.dtype]
CallBody = Callable[[int, list], list]  # (body index, arguments) -> its outputs


def _specialize_body(body: Body, shapes: Sequence[Shape]) -> Body:
    from ..passes import specialize  # (the passes specialize bodies through this module)
    by_param = dict(zip(body.params, shapes))
    fed = {p: by_param[origin_of(p)] for p in body.program.nodes
           if p.role is Role.PLACEHOLDER}
    return body.with_program(specialize(body.outputs, fed))


def _output_types(body: Body, start: int = 0, stop: int | None = None) -> list[Type]:
    return [(o.shape, o.dtype) for o in body.outputs[start:stop]]


def _stacked(length: int | None, types: Sequence[Type]) -> list[Type]:
    return [((length, *shape), dtype) for shape, dtype in types]


def _check_carried(kind: str, body: Body, before: Sequence[Shape], location: str) -> None:
    """A loop variable keeps its shape through the body (checked again once shapes are
    known: a variable of unknown size may not grow)."""
    for k, (shape, out) in enumerate(zip(before, body.outputs)):
        if len(shape) != len(out.shape) or any(a is not None and b is not None and a != b
                                               for a, b in zip(shape, out.shape)):
            raise ShapeError(f"{kind} at {location}: loop variable {k} has shape {shape} "
                             f"before the body and {out.shape} after it; a loop variable must "
                             "keep its shape")


def _owned(outputs: list, args: Sequence) -> list:
    """Results that are an argument (a loop that ran no step), a view of one, read-only (a
    body's constant) or another result (a body returning one value twice) are copied: a
    later kernel may write over a result in place."""
    taken = [a for a in args if isinstance(a, np.ndarray)]
    owned = []
    for o in outputs:
        if isinstance(o, np.ndarray):
            if not o.flags.writeable or any(np.may_share_memory(o, a) for a in taken):
                o = o.copy()
            taken.append(o)
        owned.append(o)
    return owned


@dataclass(frozen=True, eq=False)
class ControlFlow:
    """What the three kinds share; ``out_types`` are (shape, dtype) of each result."""

    kind: ClassVar[str]
    body_names: ClassVar[tuple[str, ...]]  # what each body is, for explain()
    out_types: tuple[Type, ...] = ()

    @property
    def bodies(self) -> tuple[Body, ...]:
        raise NotImplementedError

    def with_bodies(self, bodies: Sequence[Body]) -> ControlFlow:
        raise NotImplementedError

    def typed(self, shapes: Sequence[Shape], location: str) -> ControlFlow:
        """This control flow with ``out_types`` for inputs of ``shapes``."""
        raise NotImplementedError

    def specialized(self, shapes: Sequence[Shape], location: str) -> ControlFlow:
        """Bodies specialized to inputs of concrete ``shapes``, and the results' types."""
        raise NotImplementedError

    def run(self, args: list, call: CallBody, wanted: set[int]) -> list:
        raise NotImplementedError

    def loop_invariant(self) -> dict[int, range]:
        """For each body that runs once per iteration, the parameters that do not change
        between iterations (what hoisting may compute once, outside)."""
        return {}


@dataclass(frozen=True, eq=False)
class Cond(ControlFlow):
    kind: ClassVar[str] = "cond"
    body_names: ClassVar[tuple[str, ...]] = ("false branch", "true branch")
    branches: tuple[Body, Body] = ()  # (false, true): indexed by the predicate

    @property
    def bodies(self) -> tuple[Body, ...]:
        return self.branches

    def with_bodies(self, bodies: Sequence[Body]) -> Cond:
        return dataclasses.replace(self, branches=tuple(bodies))

    def typed(self, shapes, location) -> Cond:
        false, true = (_output_types(b) for b in self.branches)
        merged = [(tuple(a if a == b else None for a, b in zip(s, t)), dtype)
                  for (s, dtype), (t, _) in zip(false, true)]
        return dataclasses.replace(self, out_types=tuple(merged))

    def specialized(self, shapes, location) -> Cond:
        return self.with_bodies([_specialize_body(b, shapes[1:])
                                 for b in self.branches]).typed(shapes, location)

    def run(self, args, call, wanted) -> list:
        return _owned(call(int(bool(args[0])), args[1:]), args)


@dataclass(frozen=True, eq=False)
class WhileLoop(ControlFlow):
    kind: ClassVar[str] = "while_loop"
    body_names: ClassVar[tuple[str, ...]] = ("test", "body (and the next test)")
    test: Body | None = None
    step: Body | None = None
    n_vars: int = 0
    maximum_iterations: int | None = None

    @property
    def bodies(self) -> tuple[Body, ...]:
        return (self.test, self.step)

    def with_bodies(self, bodies: Sequence[Body]) -> WhileLoop:
        test, step = bodies
        return dataclasses.replace(self, test=test, step=step)

    def typed(self, shapes, location) -> WhileLoop:
        _check_carried(self.kind, self.step, shapes[:self.n_vars], location)
        n = self.n_vars
        finals = [(tuple(s), o.dtype) for s, o in zip(shapes[:n], self.step.outputs[:n])]
        return dataclasses.replace(self, out_types=tuple(finals + _stacked(None, finals)))

    def specialized(self, shapes, location) -> WhileLoop:
        return self.with_bodies([_specialize_body(b, shapes)
                                 for b in self.bodies]).typed(shapes, location)

    def loop_invariant(self) -> dict[int, range]:
        return {1: range(self.n_vars, len(self.step.params))}

    def run(self, args, call, wanted) -> list:
        n, limit = self.n_vars, self.maximum_iterations
        values, captured = list(args[:n]), list(args[n:])
        record = any(k >= n for k in wanted)
        history: list[list] = []
        go = call(0, values + captured)[0]
        trips = 0
        while go and (limit is None or trips < limit):
            if record:
                history.append(values)
            *values, go = call(1, values + captured)
            trips += 1
        histories = [None] * n
        if record:
            histories = [np.stack([h[i] for h in history]) if history else
                         np.empty((0, *np.shape(args[i])), self.out_types[i][1])
                         for i in range(n)]
        return _owned(values, args) + histories


@dataclass(frozen=True, eq=False)
class Scan(ControlFlow):
    kind: ClassVar[str] = "scan"
    body_names: ClassVar[tuple[str, ...]] = ("body",)
    body: Body | None = None
    n_carry: int = 0
    n_xs: int = 0
    reverse: bool = False

    @property
    def bodies(self) -> tuple[Body, ...]:
        return (self.body,)

    def with_bodies(self, bodies: Sequence[Body]) -> Scan:
        return dataclasses.replace(self, body=bodies[0])

    @property
    def n_ys(self) -> int:
        return len(self.body.outputs) - self.n_carry

    def typed(self, shapes, location) -> Scan:
        nc = self.n_carry
        _check_carried(self.kind, self.body, shapes[:nc], location)
        length = shapes[nc][0]
        carry = [(tuple(s), o.dtype) for s, o in zip(shapes[:nc], self.body.outputs[:nc])]
        ys = _stacked(length, _output_types(self.body, nc))
        return dataclasses.replace(self, out_types=tuple(carry + ys + _stacked(length, carry)))

    def specialized(self, shapes, location) -> Scan:
        nc, nx = self.n_carry, self.n_xs
        inner = [*shapes[:nc], *(s[1:] for s in shapes[nc:nc + nx]), *shapes[nc + nx:]]
        return self.with_bodies([_specialize_body(self.body, inner)]).typed(shapes, location)

    def loop_invariant(self) -> dict[int, range]:
        return {0: range(self.n_carry + self.n_xs, len(self.body.params))}

    def run(self, args, call, wanted) -> list:
        nc, nx, ny = self.n_carry, self.n_xs, self.n_ys
        carry, xs, captured = list(args[:nc]), args[nc:nc + nx], list(args[nc + nx:])
        length = len(xs[0])
        record = any(k >= nc + ny for k in wanted)
        histories = [np.empty((length, *np.shape(c)), self.out_types[i][1])
                     for i, c in enumerate(carry)] if record else [None] * nc
        ys: list = [None] * ny
        for k in (range(length - 1, -1, -1) if self.reverse else range(length)):
            if record:
                for history, value in zip(histories, carry):
                    history[k] = value
            out = call(0, carry + [x[k, ...] for x in xs] + captured)  # (0-d arrays, too)
            carry = out[:nc]
            for j, y in enumerate(out[nc:]):
                if ys[j] is None:
                    ys[j] = np.empty((length, *np.shape(y)), self.out_types[nc + j][1])
                ys[j][k] = y
        for j in range(ny):
            if ys[j] is None:  # no elements: the stacked results are empty
                shape, dtype = self.out_types[nc + j]
                ys[j] = np.empty((0, *(d or 0 for d in shape[1:])), dtype)
        return _owned(carry, args) + ys + histories


def add_control(graph, control: ControlFlow, inputs: Sequence[Node], location: str) -> Node:
    """A CONTROL node in ``graph`` (its results: ``output_of``)."""
    from ..ops import dtypes
    control = control.typed([x.shape for x in inputs], location)
    return graph.add(Node(graph, Role.CONTROL, tuple(inputs), {}, (), dtypes.bool_,
                          graph.unique_name(control.kind), location=location,
                          control=control))


def output_of(node: Node, index: int) -> Node:
    """Result ``index`` of a CONTROL node, as a node of its graph."""
    shape, dtype = node.control.out_types[index]
    graph = node.graph
    return graph.add(Node(graph, Role.OUTPUT, (node,), {"index": index}, shape, dtype,
                          graph.unique_name(f"{node.name}/output_{index}"),
                          location=node.location))
