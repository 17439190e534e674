"""The one error ONNX export and import raise for what a user gave them."""

from __future__ import annotations


class ONNXError(ValueError):
    """A model that cannot be exported or imported: says what is wrong and where (the node,
    its op and domain, the opset, the file)."""
