"""``eager.onnx.export``, as ``torch.onnx.export``: trace a Module or a function of Tensors
into a graph (placeholders for its arguments) and export that graph with
``staticgraph.onnx.export``.

A Module's parameters are traced as ``sg.Variable``s named by ``named_parameters()``: for
the trace each registered Parameter is swapped for its Variable (and put back after), so the
same Python ``forward`` builds graph nodes that read the Variables, and the model's
initializers carry torch's parameter names. (An eager Tensor met while tracing otherwise
becomes an anonymous constant: ``Node._lift`` copies its data, so a parameter could only be
recognised by comparing values afterwards, which equal parameters would confuse.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx

import staticgraph as sg
from staticgraph.onnx.errors import ONNXError
from staticgraph.onnx.export import DynamicAxes
from staticgraph.onnx.export import export as export_graph

from .nn import Module


def export(model: Module | Callable[..., Any], args: Any,
           f: str | os.PathLike | None = None, *, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, dynamic_axes: DynamicAxes | None = None,
           opset_version: int | None = None) -> onnx.ModelProto:
    """The ONNX model of ``model(*args)`` (``args``: a Tensor or a tuple of them), written to
    ``f`` when given. Inputs are named ``input_names`` (default ``input_0``...); the axes
    ``dynamic_axes`` lists for an input are traced with unknown size."""
    args = args if isinstance(args, tuple) else (args,)
    names = [f"input_{i}" for i in range(len(args))] if input_names is None else \
        list(input_names)
    if len(names) != len(args):
        raise ONNXError(f"input_names {names} name {len(names)} inputs; the model is given "
                        f"{len(args)}")
    graph = sg.Graph()
    with graph.as_default():
        inputs = [sg.placeholder(_traced_shape(arg, (dynamic_axes or {}).get(name, ())),
                                 np.dtype(arg.dtype), name=name)
                  for arg, name in zip(args, names)]
        with _parameters_as_variables(model) if isinstance(model, Module) else \
                contextlib.nullcontext():
            result = model(*inputs)
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(out, sg.Node) for out in outputs):
        raise ONNXError("every output of the model must be computed from its inputs (got "
                        f"{[type(out).__name__ for out in outputs]})")
    return export_graph(outputs, inputs, f, opset_version=opset_version,
                        input_names=names, output_names=output_names,
                        dynamic_axes=dynamic_axes)


def _traced_shape(arg: Any, dynamic: Any) -> tuple[int | None, ...]:
    """The argument's shape with the dynamic axes (a list, or a dict keyed by axis) unknown."""
    shape = tuple(arg.shape)
    return tuple(None if axis in dynamic else size for axis, size in enumerate(shape))


@contextlib.contextmanager
def _parameters_as_variables(module: Module) -> Iterator[None]:
    """Each Parameter swapped for an ``sg.Variable`` of its value and ``named_parameters()``
    name, in every module that registers it (a shared one is one Variable), while tracing."""
    variables = {id(param): sg.Variable(param.detach().numpy(), name=name)
                 for name, param in module.named_parameters()}
    registered = [(owner, name, param) for _, owner, name, param in module._all_parameters()]
    try:
        for owner, name, param in registered:
            owner._parameters[name] = variables[id(param)]
        yield
    finally:
        for owner, name, param in registered:
            owner._parameters[name] = param
