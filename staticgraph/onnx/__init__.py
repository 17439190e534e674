"""ONNX both ways: ``export`` a graph (export.py; one converter per primitive in
converters.py and index_converters.py, what they share in lowering.py), ``import_model`` one
(importer.py; reading and checks in loading.py, shapes known only at run time in shapes.py,
one converter per ONNX op in import_ops.py and import_movement.py), and onnx's backend API
for its conformance tests (backend.py)."""

from .errors import ONNXError
from .export import default_opset, export
from .importer import ImportedModel, import_model

__all__ = ["ONNXError", "ImportedModel", "default_opset", "export", "import_model"]
