"""ONNX both ways: ``export`` a graph (export.py, one converter per primitive in
converters.py), ``import_model`` one (importer.py, one converter per ONNX op), and onnx's
backend API for its conformance tests (backend.py)."""

from .errors import ONNXError
from .export import default_opset, export
from .importer import ImportedModel, import_model

__all__ = ["ONNXError", "ImportedModel", "default_opset", "export", "import_model"]
