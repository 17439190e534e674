"""Export of control flow: each CONTROL node (``staticgraph/control/flow.py``) becomes one ONNX
node whose bodies are subgraphs written by the same converters as the main graph, so control
flow nests to any depth:

- ``Cond`` -> ``If``: then_branch is the true body, else_branch the false one;
- ``WhileLoop`` -> the test body written in the enclosing graph (the first condition), then
  ``Loop(M, cond, *vars)`` whose body is the step, (iteration, cond, *vars) -> (next cond,
  *new vars); M is ``maximum_iterations`` or omitted;
- ``Scan`` -> ``Loop(M = number of elements, true, *carry)`` whose body gathers element k
  of each sequence (M-1-k for a reverse scan); the ys are scan outputs, flipped back by a
  Slice for a reverse scan. Not ONNX's Scan: onnxruntime 1.32's fails on a sequence of
  length 0 (an empty batch; the reverse scan of a loop's gradient after zero trips), where
  its Loop runs zero trips; and onnx's reference evaluator runs Scan only forward.

A body reads what it captured from the enclosing graph by the outer names (ONNX subgraphs see
their enclosing scopes), so only a loop's state is a subgraph input. Every value name in
every subgraph comes from the model's one set of names: no name is assigned twice in any
scope, as onnx's checker requires. Only the results the graph uses are written (a cond's
unused results, a scan's unused ys are left out); a loop's recorded histories (what its
gradient reads) are more scan outputs: each trip's input values. Constants of bodies are
initializers of the main graph, which subgraphs see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper

from ..control.body import Body
from ..control.flow import Cond, Scan, WhileLoop
from ..graph import Node, Role
from ..ops.shapes import Shape
from ..program import Program
from .lowering import onnx_type

if TYPE_CHECKING:
    from .export import _Model

# How export writes a program's nodes (export._write_nodes): bodies are written by it too.
WriteProgram = Callable[["_Model", Program, dict[Node, str], Any], None]
Output = tuple[str, Shape, np.dtype]  # a subgraph output: its value, shape and dtype


def write_control(model: _Model, program: Program, node: Node, values: dict[Node, str],
                  write_program: WriteProgram) -> None:
    """Write CONTROL ``node`` of ``program`` as one ONNX node whose outputs are the names of
    its OUTPUT nodes (``values``)."""
    results: dict[int, str] = {}
    for out in program.nodes:
        if out.role is Role.OUTPUT and out.inputs[0] is node:
            index = out.params["index"]
            if index in results:  # the same result taken twice: one name
                values[out] = results[index]
            else:
                results[index] = values[out]
    writer = _Writer(model, node, [values[i] for i in node.inputs], write_program)
    WRITERS[type(node.control)](writer, results)


class _Writer:
    """What the three kinds share: bodies written as subgraphs or inline, and ONNX nodes
    named after the control node."""

    def __init__(self, model: _Model, node: Node, inputs: list[str],
                 write_program: WriteProgram) -> None:
        self.model, self.node, self.inputs = model, node, inputs
        self._write_program = write_program

    def fresh(self, label: str) -> str:
        return self.model.fresh(f"{self.node.name}/{label}", self.model.values)

    def const(self, array: np.ndarray) -> str:
        return self.model.constant(array, f"{self.node.name}/const")

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attributes: Any) -> str:
        """An ONNX node in the current scope; returns its output (``out``, or a new name)."""
        out = out or self.fresh(op_type)
        self.model.nodes.append(helper.make_node(
            op_type, list(inputs), [out], doc_string=self.node.location, **attributes,
            name=self.model.fresh(f"{self.node.name}/{op_type}", self.model.node_names)))
        return out

    def emit(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str],
             **attributes: Any) -> None:
        """The control node itself, under its own name."""
        self.model.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                                 name=self.node.name,
                                                 doc_string=self.node.location, **attributes))

    def names(self, results: dict[int, str], indices: Sequence[int]) -> list[str]:
        """The ONNX names of results ``indices``: their OUTPUT nodes', else unused ones."""
        return [results[i] if i in results else self.fresh(f"unused_{i}") for i in indices]

    def length(self, size: int | None, name: str) -> str:
        """The number of elements of the xs ``name`` (``size``, where known) as an int64
        scalar."""
        if size is not None:
            return self.const(np.array(size, np.int64))
        return self.op("Gather", self.op("Shape", name), self.const(np.array(0, np.int64)),
                       axis=0)

    def inline(self, body: Body, args: Sequence[str]) -> list[str]:
        """Write ``body``'s nodes into the current scope with its parameters named ``args``;
        the names of its outputs."""
        model, program = self.model, body.program
        values: dict[Node, str] = {}
        placeholders = [p for p in program.nodes if p.role is Role.PLACEHOLDER]
        for p, k in zip(placeholders, body.feed_order(placeholders)):
            values[p] = args[k]
        for n in program.nodes:
            if n not in values:
                values[n] = model.fresh(n.name, model.values)
        start, taken = len(model.nodes), set(model.node_names)
        model.node_names.update(n.name for n in program.nodes)
        self._write_program(model, program, values, None)
        for proto in model.nodes[start:]:  # a body's node named like one outside it
            if proto.name in taken:
                proto.name = model.fresh(proto.name, model.node_names)
        return [values[o] for o in body.outputs]

    def subgraph(self, body: Body, label: str, inputs: Sequence[Output],
                 args: Callable[[], Sequence[str]], outputs: Sequence[int | Output]
                 ) -> onnx.GraphProto:
        """``body`` as a subgraph with ``inputs`` (name, shape, dtype). ``args()``, called
        inside it, names the body's parameters (subgraph inputs, outer names, or values it
        computes there). ``outputs``: the body's output i for an int, else that value."""
        with _scope(self.model) as nodes:
            names = self.inline(body, args())
            produced = {value for proto in nodes for value in proto.output}
            infos, used = [], set()
            for out in outputs:
                value, shape, dtype = out if not isinstance(out, int) else \
                    (names[out], body.outputs[out].shape, body.outputs[out].dtype)
                if value not in produced or value in used:  # an input, an outer value, a
                    value = self.op("Identity", value)      # constant, or a repeat
                used.add(value)
                infos.append(_value_info(value, shape, dtype))
        return helper.make_graph(nodes, f"{self.node.name}/{label}",
                                 [_value_info(*i) for i in inputs], infos)


