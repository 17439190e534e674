"""Reading an ONNX model for import, and refusing a bad one before anything is built.

``read_model`` parses a path, bytes or ModelProto, checks every initializer's size before it
is read, reads external data (only when allowed, only from the model's folder), orders the
nodes so each value is computed before its use (every op supported, every value produced,
no cycle) and runs onnx's checker. Every problem is an ``ONNXError`` that names the node,
op, domain, opset or file. The helpers below (dtypes, sizes, tensors, attributes) are the
ones the converters use for the same checks.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from ..ops import dtypes
from .errors import ONNXError

# Nothing the importer makes (an initializer, ConstantOfShape, Range, an Expand's result) may
# need more than this; the size is checked before anything is allocated.
MAX_ALLOCATION_BYTES = 2**31

DTYPES = {TensorProto.FLOAT: dtypes.float32, TensorProto.DOUBLE: dtypes.float64,
          TensorProto.INT32: dtypes.int32, TensorProto.INT64: dtypes.int64,
          TensorProto.BOOL: dtypes.bool_}

Size = int | str | None  # a graph input's size: known, a dim_param's name, or neither


def read_model(model: Any, allow_external_data: bool,
               supported: Collection[str]) -> tuple[onnx.ModelProto, int, list[onnx.NodeProto]]:
    """The checked model, its ai.onnx opset and its nodes in an order that computes each
    value before its use; ``supported`` are the op types that can be imported."""
    model, folder = _parse(model)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if "ai.onnx" not in opsets:
        raise ONNXError("the model imports no opset of the default domain (ai.onnx): it is "
                        "truncated, or not a model")
    for tensor in model.graph.initializer:  # before anything reads or allocates them
        what = f"initializer {tensor.name!r}"
        check_size(tensor.dims, onnx_dtype(tensor.data_type, what), what)
    _read_external_data(model, folder, allow_external_data)
    order = _schedule(model.graph, opsets, supported)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ONNXError(f"invalid ONNX model: {str(exc).strip()}") from None
    return model, opsets["ai.onnx"], order


def _parse(model: Any) -> tuple[onnx.ModelProto, str | None]:
    """The ModelProto and the folder its external data would be in (None unless a path)."""
    folder = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ONNXError(f"no ONNX model at {path!r}: the file does not exist")
        with open(path, "rb") as f:
            model, source, folder = f.read(), repr(path), os.path.dirname(os.path.abspath(path))
    else:
        source = "the model"
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            model = onnx.load_model_from_string(bytes(model))
        except DecodeError as exc:
            raise ONNXError(f"{source} is not a valid ONNX model: the bytes do not parse as "
                            f"a ModelProto ({exc or 'truncated or malformed'})") from None
    if not isinstance(model, onnx.ModelProto):
        raise ONNXError(f"import_model takes a path, bytes or an onnx.ModelProto, got "
                        f"{type(model).__name__}")
    if model.ir_version == 0 or not model.HasField("graph"):
        raise ONNXError(f"{source} is not a valid ONNX model: it has no ir_version or graph "
                        "(truncated or not an ONNX file)")
    return model, folder


def _read_external_data(model: onnx.ModelProto, folder: str | None, allowed: bool) -> None:
    """Read initializers stored in files beside the model, refusing any outside its folder."""
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        what = f"initializer {tensor.name!r} (external data {location!r})"
        if not allowed:
            raise ONNXError(f"{what}: the model keeps tensors in external files; pass "
                            "allow_external_data=True to read them")
        if folder is None:
            raise ONNXError(f"{what}: external data can be read only for a model loaded "
                            "from a path (its folder is where the files are)")
        root = os.path.realpath(folder)
        path = os.path.realpath(os.path.join(root, location))
        if os.path.isabs(location) or os.path.commonpath([root, path]) != root:
            raise ONNXError(f"{what}: the location is outside the model's folder {folder!r}")
        if not os.path.isfile(path):
            raise ONNXError(f"{what}: no such file in the model's folder {folder!r}")
        size = math.prod(tensor.dims) * DTYPES[tensor.data_type].itemsize  # checked already
        with open(path, "rb") as f:
            f.seek(int(info.get("offset", 0)))
            data = f.read(size)
        if len(data) != size or int(info.get("length", size)) != size:
            raise ONNXError(f"{what}: the file holds {len(data)} bytes at that offset (length "
                            f"{info.get('length', 'not given')}), the tensor needs {size}")
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def _schedule(graph: onnx.GraphProto, opsets: dict[str, int],
              supported: Collection[str]) -> list[onnx.NodeProto]:
    """The nodes in an order that computes each value before its use, after checking every
    op is supported and every value used is produced; a cycle is an error."""
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in supported:
            domain = node.domain or "ai.onnx"
            raise ONNXError(f"{describe(node)}: op {node.op_type!r} of domain {domain!r} "
                            f"(opset {opsets.get(domain, 'not imported')}) is not supported "
                            "(staticgraph.onnx.importer.CONVERTERS lists the ops it imports)")
        for out in filter(None, node.output):
            if out in producer:
                raise ONNXError(f"{describe(node)} and {describe(producer[out])} "
                                f"both produce {out!r}")
            producer[out] = node
    given = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for name in filter(None, node.input):
            if name not in given and name not in producer:
                raise ONNXError(f"{describe(node)} uses {name!r}, which no node, graph "
                                "input or initializer produces")
    for out in graph.output:
        if out.name not in given and out.name not in producer:
            raise ONNXError(f"graph output {out.name!r} is produced by no node, graph input or "
                            "initializer")
    nodes = list(graph.node)
    waiting = [{i for i in n.input if i in producer and i not in given} for n in nodes]
    users: dict[str, list[int]] = {}
    for k, names in enumerate(waiting):
        for name in names:
            users.setdefault(name, []).append(k)
    ready = [k for k, names in enumerate(waiting) if not names]  # a heap: the file's order
    order = []
    while ready:
        k = heapq.heappop(ready)
        order.append(nodes[k])
        for out in nodes[k].output:
            for user in users.get(out, ()):
                waiting[user].discard(out)
                if not waiting[user]:
                    heapq.heappush(ready, user)
    if len(order) < len(nodes):
        cycle = ", ".join(describe(nodes[k]) for k in _cycle(nodes, waiting))
        raise ONNXError(f"the graph has a cycle: {cycle} wait on each other's outputs")
    return order


def _cycle(nodes: list[onnx.NodeProto], waiting: list[set[str]]) -> list[int]:
    """Of the nodes that never became ready, those on a cycle: drop, until none is left to
    drop, each whose outputs no other stuck node waits on."""
    stuck = [k for k, names in enumerate(waiting) if names]
    while True:
        needed = set().union(*(waiting[k] for k in stuck))
        kept = [k for k in stuck if needed.intersection(nodes[k].output)]
        if len(kept) == len(stuck):
            return stuck
        stuck = kept


def describe(node: onnx.NodeProto) -> str:
    """How an error names a node: its name, else its op and outputs."""
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    return f"the {node.op_type} node producing {', '.join(map(repr, filter(None, node.output)))}"


def input_type(value: onnx.ValueInfoProto) -> tuple[np.dtype, list[Size]]:
    """A graph input's dtype and sizes (a tensor's, with at least its rank known)."""
    what = f"graph input {value.name!r}"
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise ONNXError(f"{what} is a {kind or 'value of no type'}; only tensors are supported")
    tensor = value.type.tensor_type
    dtype = onnx_dtype(tensor.elem_type, what)
    if not tensor.HasField("shape"):
        raise ONNXError(f"{what} has no shape: staticgraph needs at least its rank")
    return dtype, [d.dim_value if d.HasField("dim_value") else d.dim_param or None
                   for d in tensor.shape.dim]


def onnx_dtype(data_type: int, what: str) -> np.dtype:
    """The numpy dtype of an ONNX element type, which must be one staticgraph imports."""
    if data_type not in DTYPES:
        raise ONNXError(f"{what} has dtype {TensorProto.DataType.Name(data_type)}; staticgraph "
                        "imports FLOAT, DOUBLE, INT32, INT64 and BOOL")
    return DTYPES[data_type]


def check_size(shape: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse a negative size, or a value over ``MAX_ALLOCATION_BYTES``, before allocating."""
    if any(d < 0 for d in shape):
        raise ONNXError(f"{what} has a negative size in its shape {list(shape)}")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_ALLOCATION_BYTES:
        raise ONNXError(f"{what} of shape {list(shape)} ({dtype.name}) would take {size} bytes, "
                        f"more than the importer allows (MAX_ALLOCATION_BYTES = "
                        f"{MAX_ALLOCATION_BYTES})")


def tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto's value, once its dtype and size are checked."""
    if tensor.data_location == TensorProto.EXTERNAL:
        raise ONNXError(f"{what} keeps its data in an external file")
    check_size(tensor.dims, onnx_dtype(tensor.data_type, what), what)
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise ONNXError(f"{what} is malformed: {exc}") from None


def attribute_value(attribute: onnx.AttributeProto) -> Any:
    """An attribute's value, with bytes decoded to str."""
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value
