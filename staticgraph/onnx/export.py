"""Export a graph's fetches as an ONNX model.

The subgraph the outputs need is copied (``passes.specialize`` with the inputs' own shapes,
so ``None`` sizes stay unknown) and simplified (``simplify``, ``cse``, ``dce``; no fusion),
then each node is written by its primitive's converter (``converters.CONVERTERS``), control
flow by ``control_converters.py`` (If, Loop, Scan over subgraphs written the same way).
Placeholders become graph inputs with symbolic sizes, Variables and constants initializers.
ONNX node names are the graph's node names and each node's doc_string is the user's
file:line that built it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..files import atomic_write
from ..graph import Node, Role, placeholder
from ..ops.autodiff import as_list
from ..ops.shapes import Shape
from ..passes import optimize, specialize
from ..passes.rewrite import origin_of
from ..program import Program
from ..session import Session
from .control_converters import write_control
from .converters import CONVERTERS, NOT_EXPORTABLE, Converter, onnx_type
from .errors import ONNXError

MIN_OPSET = 13  # ReduceSum's axes, Squeeze's and Unsqueeze's as inputs
# The newest opset the newest onnxruntime we test (1.32) loads: a model at opset 29 is refused
# ("ValidateOpsetForDomain"), one at 28 runs, and onnx 1.23 defines 28. A constant rather than
# a probe at export time: export needs onnx only, not onnxruntime. Raise it after testing a
# newer onnxruntime (tests/test_onnx_export.py runs every op spec at the default).
MAX_TESTED_OPSET = 28
SIMPLIFY = ("simplify", "cse", "dce")

DynamicAxes = Mapping[str, Mapping[int, str] | Sequence[int]]


def default_opset() -> int:
    """The newest opset the installed onnx defines, capped at what onnxruntime was tested at."""
    return min(onnx.defs.onnx_opset_version(), MAX_TESTED_OPSET)


class _Model:
    """The ONNX graph being written: nodes, initializers, and names kept unique."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.values: set[str] = set()       # value names in use
        self.node_names: set[str] = set()   # node names in use
        self.casts: dict[tuple[str, np.dtype], str] = {}  # (value, dtype) -> its Cast
        self.cast_keys: dict[str, tuple[str, np.dtype]] = {}  # and back
        self._constants: dict[tuple, str] = {}

    @staticmethod
    def fresh(base: str, used: set[str]) -> str:
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    def initializer(self, array: np.ndarray, name: str) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def constant(self, array: np.ndarray, base: str) -> str:
        """One initializer per distinct value (axes and shapes repeat)."""
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.initializer(array, self.fresh(base, self.values))
        return self._constants[key]


