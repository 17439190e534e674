"""onnx's backend API (``onnx.backend.base``) on top of ``import_model``, so onnx's own
conformance tests run against staticgraph: ``prepare(model).run(inputs)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from .importer import ImportedModel, import_model, import_time_inputs


class StaticgraphRep(BackendRep):
    """A prepared model. Graph inputs that some node reads while importing (a Reshape's
    shape, a Slice's bounds) are bound to the values of each run: the model is imported once
    per distinct set of those values."""

    def __init__(self, model: onnx.ModelProto) -> None:
        initializers = {t.name for t in model.graph.initializer}
        self._model = model
        self._input_names = [i.name for i in model.graph.input if i.name not in initializers]
        self._output_names = [o.name for o in model.graph.output]
        self._bound = import_time_inputs(model)
        self._imported: dict[tuple, ImportedModel] = {}
        if not self._bound:
            self._imported[()] = import_model(model)

    def run(self, inputs: Sequence[Any] | Mapping[str, Any], **kwargs: Any) -> tuple:
        if isinstance(inputs, np.ndarray):  # the one input of a one-input model
            inputs = [inputs]
        feeds = dict(inputs) if isinstance(inputs, Mapping) else \
            dict(zip(self._input_names, inputs))
        bound = {name: np.asarray(feeds[name]) for name in sorted(self._bound)}
        key = tuple((n, a.dtype.str, a.shape, a.tobytes()) for n, a in bound.items())
        imported = self._imported.get(key)
        if imported is None:
            imported = self._imported[key] = import_model(_with_initializers(self._model, bound))
        outputs = imported(**{n: feeds[n] for n in imported.input_names})
        return namedtupledict("Outputs", self._output_names)(*outputs)


def _with_initializers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``values`` are initializers."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    kept = [i for i in bound.graph.input if i.name not in values]
    del bound.graph.input[:]
    bound.graph.input.extend(kept)
    bound.graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in values.items())
    return bound


class StaticgraphBackend(Backend):
    """``prepare(model, device="CPU")`` imports the model; staticgraph runs on the CPU."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU",
                **kwargs: Any) -> StaticgraphRep:
        if not cls.supports_device(device):
            raise ValueError(f"staticgraph runs models on the CPU, not {device!r}")
        return StaticgraphRep(model)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = StaticgraphBackend.prepare
run_model = StaticgraphBackend.run_model
supports_device = StaticgraphBackend.supports_device
