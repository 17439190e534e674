"""ONNX both ways: ``export`` a graph (export.py), ``import_model`` one (importer.py), and
onnx's backend API for its conformance tests (backend.py)."""