@contextlib.contextmanager
def _scope(model: _Model) -> Iterator[list[onnx.NodeProto]]:
    """A subgraph's own list of nodes. Casts written inside stay inside: a later node of the
    enclosing graph cannot read a subgraph's value (those written outside before it, the
    subgraph may read)."""
    saved = model.nodes, model.casts, model.cast_keys
    model.nodes, model.casts, model.cast_keys = [], dict(model.casts), dict(model.cast_keys)
    try:
        yield model.nodes
    finally:
        model.nodes, model.casts, model.cast_keys = saved


def _value_info(name: str, shape: Shape, dtype: np.dtype) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx_type(dtype), list(shape))


def _loop_inputs(w: _Writer, state: Sequence[Output]) -> list[Output]:
    """A Loop body's inputs: the iteration number, the condition, the state."""
    return [(w.fresh("iteration"), (), np.dtype(np.int64)), (w.fresh("cond"), (), np.dtype(bool)),
            *state]


def _write_cond(w: _Writer, results: dict[int, str]) -> None:
    cond: Cond = w.node.control
    wanted = sorted(results)
    false, true = (w.subgraph(body, label, [], lambda: w.inputs[1:], wanted)
                   for body, label in zip(cond.branches, ("else", "then")))
    w.emit("If", w.inputs[:1], w.names(results, wanted), then_branch=true, else_branch=false)


def _write_while(w: _Writer, results: dict[int, str]) -> None:
    loop: WhileLoop = w.node.control
    n = loop.n_vars
    (first,) = w.inline(loop.test, w.inputs)  # the condition before the first trip
    variables = [(w.fresh(f"var_{k}"), *loop.out_types[k]) for k in range(n)]
    recorded = [k for k in range(n) if n + k in results]  # histories: the vars before a trip
    body = w.subgraph(loop.step, "body", _loop_inputs(w, variables),
                      lambda: [*(v[0] for v in variables), *w.inputs[n:]],
                      [n, *range(n), *(variables[k] for k in recorded)])
    limit = "" if loop.maximum_iterations is None else \
        w.const(np.array(loop.maximum_iterations, np.int64))
    w.emit("Loop", [limit, first, *w.inputs[:n]],
           w.names(results, [*range(n), *(n + k for k in recorded)]), body=body)


def _write_scan(w: _Writer, results: dict[int, str]) -> None:
    """A Loop over the elements (M = their number): element k (k = M-1-iteration when
    reversed) is a Gather of each xs, which the body reads from outside; ys and histories
    are scan outputs, in the order of the trips (flipped back when reversed)."""
    scan: Scan = w.node.control
    nc, nx, ny = scan.n_carry, scan.n_xs, scan.n_ys
    xs = w.node.inputs[nc:nc + nx]
    length = w.length(xs[0].shape[0], w.inputs[nc])
    last = w.op("Sub", length, w.const(np.array(1, np.int64))) if scan.reverse else None
    inputs = _loop_inputs(w, [(w.fresh(f"state_{k}"), *scan.out_types[k]) for k in range(nc)])
    iteration, state = inputs[0][0], inputs[2:]

    def args() -> list[str]:  # (elements the body does not read are not gathered)
        index = w.op("Sub", last, iteration) if scan.reverse else iteration
        read = set(scan.body.feed_order([p for p in scan.body.program.nodes
                                         if p.role is Role.PLACEHOLDER]))
        elements = [w.op("Gather", x, index, axis=0) if nc + k in read else ""
                    for k, x in enumerate(w.inputs[nc:nc + nx])]
        return [*(s[0] for s in state), *elements, *w.inputs[nc + nx:]]

    ys = [j for j in range(ny) if nc + j in results]
    recorded = [k for k in range(nc) if nc + ny + k in results]
    body = w.subgraph(scan.body, "body", inputs, args,
                      [inputs[1], *range(nc), *(nc + j for j in ys),
                       *(state[k] for k in recorded)])
    stacked = [nc + j for j in ys] + [nc + ny + k for k in recorded]
    names = w.names(results, [*range(nc), *stacked])
    outputs = names[:nc] + ([w.fresh("reversed") for _ in stacked] if scan.reverse else
                            names[nc:])
    w.emit("Loop", [length, w.const(np.array(True)), *w.inputs[:nc]], outputs, body=body)
    if scan.reverse:  # the trips ran last element first
        for stacked_name, name in zip(outputs[nc:], names[nc:]):
            w.op("Slice", stacked_name, *(w.const(np.array([v], np.int64)) for v in
                                          (-1, np.iinfo(np.int64).min, 0, -1)), out=name)


WRITERS: dict[type, Callable[[_Writer, dict[int, str]], None]] = {
    Cond: _write_cond, WhileLoop: _write_while, Scan: _write_scan}
