"""Import an ONNX model as a graph: ``import_model(model)``.

Each ONNX node becomes operations of the shared surface on graph Nodes, so an imported model
differentiates, trains and compiles like a graph built by hand. The parts:

- ``loading.py``: reading the model and refusing a bad one (``read_model``);
- ``shapes.py``: sizes known only at run time, evaluated at two probe points while importing,
  and the shape donors that carry them into the graph (``Builder``);
- ``import_ops.py``: one converter per ONNX op type (``CONVERTERS``), those of the ops that
  compute shapes, move data or index in ``import_movement.py``;
- ``import_control.py``: If, Loop and Scan, whose subgraphs are converted node by node as
  the graph is (``convert_node``), with the enclosing scopes' values visible;
- here: the graph's inputs and initializers, the nodes converted in order, ``ImportedModel``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

from ..graph import Graph, Node, Variable, constant
from ..session import Session
from .errors import ONNXError
from .import_control import CONTROL_CONVERTERS, all_nodes, convert_node
from .import_ops import CONVERTERS as OP_CONVERTERS
from .import_ops import IMPORT_TIME_INPUTS
from .loading import MAX_ALLOCATION_BYTES, input_type, read_model, tensor_array
from .shapes import Builder

# Every op type imported (If, Loop and Scan's converters also take the enclosing scope).
CONVERTERS = {**OP_CONVERTERS, **CONTROL_CONVERTERS}

__all__ = ["CONVERTERS", "IMPORT_TIME_INPUTS", "MAX_ALLOCATION_BYTES", "ImportedModel",
           "import_model", "import_time_inputs"]


class ImportedModel:
    """An imported model: ``graph``, its ``inputs`` (placeholders, in ONNX order), ``outputs``,
    ``variables`` (initializer name -> Variable or constant) and a ``session`` to run it.
    ``m(*arrays)`` or ``m(**named)`` returns the outputs' values as a list of arrays."""

    def __init__(self, graph: Graph, inputs: dict[str, Node], outputs: list[Node],
                 variables: dict[str, Node], opset: int) -> None:
        self.graph, self.outputs, self.variables, self.opset = graph, outputs, variables, opset
        self.input_names, self.inputs = list(inputs), list(inputs.values())
        self.session = Session(graph)

    def __call__(self, *arrays: Any, **named: Any) -> list[np.ndarray]:
        names = self.input_names
        if arrays and named:
            raise TypeError("pass the inputs either by position or by name, not both")
        unknown = sorted(set(named) - set(names))
        missing = [n for n in names if n not in named] if named else names[len(arrays):]
        if unknown or missing or len(arrays) > len(names):
            raise TypeError(f"the model's inputs are {names}; got "
                            f"{sorted(named) if named else f'{len(arrays)} arrays'}")
        feed = [named[n] for n in names] if named else arrays
        values = self.session.run(self.outputs, dict(zip(self.inputs, feed)))
        return [np.asarray(v) for v in values]


def import_model(model: str | os.PathLike | bytes | onnx.ModelProto, *, trainable: bool = False,
                 allow_external_data: bool = False) -> ImportedModel:
    """Import ``model`` (a path, serialized bytes or a ModelProto) as a new graph.

    ``trainable`` makes floating-point initializers Variables (else constants). Tensors
    stored in external files are read only with ``allow_external_data``, and only from the
    model's folder. Anything wrong with the model raises ``ONNXError`` saying what and where.
    """
    model, opset, order = read_model(model, allow_external_data, CONVERTERS)
    graph = Graph()
    with graph.as_default():
        builder = Builder(graph, opset)
        values: dict[str, Node] = {}
        inputs, variables = _add_sources(builder, model.graph, trainable, values)
        for node in order:
            convert_node(builder, node, values)
        outputs = [values[o.name] for o in model.graph.output]
    return ImportedModel(graph, inputs, outputs, variables, opset)


def import_time_inputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that some node, of the graph or a subgraph, reads while importing
    (``IMPORT_TIME_INPUTS``)."""
    graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    return {node.input[i] for node in all_nodes(model.graph)
            for i in IMPORT_TIME_INPUTS.get(node.op_type, ())
            if i < len(node.input) and node.input[i] in graph_inputs}


def _add_sources(builder: Builder, g: onnx.GraphProto, trainable: bool,
                 values: dict[str, Node]) -> tuple[dict[str, Node], dict[str, Node]]:
    """Placeholders for the graph inputs, constants or Variables for the initializers, each
    entered in ``values`` under its ONNX name."""
    initializers = {t.name for t in g.initializer}
    inputs = {}
    for value in g.input:
        if value.name in initializers:
            continue  # an initializer listed as an input (IR < 4): a default, not an input
        dtype, dims = input_type(value)
        inputs[value.name] = values[value.name] = builder.add_input(value.name, dims, dtype)
    variables = {}
    for tensor in g.initializer:
        array = tensor_array(tensor, f"initializer {tensor.name!r}")
        if trainable and array.dtype.kind == "f":
            node = Variable(array, name=tensor.name)
        else:
            node = constant(array, name=tensor.name)
        variables[tensor.name] = values[tensor.name] = node
    if g.sparse_initializer:
        raise ONNXError("sparse initializers are not supported")
    return inputs, variables
