"""Import an ONNX model as a graph: ``import_model(model)``.

Each ONNX node becomes operations of the shared surface on graph Nodes (one converter per op
type, in ``CONVERTERS``), so an imported model differentiates, trains and compiles like a
graph built by hand.

Sizes known only at run time. Exporters compute reshape targets inside the model
(``Shape -> Gather -> Concat -> Reshape``) from the batch and sequence sizes of its inputs.
The importer evaluates those computations while it imports, at two *probe points*: each
input dimension of unknown size (one per ONNX ``dim_param``) gets a different large prime at
each point; every node's shape is its primitive's own shape rule applied at both points, and
every small value (the shape vectors) its primitive's own kernel applied to the values at
both points. A size equal at both points is a constant; one that differs is symbolic and is
identified by its pair of values (``B*T`` is ``p*q`` at one point, ``p'*q'`` at the other). So
``Reshape(y, [B, T, -1])`` resolves -1 to ``numel(y) / (B*T) = H*D`` while importing. A target
with two or more symbolic sizes is lowered with a *shape donor*: views of input axes of those
sizes (one element thick), broadcast together and then, without copying, to the static sizes;
``reshape_as``/``expand_as``/``_fill`` read its shape at run time, as the gradient rules do for
an unknown batch size. One imported model serves any batch size and sequence length.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from ..graph import Graph, Node, Role, Variable, constant, placeholder
from ..ops import dtypes, functional
from ..ops.shapes import ShapeError
from ..runtime.interpreter import RunError, run_kernel
from ..session import Session
from .errors import ONNXError

# Nothing the importer makes (an initializer, ConstantOfShape, Range, an Expand's result) may
# need more than this; the size is checked before anything is allocated.
MAX_ALLOCATION_BYTES = 2**31

DTYPES = {TensorProto.FLOAT: dtypes.float32, TensorProto.DOUBLE: dtypes.float64,
          TensorProto.INT32: dtypes.int32, TensorProto.INT64: dtypes.int64,
          TensorProto.BOOL: dtypes.bool_}

# Inputs a converter reads while importing (shapes, axes, slice bounds, split sizes): a model
# that feeds them from its own graph inputs can be imported only once their values are known
# (the backend binds them to the values it is run with).
IMPORT_TIME_INPUTS = {"Reshape": (1,), "Expand": (1,), "Slice": (1, 2, 3, 4), "Split": (1,),
                      "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,),
                      "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
                      "ConstantOfShape": (0,), "Range": (0, 1, 2), "Dropout": (1, 2)}

_KNOWN_LIMIT = 4096  # values with at most this many elements are evaluated while importing
_FIRST_PROBE = 10_007

Dim = tuple[int, int]  # a size at the two probe points: a constant when both are equal


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
    model, folder = _load(model)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if "ai.onnx" not in opsets:
        raise ONNXError("the model imports no opset of the default domain (ai.onnx): it is "
                        "truncated, or not a model")
    opset = opsets["ai.onnx"]
    for tensor in model.graph.initializer:  # before anything reads or allocates them
        what = f"initializer {tensor.name!r}"
        _check_size(tensor.dims, _dtype(tensor.data_type, what), what)
    _load_external_data(model, folder, allow_external_data)
    order = _schedule(model.graph, opsets)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ONNXError(f"invalid ONNX model: {str(exc).strip()}") from None
    graph = Graph()
    with graph.as_default():
        builder = _Builder(graph, opset)
        inputs, variables = builder.add_sources(model.graph, trainable)
        for node in order:
            builder.convert(node)
        outputs = [builder.values[o.name] for o in model.graph.output]
    return ImportedModel(graph, inputs, outputs, variables, opset)


def import_time_inputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that some node reads while importing (``IMPORT_TIME_INPUTS``)."""
    graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    return {node.input[i] for node in model.graph.node
            for i in IMPORT_TIME_INPUTS.get(node.op_type, ())
            if i < len(node.input) and node.input[i] in graph_inputs}


# -- loading and checking ----------------------------------------------------------------------

def _load(model: Any) -> tuple[onnx.ModelProto, str | None]:
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


def _load_external_data(model: onnx.ModelProto, folder: str | None, allowed: bool) -> None:
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