class Context:
    """What a converter sees of one graph node (``node``, ``params``, ``opset``, its inputs'
    shapes and dtypes), and how it adds ONNX nodes and constants, named after the node and
    documented with the user's line that built it."""

    def __init__(self, model: _Model, node: Node, inputs: list[str],
                 parent: Context | None = None) -> None:
        self.node, self.params, self.opset = node, node.params, model.opset
        self._model, self._inputs = model, inputs
        # A node of a decomposition writes for the user's node: its line, its ONNX nodes.
        self.location = node.location if parent is None else parent.location
        self._emitted: list[onnx.NodeProto] = [] if parent is None else parent._emitted
        self._shapes: dict[int, str] = {}

    def shape(self, i: int) -> Shape:
        return self.node.inputs[i].shape

    def dtype(self, i: int) -> np.dtype:
        return self.node.inputs[i].dtype

    def input(self, i: int, dtype: Any = None) -> str:
        """Input ``i`` in ``dtype`` (the node's own by default), with one Cast per value and
        dtype in the whole model."""
        dtype = self.node.dtype if dtype is None else np.dtype(dtype)
        name = self._inputs[i]
        if self.dtype(i) == dtype:
            return name
        key = (name, dtype)
        if key not in self._model.casts:
            self._model.casts[key] = cast = self.emit("Cast", name, to=onnx_type(dtype))
            self._model.cast_keys[cast] = key
        return self._model.casts[key]

    def emit(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """Add an ONNX node; returns the name of its output."""
        base = f"{self.node.name}/{op_type}"
        output = self._model.fresh(base, self._model.values)
        proto = helper.make_node(op_type, list(inputs), [output],
                                 name=self._model.fresh(base, self._model.node_names),
                                 doc_string=self.location, **attributes)
        self._model.nodes.append(proto)
        self._emitted.append(proto)
        return output

    def const(self, value: np.ndarray) -> str:
        return self._model.constant(np.asarray(value), f"{self.node.name}/const")

    def ints(self, values: Any) -> str:
        """An int64 vector (axes, shapes, starts...)."""
        return self.const(np.array(list(values), np.int64))

    def scalar(self, value: float) -> str:
        """A 0-d constant of the node's dtype."""
        return self.const(np.array(value, self.node.dtype))

    def shape_of(self, i: int) -> str:
        """Input ``i``'s shape as an int64 vector: a constant where it is known."""
        shape = self.shape(i)
        if None not in shape:
            return self.ints(shape)
        if i not in self._shapes:
            self._shapes[i] = self.emit("Shape", self._inputs[i])
        return self._shapes[i]

    def require(self, opset: int, what: str) -> None:
        if self.opset < opset:
            raise self.error(f"{what} needs opset {opset} or newer, not {self.opset}; export "
                             f"with opset_version={opset} or higher")

    def error(self, message: str) -> ONNXError:
        return ONNXError(f"{self.node.op} {self.node.name!r} (built at {self.location}): "
                         f"{message}")

    def decomposed(self) -> str:
        """The node as its primitive's decomposition, each simpler primitive written by its
        own converter: a composite where the opset has no operator for it."""
        sub = Program()
        with sub.name_scope(self.node.name):
            stand_ins = [placeholder(x.shape, x.dtype, graph=sub) for x in self.node.inputs]
            out = self.node.prim.decomposition(*stand_ins, **self.params)
        names = dict(zip(stand_ins, self._inputs))
        for node in sub.nodes:
            if node.role is Role.CONSTANT:
                names[node] = self.const(node.value)
            elif node.role is Role.OP:
                context = Context(self._model, node, [names[i] for i in node.inputs], self)
                names[node] = _converter(node, self.location)(context)
        return names[out]

    def finish(self, result: str, name: str) -> str:
        """Give the converter's result the node's own value name (and its last ONNX node the
        node's name); a result the converter did not compute (its input) keeps its name."""
        producer = next((p for p in self._emitted if result in p.output), None)
        if producer is None:
            return result
        for proto in self._emitted:
            for field in (proto.input, proto.output):
                for j, value in enumerate(field):
                    if value == result:
                        field[j] = name
        producer.name = self.node.name
        if result in self._model.cast_keys:  # a Cast later nodes share: under its new name
            self._model.casts[self._model.cast_keys.pop(result)] = name
        return name


def export(outputs: Node | Sequence[Node], inputs: Node | Sequence[Node],
           path: str | os.PathLike | None = None, *, session: Session | None = None,
           opset_version: int | None = None, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None,
           dynamic_axes: DynamicAxes | None = None) -> onnx.ModelProto:
    """An ONNX model computing ``outputs`` (any nodes, gradients included) from ``inputs``
    (placeholders, or other nodes to feed), written to ``path`` whole or not at all.

    Variables hold ``session``'s current values (their initial values without one).
    ``None`` sizes are symbolic dimensions named ``<input>_dim<k>``, or as ``dynamic_axes``
    says (``{name: {axis: dim_name}}`` or ``{name: [axes]}``, torch.onnx's form).
    """
    outputs, inputs = as_list(outputs), as_list(inputs)
    opset = default_opset() if opset_version is None else _checked_opset(opset_version)
    _check_nodes(outputs, inputs, session)
    program = specialize(outputs, {node: node.shape for node in inputs})
    program, _ = optimize(program, SIMPLIFY)

    model = _Model(opset)
    in_names = _names("input", input_names, inputs)
    values, out_names = _value_names(model, program, inputs, in_names, outputs, output_names)
    axes = _dynamic_axes(dynamic_axes, in_names, out_names)
    _write_nodes(model, program, values, session)
    for node, fetch, name in zip(program.outputs, outputs, out_names):
        if values[node] != name:  # an input, a Variable, a value fetched twice, an alias
            model.nodes.append(helper.make_node(
                "Identity", [values[node]], [name], doc_string=fetch.location,
                name=model.fresh(name, model.node_names)))

    graph = helper.make_graph(
        model.nodes, "staticgraph",
        [_value_info(name, node.shape, node.dtype, axes.get(name, {}), name)
         for name, node in zip(in_names, inputs)],
        [_value_info(name, node.shape, node.dtype, axes.get(name, {}), None)
         for name, node in zip(out_names, program.outputs)],
        initializer=model.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="staticgraph",
                              ir_version=helper.find_min_ir_version_for(opsets))
    if path is not None:
        _write(proto, path)
    return proto


def _checked_opset(opset: int) -> int:
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ONNXError(f"opset_version={opset}: export writes opsets {MIN_OPSET} to {newest} "
                        f"(the newest this onnx {onnx.__version__} defines)")
    return opset


def _check_nodes(outputs: list[Node], inputs: list[Node], session: Session | None) -> None:
    if not outputs:
        raise ONNXError("export needs at least one output")
    for node in outputs + inputs:
        if not isinstance(node, Node):
            raise TypeError(f"export takes graph nodes as outputs and inputs, got {node!r}")
        if node.graph is not outputs[0].graph:
            raise ONNXError(f"{node.name!r} (built at {node.location}) belongs to another graph "
                            f"than {outputs[0].name!r}")
    if session is not None and session.graph is not outputs[0].graph:
        raise ONNXError("the session runs another graph than the outputs'")
    if len(set(inputs)) != len(inputs):
        raise ONNXError(f"an input is given twice: {[n.name for n in inputs]}")


def _names(kind: str, given: Sequence[str] | None, nodes: list[Node]) -> list[str]:
    names = [n.name for n in nodes] if given is None else list(given)
    if len(names) != len(nodes) or len(set(names)) != len(names):
        raise ONNXError(f"{kind}_names {names} must be {len(nodes)} distinct names, one per "
                        f"{kind}")
    return names


def _value_names(model: _Model, program: Program, inputs: list[Node], in_names: list[str],
                 outputs: list[Node], output_names: Sequence[str] | None
                 ) -> tuple[dict[Node, str], list[str]]:
    """The ONNX value name of every node, and the outputs' names, all chosen before any
    converter names an intermediate value: inputs as given, Variables by their own names (a
    model's parameters are found by them), a computed output by the output's name."""
    by_input = dict(zip(inputs, in_names))
    model.values.update(in_names)
    values: dict[Node, str] = {}
    for node in program.nodes:
        origin = origin_of(node)
        if node.role is Role.PLACEHOLDER:
            if origin not in by_input:
                raise ONNXError(f"placeholder {origin.name!r} (built at {origin.location}) is "
                                "needed by the outputs but is not among the inputs")
            values[node] = by_input[origin]
        elif node.role is Role.VARIABLE:
            if origin.name in model.values:
                raise ONNXError(f"variable {origin.name!r} has the name of an input")
            values[node] = model.fresh(origin.name, model.values)
    out_names = _output_names(model, outputs, output_names)
    for node, name in zip(program.outputs, out_names):
        if node.role in (Role.OP, Role.OUTPUT) and node not in values:
            values[node] = name
    for node in program.nodes:
        if node not in values:
            values[node] = model.fresh(node.name, model.values)
    model.node_names.update(node.name for node in program.nodes)
    return values, out_names


def _output_names(model: _Model, outputs: list[Node],
                  given: Sequence[str] | None) -> list[str]:
    if given is None:  # the fetches' names, made unique
        return [model.fresh(node.name, model.values) for node in outputs]
    names = _names("output", given, outputs)
    taken = [name for name in names if name in model.values]
    if taken:
        raise ONNXError(f"output_names {taken} are already names of inputs or Variables")
    model.values.update(names)
    return names


def _write_nodes(model: _Model, program: Program, values: dict[Node, str],
                 session: Session | None) -> None:
    """Initializers for Variables (the session's values) and constants, converters' nodes
    for the rest, in the graph's order."""
    for node in program.nodes:
        if node.role is Role.VARIABLE:
            value = node.value if session is None else np.asarray(session._value(origin_of(node)))
            model.initializer(value, values[node])
        elif node.role is Role.CONSTANT:
            model.initializer(node.value, values[node])
        elif node.role is Role.OP:
            context = Context(model, node, [values[i] for i in node.inputs])
            values[node] = context.finish(_converter(node, node.location)(context),
                                          values[node])
        elif node.role is Role.CONTROL:  # its OUTPUT nodes name the ONNX node's outputs
            write_control(model, program, node, values, _write_nodes)
        elif node.role not in (Role.PLACEHOLDER, Role.OUTPUT):
            raise ONNXError(f"{node.op} {node.name!r} (built at {node.location}) changes "
                            "state; an ONNX model has none: export the values, not the "
                            "updates")


def _converter(node: Node, location: str) -> Converter:
    converter = CONVERTERS.get(node.prim)
    if converter is None:
        reason = NOT_EXPORTABLE.get(node.prim, "no converter in staticgraph/onnx/converters.py")
        raise ONNXError(f"{node.op} {node.name!r} (built at {location}) cannot be exported to "
                        f"ONNX: {reason}")
    return converter


def _dynamic_axes(dynamic_axes: DynamicAxes | None, in_names: list[str],
                  out_names: list[str]) -> dict[str, dict[int, str]]:
    """torch.onnx's ``dynamic_axes`` as {value name: {axis: dimension name}}."""
    result = {}
    for name, axes in (dynamic_axes or {}).items():
        if name not in in_names and name not in out_names:
            raise ONNXError(f"dynamic_axes names {name!r}, which is neither an input "
                            f"({in_names}) nor an output ({out_names})")
        result[name] = dict(axes) if isinstance(axes, Mapping) else \
            {int(a): f"{name}_dim{a}" for a in axes}
    return result


def _value_info(name: str, shape: Shape, dtype: np.dtype, axes: dict[int, str],
                default: str | None) -> onnx.ValueInfoProto:
    """A typed value; unknown sizes are symbolic, named by ``axes`` or ``<default>_dim<k>``
    (left anonymous without a default: an output's sizes follow from the inputs')."""
    for axis in axes:
        if not 0 <= axis < len(shape) or shape[axis] is not None:
            raise ONNXError(f"dynamic_axes: dimension {axis} of {name!r} (shape "
                            f"{tuple(shape)}) is not an unknown size; build the placeholder "
                            "with None there")
    dims = [d if d is not None else axes.get(k, default and f"{default}_dim{k}")
            for k, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, onnx_type(dtype), dims)


def _write(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Whole or not at all."""
    with atomic_write(path) as f:
        f.write(model.SerializeToString())
