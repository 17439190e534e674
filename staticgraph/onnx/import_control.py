"""Import of control flow, and the conversion of one node that every graph and subgraph uses.

If, Loop and Scan become staticgraph's own control flow, so an imported loop runs compiled,
differentiates (its gradient a reverse scan) and exports again like one built by hand:

- ``If`` -> ``sg.cond`` whose branch functions import the branch subgraphs; a condition known
  while importing (a shape test an exporter wrote) imports only the branch taken, whose
  results may then differ in shape from the other's, as ONNX allows;
- ``Loop`` that counts (M known while importing, even as a size known only at run time,
  and the condition true before and after every trip: ``for i in range(M)``, what sg.scan
  exports to) -> a Scan over 0..M-1, scan outputs its ys;
- any other ``Loop`` -> ``sg.while_loop`` over (iteration, cond, *vars), its test
  ``i < M and cond`` (M and cond may be computed at run time). Scan outputs (per-trip
  values) are then computed by a Scan over the loop's recorded per-trip inputs (its
  histories, what its gradient reads too) that imports the body again: the body runs twice
  per trip, but the trip count can come from the data;
- ``Scan`` (opset 9 on) -> a Scan node: state = carry, scan inputs = xs, scan outputs = ys;
  axes other than 0 are moved to the front and back, and inputs and outputs whose direction
  differs from the scan's are flipped.

A subgraph's nodes are converted with the enclosing scopes' values visible (ONNX's outer
scope); a body being built captures what it reads from outside. Each body has a builder of
its own (``Builder.inside``), so sizes known only at run time carry into bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import onnx

from ..control.api import cond as sg_cond
from ..control.api import while_loop
from ..control.body import build, check_same, close
from ..control.flow import Scan, add_control, output_of
from ..graph import Node, constant, get_default_graph, user_location
from ..ops import dtypes
from ..ops.shapes import ShapeError
from .errors import ONNXError
from .import_ops import CONVERTERS
from .loading import attribute_value, describe, tensor_array
from .shapes import Builder, axis_index

Scope = dict[str, Node]  # ONNX value names -> nodes, the enclosing graphs' included


def convert_node(builder: Builder, node: onnx.NodeProto, values: Scope) -> None:
    """Convert one ONNX node, entering its outputs in ``values``; any failure is an
    ``ONNXError`` naming the node (and, inside a subgraph, the nodes around it)."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED:
        raise ONNXError(f"{describe(node)}: op {node.op_type!r} of domain "
                        f"{node.domain or 'ai.onnx'!r} is not supported (staticgraph.onnx."
                        "importer.CONVERTERS lists the ops it imports)")
    xs = [values[name] if name else None for name in node.input]
    attrs = {a.name: attribute_value(a) for a in node.attribute}
    try:
        if node.op_type in CONTROL_CONVERTERS:
            result = CONTROL_CONVERTERS[node.op_type](builder, node, xs, attrs, values)
        else:
            result = CONVERTERS[node.op_type](builder, node, xs, attrs)
    except ONNXError as exc:
        raise ONNXError(f"{describe(node)}, opset {builder.opset}: {exc}") from None
    except (ShapeError, dtypes.DTypeError, ValueError, TypeError, IndexError) as exc:
        raise ONNXError(f"{describe(node)}, opset {builder.opset}, cannot be imported: "
                        f"{exc}") from None
    results = result if isinstance(result, (list, tuple)) else [result]
    for name, value in zip(node.output, results):
        if name:
            values[name] = value
    builder.probe_new_nodes()


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """The nodes of ``graph`` and of every subgraph in it."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g, *attribute.graphs]:
                yield from all_nodes(sub)


def _import_graph(b: Builder, graph: onnx.GraphProto, scope: Scope,
                  args: Sequence[Node]) -> list[Node]:
    """Convert a subgraph's nodes into ``b``'s graph with its inputs bound to ``args`` and
    the enclosing ``scope`` visible; its outputs."""
    if len(graph.input) != len(args):
        raise ONNXError(f"subgraph {graph.name!r} has {len(graph.input)} inputs, where "
                        f"{len(args)} are given")
    if graph.sparse_initializer:
        raise ONNXError("sparse initializers are not supported")
    values = {**scope, **{i.name: a for i, a in zip(graph.input, args)}}
    for tensor in graph.initializer:
        values[tensor.name] = constant(tensor_array(tensor, f"initializer {tensor.name!r}"),
                                       name=tensor.name)
    b.probe_new_nodes()
    for node in graph.node:  # (onnx's checker requires them in order)
        convert_node(b, node, values)
    return [values[o.name] for o in graph.output]


BodyImport = Callable[[Builder, list[Node]], list[Node]]


def _body(b: Builder, outer: Sequence[Node], dims: list, make: BodyImport) -> Callable:
    """A body function for the control-flow API: a builder of the body's own, its
    arguments' sizes those of ``outer`` (``dims`` gets the results' sizes)."""
    def fn(*args: Node) -> tuple[Node, ...]:
        inner = b.inside(get_default_graph())
        for arg, value in zip(args, outer):
            inner.set_shape(arg, inner.shape(value)[value.ndim - arg.ndim:])
        results = make(inner, list(args))
        dims[:] = [inner.shape(r) for r in results]
        return tuple(results)
    return fn


def _scalar(x: Node | None) -> Node | None:
    """A condition or trip count given as a 1-element tensor, as a scalar."""
    return x if x is None or x.ndim == 0 else x.reshape(())


def _if(b: Builder, node: onnx.NodeProto, xs: list, attrs: dict, scope: Scope) -> list[Node]:
    pred = _scalar(xs[0])
    branches = {True: attrs["then_branch"], False: attrs["else_branch"]}
    b.probe_new_nodes()
    if pred in b.known and bool(b.known[pred][0]) == bool(b.known[pred][1]):
        return _import_graph(b, branches[bool(b.known[pred][0])], scope, [])
    dims: dict[bool, list] = {True: [], False: []}
    true, false = (_body(b, [], dims[taken],
                         lambda inner, args, g=branches[taken]: _import_graph(inner, g, scope, []))
                   for taken in (True, False))
    results = list(sg_cond(pred, true, false))
    for k, result in enumerate(results):  # a size the branches differ in is a new one
        b.set_shape(result, [t if t == f else None for t, f in zip(dims[True][k],
                                                                      dims[False][k])])
    return results


def _loop(b: Builder, node: onnx.NodeProto, xs: list, attrs: dict, scope: Scope) -> list[Node]:
    body: onnx.GraphProto = attrs["body"]
    limit, go = _scalar(xs[0]), _scalar(xs[1] if len(xs) > 1 else None)
    initial = list(xs[2:])
    n = len(initial)
    if len(body.output) != 1 + len(node.output):
        raise ONNXError(f"the body gives {len(body.output)} outputs; the loop has {n} "
                        f"variables and {len(node.output) - n} scan outputs, so the body must "
                        f"give 1 + {len(node.output)} (the condition first)")
    b.probe_new_nodes()
    if limit is not None and limit in b.known and _known_true(b, go):
        try:
            return _counted_loop(b, node, body, scope, limit, initial)
        except _Uncounted:
            pass  # the body's condition is computed: a while loop
    start = [constant(np.int64(0)), constant(True) if go is None else go, *initial]
    b.probe_new_nodes()

    def test(i: Node, c: Node, *v: Node) -> Node:
        return c if limit is None else (i < limit) & c

    def step(inner: Builder, args: list[Node]) -> list[Node]:
        cond_out, *new = _import_graph(inner, body, scope, args)[:n + 1]
        return [args[0] + 1, _scalar(cond_out), *new]

    finals = while_loop(test, _body(b, start, [], step), start)
    for final, value in zip(finals, start):
        b.set_shape(final, b.shape(value))
    if len(node.output) == n:
        return list(finals[2:])
    # Scan outputs: the body again over the recorded inputs of each trip.
    loop = finals[0].inputs[0]
    histories = [output_of(loop, len(start) + k) for k in range(len(start))]
    for history, value in zip(histories, start):
        trips = b.shape(histories[0])[0] if history is not histories[0] else None
        b.set_shape(history, [trips, *b.shape(value)])
    ys = _scan_node(b, [], histories, lambda inner, args: _import_graph(
        inner, body, scope, args)[n + 1:], describe(node))
    return [*finals[2:], *ys]


class _Uncounted(Exception):
    """A Loop body whose condition is not known to stay true."""


def _known_true(b: Builder, x: Node | None) -> bool:
    return x is None or (x in b.known and all(bool(v) for v in b.known[x]))


def _counted_loop(b: Builder, node: onnx.NodeProto, body: onnx.GraphProto, scope: Scope,
                  limit: Node, initial: list[Node]) -> list[Node]:
    """``for i in range(M)``: a Scan over the iteration numbers, the body's condition (with
    a true condition in) known to stay true, else ``_Uncounted``."""
    count = tuple(max(m, 0) for m in b.dims(limit, "Loop's M")[0])
    n = len(initial)

    def make(inner: Builder, args: list[Node]) -> list[Node]:
        cond_out, *outs = _import_graph(inner, body, scope, [args[n], constant(True),
                                                              *args[:n]])
        inner.probe_new_nodes()
        if not _known_true(inner, _scalar(cond_out)):
            raise _Uncounted
        return outs

    try:
        iterations = b.arange(count, "Loop's iteration numbers")
    except ONNXError:  # too many to list (M = INT64_MAX, how exporters write a while loop)
        raise _Uncounted from None
    return _scan_node(b, initial, [iterations], make, describe(node))


def _scan(b: Builder, node: onnx.NodeProto, xs: list, attrs: dict, scope: Scope) -> list[Node]:
    if b.opset < 9:
        raise ONNXError("Scan before opset 9 (with a batch axis and sequence_lens) is not "
                        "imported")
    body: onnx.GraphProto = attrs["body"]
    nx = attrs["num_scan_inputs"]
    state, seqs = list(xs[:len(xs) - nx]), list(xs[len(xs) - nx:])
    nc, ny = len(state), len(node.output) - len(state)
    in_axes, out_axes = (attrs.get(f"scan_{w}_axes", [0] * k) for w, k in
                         (("input", nx), ("output", ny)))
    in_dirs, out_dirs = (attrs.get(f"scan_{w}_directions", [0] * k) for w, k in
                         (("input", nx), ("output", ny)))
    reverse = all(in_dirs)  # so that inputs all read one way are not flipped
    for k, x in enumerate(seqs):
        axis = axis_index(in_axes[k], x.ndim, "scan_input_axes")
        x = x.permute(axis, *(a for a in range(x.ndim) if a != axis)) if axis else x
        seqs[k] = _flipped(x) if bool(in_dirs[k]) != reverse else x
    lengths = {b.shape(x)[0] for x in seqs}
    if len(lengths) > 1:
        raise ONNXError(f"the scan inputs have different lengths {sorted(lengths)} (at the "
                        "probe points)")
    results = _scan_node(b, state, seqs, lambda inner, args: _import_graph(
        inner, body, scope, args), describe(node), reverse)
    ys = results[nc:]
    for j, y in enumerate(ys):
        y = _flipped(y) if bool(out_dirs[j]) != reverse else y
        axis = axis_index(out_axes[j], y.ndim, "scan_output_axes")
        ys[j] = y.permute(*range(1, axis + 1), 0, *range(axis + 1, y.ndim)) if axis else y
    return [*results[:nc], *ys]


def _flipped(x: Node) -> Node:
    return x[::-1]


def _scan_node(b: Builder, carry: list[Node], seqs: list[Node], make: BodyImport,
               where: str, reverse: bool = False) -> list[Node]:
    """A Scan node of the current graph: (*carry, *elements) -> (*new carry, *ys) by
    ``make``; its final carry and stacked ys (probed: the ys as long as ``seqs``)."""
    graph = b.graph
    carry, seqs = ([x if x.graph is graph else graph.capture_outer(x) for x in values]
                   for values in (carry, seqs))
    b.probe_new_nodes()
    params = [*((c.shape, c.dtype, f"state_{k}") for k, c in enumerate(carry)),
              *((x.shape[1:], x.dtype, f"element_{k}") for k, x in enumerate(seqs))]
    dims: list = []
    sub, outs, _ = build(graph, "scan", _body(b, [*carry, *seqs], dims, make), params, where)
    check_same("Scan", carry, outs[:len(carry)], ("the initial state", "the body"), where,
               label="state variable")
    (closed,), outer = close([sub], [outs], leading=len(params))
    scan = Scan(body=closed, n_carry=len(carry), n_xs=len(seqs), reverse=reverse)
    node = add_control(graph, scan, [*carry, *seqs, *outer], user_location())
    results = [output_of(node, k) for k in range(len(outs))]
    length = b.shape(seqs[0])[0]
    for k, result in enumerate(results):
        b.set_shape(result, b.shape(carry[k]) if k < len(carry) else [length, *dims[k]])
    return results


ControlConverter = Callable[[Builder, onnx.NodeProto, list, dict, Scope], list[Node]]
CONTROL_CONVERTERS: dict[str, ControlConverter] = {"If": _if, "Loop": _loop, "Scan": _scan}
SUPPORTED = CONVERTERS.keys() | CONTROL_CONVERTERS.keys()