def _schedule(graph: onnx.GraphProto, opsets: dict[str, int]) -> list[onnx.NodeProto]:
    """The nodes in an order that computes each value before its use, after checking every
    op is supported and every value used is produced; a cycle is an error."""
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTERS:
            domain = node.domain or "ai.onnx"
            raise ONNXError(f"{_describe(node)}: op {node.op_type!r} of domain {domain!r} "
                            f"(opset {opsets.get(domain, 'not imported')}) is not supported "
                            "(staticgraph.onnx.importer.CONVERTERS lists the ops it imports)")
        for out in filter(None, node.output):
            if out in producer:
                raise ONNXError(f"{_describe(node)} and {_describe(producer[out])} "
                                f"both produce {out!r}")
            producer[out] = node
    given = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for name in filter(None, node.input):
            if name not in given and name not in producer:
                raise ONNXError(f"{_describe(node)} uses {name!r}, which no node, graph "
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
        cycle = ", ".join(_describe(nodes[k]) for k in _cycle(nodes, waiting))
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


def _describe(node: onnx.NodeProto) -> str:
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    return f"the {node.op_type} node producing {', '.join(map(repr, filter(None, node.output)))}"


def _dtype(data_type: int, what: str) -> np.dtype:
    if data_type not in DTYPES:
        raise ONNXError(f"{what} has dtype {TensorProto.DataType.Name(data_type)}; staticgraph "
                        "imports FLOAT, DOUBLE, INT32, INT64 and BOOL")
    return DTYPES[data_type]


def _check_size(shape: Sequence[int], dtype: np.dtype, what: str) -> None:
    if any(d < 0 for d in shape):
        raise ONNXError(f"{what} has a negative size in its shape {list(shape)}")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_ALLOCATION_BYTES:
        raise ONNXError(f"{what} of shape {list(shape)} ({dtype.name}) would take {size} bytes, "
                        f"more than the importer allows (MAX_ALLOCATION_BYTES = "
                        f"{MAX_ALLOCATION_BYTES})")


def _array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    if tensor.data_location == TensorProto.EXTERNAL:
        raise ONNXError(f"{what} keeps its data in an external file")
    _check_size(tensor.dims, _dtype(tensor.data_type, what), what)
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise ONNXError(f"{what} is malformed: {exc}") from None


# -- the builder: values, probes and shape donors -------------------------------------------

class _Standin:
    """What a shape rule reads of an input: its shape (at a probe point) and dtype."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype, self.ndim = shape, dtype, len(shape)


def _primes(start: int):
    n = start
    while True:
        if all(n % k for k in range(2, math.isqrt(n) + 1)):
            yield n
        n += 1


class _Builder:
    """The graph being built: ONNX value name -> Node, with every node's shape (and every
    small value) at the two probe points."""

    def __init__(self, graph: Graph, opset: int) -> None:
        self.graph, self.opset = graph, opset
        self.values: dict[str, Node] = {}
        self.probes: dict[Node, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.known: dict[Node, tuple[np.ndarray, np.ndarray]] = {}
        self.atoms: dict[Dim, tuple[Node, int]] = {}  # unrelated unknown sizes -> an axis
        self._named: dict[str, Dim] = {}
        self._primes = _primes(_FIRST_PROBE)
        self._probed = 0

    # -- sources --------------------------------------------------------------------------
    def add_sources(self, g: onnx.GraphProto,
                    trainable: bool) -> tuple[dict[str, Node], dict[str, Node]]:
        """Placeholders for the graph inputs, constants or Variables for the initializers."""
        initializers = {t.name for t in g.initializer}
        inputs = {}
        for value in g.input:
            if value.name in initializers:
                continue  # an initializer listed as an input (IR < 4): a default, not an input
            inputs[value.name] = self.values[value.name] = self._placeholder(value)
        variables = {}
        for tensor in g.initializer:
            array = _array(tensor, f"initializer {tensor.name!r}")
            if trainable and array.dtype.kind == "f":
                node = Variable(array, name=tensor.name)
            else:
                node = constant(array, name=tensor.name)
            variables[tensor.name] = self.values[tensor.name] = node
        if g.sparse_initializer:
            raise ONNXError("sparse initializers are not supported")
        return inputs, variables

    def _placeholder(self, value: onnx.ValueInfoProto) -> Node:
        what = f"graph input {value.name!r}"
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise ONNXError(f"{what} is a {kind or 'value of no type'}; only tensors are "
                            "supported")
        tensor = value.type.tensor_type
        dtype = _dtype(tensor.elem_type, what)
        if not tensor.HasField("shape"):
            raise ONNXError(f"{what} has no shape: staticgraph needs at least its rank")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        node = placeholder(dims, dtype, name=value.name)
        pairs = []
        for axis, d in enumerate(tensor.shape.dim):
            if d.HasField("dim_value"):
                pairs.append((d.dim_value, d.dim_value))
                continue
            pair = self._named.get(d.dim_param) if d.dim_param else None
            if pair is None:
                pair = self._new_atom(node, axis)
                if d.dim_param:
                    self._named[d.dim_param] = pair
            pairs.append(pair)
        self.probes[node] = tuple(tuple(p[k] for p in pairs) for k in (0, 1))
        return node

    def _new_atom(self, node: Node, axis: int) -> Dim:
        pair = (next(self._primes), next(self._primes))
        self.atoms[pair] = (node, axis)
        return pair

    # -- converting -------------------------------------------------------------------------
    def convert(self, node: onnx.NodeProto) -> None:
        xs = [self.values[name] if name else None for name in node.input]
        attrs = {a.name: _attribute(a) for a in node.attribute}
        try:
            result = CONVERTERS[node.op_type](self, node, xs, attrs)
        except ONNXError as exc:
            raise ONNXError(f"{_describe(node)}, opset {self.opset}: {exc}") from None
        except (ShapeError, dtypes.DTypeError, ValueError, TypeError, IndexError) as exc:
            raise ONNXError(f"{_describe(node)}, opset {self.opset}, cannot be imported: "
                            f"{exc}") from None
        results = result if isinstance(result, (list, tuple)) else [result]
        for name, value in zip(node.output, results):
            if name:
                self.values[name] = value
        self._probe_new_nodes()

    def _probe_new_nodes(self) -> None:
        nodes = self.graph.nodes
        for node in nodes[self._probed:]:
            if node not in self.probes:
                self._probe(node)
        self._probed = len(nodes)

    def _probe(self, node: Node) -> None:
        if node.role is not Role.OP:  # a constant or Variable: its own shape and value
            self.probes[node] = (node.shape, node.shape)
            if node.role is Role.CONSTANT and node.value.size <= _KNOWN_LIMIT:
                self.known[node] = (node.value, node.value)
            return
        shapes = [self._rule_shape(node, k) for k in (0, 1)]
        pairs = []
        for axis, d in enumerate(node.shape):
            if d is not None:
                pairs.append((d, d))
            elif None not in shapes and shapes[0][axis] != shapes[1][axis]:
                pairs.append((shapes[0][axis], shapes[1][axis]))
            else:  # the rule failed, or a size that clamps (a slice of an unknown size)
                pairs.append(self._new_atom(node, axis))
        self.probes[node] = tuple(tuple(p[k] for p in pairs) for k in (0, 1))
        if all(i in self.known for i in node.inputs) and None not in node.shape and \
                math.prod(node.shape) <= _KNOWN_LIMIT:
            try:
                with np.errstate(all="ignore"):
                    self.known[node] = tuple(
                        run_kernel(node, [self.known[i][k] for i in node.inputs]) for k in (0, 1))
            except RunError:
                pass  # it fails at run time too, with this message; nothing is known here

    def _rule_shape(self, node: Node, k: int) -> tuple[int, ...] | None:
        standins = [_Standin(self.probes[i][k], i.dtype) for i in node.inputs]
        try:
            return tuple(node.prim.shape_rule(*standins, **node.params))
        except (ShapeError, ValueError, TypeError, IndexError):
            return None

    # -- reading values while importing -----------------------------------------------------
    def shape(self, x: Node) -> list[Dim]:
        """``x``'s sizes at the two probe points."""
        if x not in self.probes:
            self._probe_new_nodes()
        return list(zip(*self.probes[x]))

    def _known(self, x: Node, what: str) -> tuple[np.ndarray, np.ndarray]:
        if x not in self.probes:
            self._probe_new_nodes()
        if x not in self.known:
            raise ONNXError(f"{what} must be known when the model is imported, but "
                            f"{x.name!r} is known only at run time")
        return self.known[x]

    def dims(self, x: Node, what: str) -> list[Dim]:
        """The elements of the 1-D (or 0-D) integer value ``x`` at the two probe points."""
        first, second = self._known(x, what)
        return [(int(a), int(b)) for a, b in zip(first.reshape(-1), second.reshape(-1))]

    def static(self, x: Node, what: str) -> np.ndarray:
        """The value of ``x``, which must not depend on sizes known only at run time."""
        first, second = self._known(x, what)
        if not np.array_equal(first, second, equal_nan=first.dtype.kind == "f"):
            raise ONNXError(f"{what} depends on a size known only at run time")
        return first

    def static_ints(self, x: Node | None, what: str) -> list[int] | None:
        return None if x is None else [int(v) for v in self.static(x, what).reshape(-1)]

    def with_known(self, node: Node, first: Any, second: Any) -> Node:
        """``node``, whose value at the probe points is known here (a shape it stands for)."""
        self.probes.setdefault(node, (node.shape, node.shape))
        self.known[node] = (np.asarray(first, node.dtype), np.asarray(second, node.dtype))
        return node

    # -- lowering shapes that may hold symbolic sizes ----------------------------------------
    def reshape(self, x: Node, dims: list[Dim]) -> Node:
        symbolic = [i for i, d in enumerate(dims) if d[0] != d[1]]
        if len(symbolic) <= 1:  # reshape's one -1 stands for it
            return x.reshape(tuple(-1 if i in symbolic else d[0] for i, d in enumerate(dims)))
        return x.reshape_as(self.donor(dims))

    def expand(self, x: Node, dims: list[Dim]) -> Node:
        """``x`` broadcast to ``dims`` (already broadcast with x's own sizes)."""
        lead = len(dims) - x.ndim
        own = self.shape(x)
        target = []
        for i, d in enumerate(dims):
            if d[0] == d[1]:
                target.append(d[0])
            elif i >= lead and own[i - lead] == d:
                target.append(-1)  # expand keeps x's own size
            else:
                return x.expand_as(self.donor(dims))
        return x.expand(tuple(target))

    def fill(self, dims: list[Dim], value: Any, dtype: np.dtype, what: str) -> Node:
        """A tensor of size ``dims`` filled with ``value``."""
        if all(d[0] == d[1] for d in dims):
            shape = [d[0] for d in dims]
            _check_size(shape, dtype, what)
            return constant(np.full(shape, value, dtype))
        return self.donor(dims, dtype)._fill(value)

    def donor(self, dims: list[Dim], dtype: np.dtype = dtypes.bool_) -> Node:
        """A node of size ``dims`` whose values do not matter (its shape is what is read):
        one-element-thick views of axes with the symbolic sizes, broadcast together (the
        product of the symbolic sizes is allocated, as bools) and then, without copying, to
        the static sizes."""
        rank = len(dims)
        combined = None
        for i, d in enumerate(dims):
            if d[0] != d[1]:
                piece = self._vector(d).reshape(tuple(-1 if j == i else 1 for j in range(rank)))
                combined = piece if combined is None else combined | piece
        return combined.to(dtype).expand(tuple(-1 if d[0] != d[1] else d[0] for d in dims))

    def _vector(self, d: Dim) -> Node:
        """A 1-D bool node of size ``d``: an atom's axis, or an outer product of them."""
        factors = []
        rest = d
        for atom in self.atoms:
            while rest[0] != rest[1] and rest[0] % atom[0] == 0 and rest[1] % atom[1] == 0:
                factors.append(self._atom_vector(atom))
                rest = (rest[0] // atom[0], rest[1] // atom[1])
        if rest[0] != rest[1]:
            raise ONNXError(f"a size known only at run time (probed as {d}) is neither an "
                            "input's size nor a product of them")
        if rest[0] != 1 or not factors:
            factors.append(constant(np.zeros(rest[0], bool)))
        vector = factors[0]
        for f in factors[1:]:
            vector = (vector.reshape(-1, 1) | f.reshape(1, -1)).reshape(-1)
        return vector

    def _atom_vector(self, atom: Dim) -> Node:
        node, axis = self.atoms[atom]
        return node[tuple(slice(None) if a == axis else 0 for a in range(node.ndim))].to(bool)

    def shape_node(self, x: Node, start: int = 0, end: int | None = None) -> Node:
        """``Shape(x)[start:end]`` as an int64 node, whose probe values are known here."""
        axes = range(x.ndim)[start:end]
        dims = self.shape(x)[start:end]
        if all(d[0] == d[1] for d in dims):
            return constant(np.array([d[0] for d in dims], np.int64))
        parts = [constant(np.array([d[0]], np.int64)) if d[0] == d[1] else
                 self._run_time_size(x, a) for a, d in zip(axes, dims)]
        node = functional.cat(parts, 0)
        return self.with_known(node, [d[0] for d in dims], [d[1] for d in dims])

    def _run_time_size(self, x: Node, axis: int) -> Node:
        """``x.shape[axis]`` at run time, as a 1-element int64 node."""
        index = tuple(slice(None) if a == axis else slice(0, 1) for a in range(x.ndim))
        return x[index].to(dtypes.int64)._size_of((axis,)).reshape(1)


def _attribute(attribute: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _product(dims: Sequence[Dim]) -> Dim:
    return (math.prod(d[0] for d in dims), math.prod(d[1] for d in dims))


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ONNXError(f"{what} {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


# -- converters: one per op type ----------------------------------------------------------------
# Each takes (builder, node, inputs, attributes) and returns a Node or a list of them (one per
# output). They use the surface and functional API only, so composites that become
# primitives keep working.

Converter = Callable[[_Builder, onnx.NodeProto, list, dict], Any]


def _method(name: str) -> Converter:
    """The surface method of that name, on the node's inputs."""
    def convert(b, node, xs, attrs):
        return getattr(xs[0], name)(*xs[1:])
    convert.__name__ = f"_{name}"
    return convert


def _div(b, node, xs, attrs):
    x, y = xs
    if x.dtype.kind == "f":
        return x / y
    # Integer division truncates toward zero (C's, not numpy's floor): exact in float64 for
    # magnitudes below 2**53.
    return (x.double() / y.double()).to(x.dtype)


def _mod(b, node, xs, attrs):
    x, y = xs
    if x.dtype.kind == "f":
        raise ONNXError("Mod of floating-point values is not supported (exporters emit it for "
                        "integer shape arithmetic)")
    remainder = x - _div(b, node, xs, attrs) * y  # C's fmod: the sign of x
    if attrs.get("fmod", 0):
        return remainder
    return remainder.where((remainder == 0) | ((remainder < 0) == (y < 0)), remainder + y)


def _pow(b, node, xs, attrs):
    x, y = xs
    return (x ** y).to(x.dtype)  # the base's type, whatever the exponent's


def _variadic(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        result = xs[0]
        for x in xs[1:]:
            result = getattr(result, method)(x)
        return result
    convert.__name__ = f"_variadic_{method}"
    return convert


def _identity(b, node, xs, attrs):
    return xs[0]


def _reciprocal(b, node, xs, attrs):
    return 1 / xs[0]


def _cast(b, node, xs, attrs):
    return xs[0].to(_dtype(attrs["to"], "Cast's target"))


def _cast_like(b, node, xs, attrs):
    return xs[0].to(xs[1].dtype)


def _softmax(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        axis = _axis(attrs.get("axis", -1 if b.opset >= 13 else 1), x.ndim)
        if b.opset >= 13 or axis == x.ndim - 1:
            return getattr(x, method)(axis)
        # Before opset 13 the input is coerced to 2-D: rows of everything from `axis` on.
        dims = b.shape(x)
        flat = b.reshape(x, [_product(dims[:axis]), _product(dims[axis:])])
        return getattr(flat, method)(1).reshape_as(x)
    convert.__name__ = f"_{method}"
    return convert


def _gelu(b, node, xs, attrs):
    return functional.gelu(xs[0], attrs.get("approximate", "none"))


def _softplus(b, node, xs, attrs):
    return functional.softplus(xs[0])


def _clip(b, node, xs, attrs):
    x = xs[0]
    if b.opset >= 11:
        low, high = (xs + [None, None])[1:3]
    else:
        low, high = (x._lift(attrs[k], x.dtype) if k in attrs else None for k in ("min", "max"))
    return x if low is None and high is None else x.clamp(low, high)


def _where(b, node, xs, attrs):
    return functional.where(*xs)


def _gemm(b, node, xs, attrs):
    a, w = xs[:2]
    c = xs[2] if len(xs) > 2 else None
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        a = a.t()
    if attrs.get("transB", 0) and alpha == 1.0 and beta == 1.0:
        return functional.linear(a, w, c)  # torch's nn.Linear, exported
    y = a @ (w.t() if attrs.get("transB", 0) else w)
    y = y if alpha == 1.0 else y * alpha
    if c is None:
        return y
    return y + (c if beta == 1.0 else c * beta)


def _layer_normalization(b, node, xs, attrs):
    x, scale = xs[:2]
    bias = xs[2] if len(xs) > 2 else None
    axis, eps = _axis(attrs.get("axis", -1), x.ndim), attrs.get("epsilon", 1e-5)
    normalized = x.shape[axis:]
    if None in normalized:
        raise ONNXError(f"the normalized sizes {normalized} must be known when importing")
    scale, bias = (v if v is None or v.shape == normalized else v.expand(normalized)
                   for v in (scale, bias))
    y = functional.layer_norm(x, normalized, scale, bias, eps)
    if not any(node.output[1:]):  # Mean and InvStdDev are not wanted
        return y
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axes, keepdim=True)
    centered = x - mean
    inv_std = 1 / ((centered * centered).mean(axes, keepdim=True) + eps).sqrt()
    stash = _dtype(attrs.get("stash_type", TensorProto.FLOAT), "LayerNormalization's stash_type")
    return [y, mean.to(stash), inv_std.to(stash)]


def _reduce(method: str, axes_input_since: int) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        if b.opset >= axes_input_since:
            axes = b.static_ints(xs[1] if len(xs) > 1 else None, f"{node.op_type}'s axes")
        else:
            axes = attrs.get("axes")
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return x
        axes = tuple(sorted({_axis(a, x.ndim) for a in axes or range(x.ndim)}))
        keep = bool(attrs.get("keepdims", 1))
        return _reduced(x, method, axes, keep)
    convert.__name__ = f"_reduce_{method}"
    return convert


_EMPTY_REDUCTION = {"amax": -np.inf, "amin": np.inf}  # ONNX's result over no elements


def _reduced(x: Node, method: str, axes: tuple[int, ...], keep: bool) -> Node:
    if method in _EMPTY_REDUCTION and any(x.shape[a] == 0 for a in axes):
        value = _EMPTY_REDUCTION[method]
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            value = info.min if value < 0 else info.max
        elif x.dtype.kind == "b":
            value = value > 0
        return x.sum(axes, keepdim=keep).to(x.dtype)._fill(value)
    if method == "mean" and x.dtype.kind != "f":
        return x.double().mean(axes, keepdim=keep).to(x.dtype)
    return getattr(x, method)(axes, keepdim=keep).to(x.dtype)  # ints sum to int64 in torch


def _arg(method: str) -> Converter:
    def convert(b, node, xs, attrs):
        x = xs[0]
        axis, keep = _axis(attrs.get("axis", 0), x.ndim), bool(attrs.get("keepdims", 1))
        if not attrs.get("select_last_index", 0):
            return getattr(x, method)(axis, keep)
        flipped = x[(slice(None),) * axis + (slice(None, None, -1),)]
        last = b.shape_node(x, axis, axis + 1).reshape(()) - 1
        return last - getattr(flipped, method)(axis, keep)
    convert.__name__ = f"_{method}"
    return convert


def _matmul(b, node, xs, attrs):
    return xs[0] @ xs[1]


def _transpose(b, node, xs, attrs):
    x = xs[0]
    return x.permute(attrs.get("perm", list(reversed(range(x.ndim)))))


def _concat(b, node, xs, attrs):
    return functional.cat(xs, _axis(attrs["axis"], xs[0].ndim))


def _constant(b, node, xs, attrs):
    if "value" in attrs:
        return constant(_array(attrs["value"], "Constant's value"))
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return constant(np.array(attrs[key], dtype))
    raise ONNXError(f"Constant with {', '.join(attrs) or 'no value'}: only numeric tensors "
                    "are supported")


def _shape(b, node, xs, attrs):
    return b.shape_node(xs[0], attrs.get("start", 0), attrs.get("end"))


def _size(b, node, xs, attrs):
    total = _product(b.shape(xs[0]))
    if total[0] == total[1]:
        return constant(np.array(total[0], np.int64))
    return b.with_known(b.shape_node(xs[0]).prod(), *total)


def _reshape(b, node, xs, attrs):
    x = xs[0]
    target = b.dims(xs[1], "Reshape's shape")
    own = b.shape(x)
    if not attrs.get("allowzero", 0):  # 0 copies the input's size
        target = [own[i] if d == (0, 0) else d for i, d in enumerate(target)]
    if (-1, -1) in target:
        rest = _product([d for d in target if d != (-1, -1)])
        total = _product(own)
        if 0 in rest or total[0] % rest[0] or total[1] % rest[1]:
            raise ONNXError(f"cannot reshape size {x.shape} to {_shown(target)}")
        target = [(total[0] // rest[0], total[1] // rest[1]) if d == (-1, -1) else d
                  for d in target]
    return b.reshape(x, target)


def _shown(dims: list[Dim]) -> list:
    return [d[0] if d[0] == d[1] else "?" for d in dims]


def _flatten(b, node, xs, attrs):
    x = xs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    dims = b.shape(x)
    return b.reshape(x, [_product(dims[:axis]), _product(dims[axis:])])


def _expand(b, node, xs, attrs):
    x = xs[0]
    target = b.dims(xs[1], "Expand's shape")
    own = b.shape(x)
    rank = max(len(target), len(own))
    ones = [(1, 1)] * rank
    padded_target, padded_own = (ones + target)[-rank:], (ones + own)[-rank:]
    dims = [o if t == (1, 1) else t for t, o in zip(padded_target, padded_own)]
    if all(d[0] == d[1] for d in dims):
        _check_size([d[0] for d in dims], x.dtype, "Expand's result")
    return b.expand(x, dims)


def _constant_of_shape(b, node, xs, attrs):
    value = _array(attrs["value"], "ConstantOfShape's value") if "value" in attrs else \
        np.zeros(1, np.float32)
    dims = b.dims(xs[0], "ConstantOfShape's shape")
    return b.fill(dims, value.reshape(-1)[0].item(), value.dtype, "ConstantOfShape's result")


def _range(b, node, xs, attrs):
    start, limit, delta = (b.static(x, f"Range's {w}")
                           for x, w in zip(xs, ("start", "limit", "delta")))
    if delta == 0:
        raise ONNXError("Range's delta is 0")
    count = max(math.ceil((limit - start) / delta), 0)
    _check_size([count], start.dtype, "Range's result")
    return constant((start + np.arange(count) * delta).astype(start.dtype))


def _squeeze(b, node, xs, attrs):
    x = xs[0]
    axes = b.static_ints(xs[1] if len(xs) > 1 else None, "Squeeze's axes") \
        if b.opset >= 13 else attrs.get("axes")
    if axes is None:
        if None in x.shape:
            raise ONNXError(f"Squeeze without axes of shape {x.shape}: whether a size known "
                            "only at run time is 1 is not known while importing")
        axes = [a for a, d in enumerate(x.shape) if d == 1]
    return x._squeeze_axes(tuple(sorted({_axis(a, x.ndim) for a in axes})))


def _unsqueeze(b, node, xs, attrs):
    x = xs[0]
    axes = b.static_ints(xs[1], "Unsqueeze's axes") if b.opset >= 13 else attrs["axes"]
    return x.unsqueeze(tuple(axes))


def _slice(b, node, xs, attrs):
    x = xs[0]
    if b.opset >= 10:
        starts, ends = (b.dims(v, f"Slice's {w}") for v, w in zip(xs[1:3], ("starts", "ends")))
        axes, steps = (b.static_ints(v, f"Slice's {w}")
                       for v, w in zip((xs + [None, None])[3:5], ("axes", "steps")))
    else:
        starts, ends = ([(v, v) for v in attrs[k]] for k in ("starts", "ends"))
        axes, steps = attrs.get("axes"), None
    axes = axes if axes is not None else range(len(starts))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    own = b.shape(x)
    for axis, start, end, step in zip(axes, starts, ends, steps):
        axis = _axis(axis, x.ndim)
        index[axis] = _python_slice(own[axis], start, end, step)
    return x[tuple(index)]


def _python_slice(size: Dim, start: Dim, end: Dim, step: int) -> slice:
    """ONNX's slice of one axis as a Python slice (which clamps differently for negative
    steps, so a known size is resolved here)."""
    if step == 0:
        raise ONNXError("Slice's step is 0")
    bounds = []
    for which, bound in (("start", start), ("end", end)):
        if bound[0] == bound[1]:
            bounds.append(bound[0])
        elif bound == size and (which == "end") == (step > 0):
            bounds.append(None)  # the whole axis, in the step's direction
        else:
            raise ONNXError(f"Slice's {which} depends on a size known only at run time")
    start, end = bounds
    if size[0] != size[1] or None in bounds:
        return slice(start, end, step)
    n = size[0]
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), n), min(max(end, 0), n), step)
    start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return slice(start, end if end >= 0 else None, step)


def _gather(b, node, xs, attrs):
    x, indices = xs
    axis = _axis(attrs.get("axis", 0), x.ndim)
    return x[(slice(None),) * axis + (indices,)]


def _split(b, node, xs, attrs):
    x = xs[0]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    count = len(node.output)
    sizes = b.static_ints(xs[1] if len(xs) > 1 else None, "Split's sizes") \
        if b.opset >= 13 else attrs.get("split")
    if sizes is None:
        size = x.shape[axis]
        if size is None:
            raise ONNXError("Split into equal parts of a size known only at run time")
        chunk = -(-size // count)  # opset 18: the last part may be smaller
        sizes = [min(chunk, size - i * chunk) for i in range(count)]
    if len(sizes) != count:
        raise ONNXError(f"Split has {count} outputs but {len(sizes)} sizes {sizes}")
    starts = np.cumsum([0, *sizes])
    before = (slice(None),) * axis
    return [x[before + (slice(int(s), int(e)),)] for s, e in zip(starts[:-1], starts[1:])]


def _dropout(b, node, xs, attrs):
    x = xs[0]
    given = xs + [None, None]  # before opset 12 a Dropout is for inference
    training = given[2] is not None and bool(b.static(given[2], "Dropout's training_mode"))
    ratio = float(b.static(given[1], "Dropout's ratio")) if training and given[1] is not None \
        else 0.5
    if training and ratio > 0:
        raise ONNXError("Dropout in training mode is random; only inference is supported")
    return [x, b.fill(b.shape(x), True, dtypes.bool_, "Dropout's mask")]


CONVERTERS: dict[str, Converter] = {
    "Add": _method("add"), "Sub": _method("sub"), "Mul": _method("mul"), "Div": _div,
    "Mod": _mod, "Pow": _pow, "Neg": _method("neg"), "Abs": _method("abs"), "Exp": _method("exp"),
    "Log": _method("log"), "Sqrt": _method("sqrt"), "Tanh": _method("tanh"),
    "Sigmoid": _method("sigmoid"), "Relu": _method("relu"), "Erf": _method("erf"),
    "Sign": _method("sign"), "Reciprocal": _reciprocal,
    "Equal": _method("eq"), "Less": _method("lt"), "Greater": _method("gt"),
    "LessOrEqual": _method("le"), "GreaterOrEqual": _method("ge"),
    "Not": _method("__invert__"), "And": _method("__and__"), "Or": _method("__or__"),
    "Max": _variadic("maximum"), "Min": _variadic("minimum"), "Sum": _variadic("add"),
    "Where": _where, "Clip": _clip, "Cast": _cast, "CastLike": _cast_like,
    "Softmax": _softmax("softmax"), "LogSoftmax": _softmax("log_softmax"),
    "Gelu": _gelu, "Softplus": _softplus, "LayerNormalization": _layer_normalization,
    "MatMul": _matmul, "Gemm": _gemm,
    "ReduceSum": _reduce("sum", 13), "ReduceMean": _reduce("mean", 18),
    "ReduceMax": _reduce("amax", 18), "ReduceMin": _reduce("amin", 18),
    "ReduceProd": _reduce("prod", 18), "ArgMax": _arg("argmax"), "ArgMin": _arg("argmin"),
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Expand": _expand,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split,
    "Slice": _slice, "Gather": _gather, "Identity": _identity, "Dropout": _dropout,
    "Constant": _constant, "Shape": _shape, "Size": _size, "ConstantOfShape": _constant_of_shape,
    "Range": _range,
}
