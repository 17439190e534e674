"""Sizes known only at run time, while importing: two probe points and shape donors.

Exporters compute reshape targets inside the model (``Shape -> Gather -> Concat -> Reshape``)
from the batch and sequence sizes of its inputs. The importer evaluates those computations
while it imports, at two *probe points*: each input dimension of unknown size (one per ONNX
``dim_param``) gets a different large prime at each point; every node's shape is its
primitive's own shape rule applied at both points, and every small value (the shape vectors)
its primitive's own kernel applied to the values at both points. A size equal at both points
is a constant; one that differs is symbolic and is identified by its pair of values (``B*T``
is ``p*q`` at one point, ``p'*q'`` at the other). So ``Reshape(y, [B, T, -1])`` resolves -1
to ``numel(y) / (B*T) = H*D`` while importing.

A target with two or more symbolic sizes is lowered with a *shape donor*: vectors of those
sizes, broadcast together and then, without copying, to the static sizes;
``reshape_as``/``expand_as``/``_fill`` read its shape at run time, as the gradient rules do
for an unknown batch size. A vector of a symbolic size is ``arange_like`` of an axis of that
size (any value's: the builder keeps the first axis of each symbolic size it meets), an outer
product of input sizes' vectors, or one of those with a constant number of elements added or
dropped (``T + 1``); ``arange`` gives the positions 0..n-1 along such a size, what a Range or
Slice up to a sequence length becomes. One imported model serves any batch size and sequence
length.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx

from ..graph import Graph, Node, Role, constant, placeholder
from ..ops import dtypes, functional
from ..ops.shapes import ShapeError
from ..runtime.interpreter import RunError, run_kernel
from .errors import ONNXError
from .loading import Size, check_size

Dim = tuple[int, int]  # a size at the two probe points: a constant when both are equal

_KNOWN_LIMIT = 4096  # values with at most this many elements are evaluated while importing
_FIRST_PROBE = 10_007


class _Standin:
    """What a shape rule reads of an input: its shape (at a probe point) and dtype."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype, self.ndim = shape, dtype, len(shape)


def _captured(node: Node) -> Node | None:
    """The node of an enclosing graph that a body's placeholder stands for, if it is one."""
    captured = getattr(node.graph, "captured", {}) if node.role is Role.PLACEHOLDER else {}
    return next((outer for outer, param in captured.items() if param is node), None)


def _primes(start: int) -> Iterator[int]:
    n = start
    while True:
        if all(n % k for k in range(2, math.isqrt(n) + 1)):
            yield n
        n += 1


def _at_points(dims: Sequence[Dim]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-axis pairs as the shapes at each probe point."""
    return tuple(d[0] for d in dims), tuple(d[1] for d in dims)


def product(dims: Sequence[Dim]) -> Dim:
    """The product of sizes, at both probe points."""
    return (math.prod(d[0] for d in dims), math.prod(d[1] for d in dims))


def axis_index(axis: int, rank: int, what: str = "axis") -> int:
    """ONNX's ``axis`` (negative counts from the end) as an index below ``rank``."""
    if not -rank <= axis < max(rank, 1):
        raise ONNXError(f"{what} {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


class Builder:
    """The graph being built at one opset, with every node's shape (and every small value)
    at the two probe points; what converters read while importing and how they lower
    shapes that hold symbolic sizes."""

    def __init__(self, graph: Graph, opset: int) -> None:
        self.graph, self.opset = graph, opset
        self.probes: dict[Node, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.known: dict[Node, tuple[np.ndarray, np.ndarray]] = {}
        # Each symbolic size -> the first node and axis with it (what donors view); atoms are
        # the unrelated ones (an input's, a data-dependent one), which others are products of.
        self.sizes: dict[Dim, tuple[Node, int]] = {}
        self.atoms: list[Dim] = []
        self._named: dict[str, Dim] = {}
        self._primes = _primes(_FIRST_PROBE)
        self._gaps: set[int] = set()
        self._probed = 0

    # -- probing ----------------------------------------------------------------------------
    def add_input(self, name: str, dims: list[Size], dtype: np.dtype) -> Node:
        """A placeholder; sizes with the same dim_param name share their probe values."""
        node = placeholder([d if isinstance(d, int) else None for d in dims], dtype, name=name)
        pairs = []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                pairs.append((d, d))
                continue
            pair = self._named.get(d) if d else None
            if pair is None:
                pair = self._new_atom(node, axis)
                if d:
                    self._named[d] = pair
            pairs.append(pair)
        self.probes[node] = _at_points(pairs)
        return node

    def _new_atom(self, node: Node, axis: int) -> Dim:
        # Each atom's two probe values are a different distance apart, so a size that differs
        # from another by a constant at both points (T + 1 from T) is that size plus it, not
        # an unrelated one that happens to be as far from it (T + 1 from B).
        first = next(self._primes)
        pair = (first, next(p for p in self._primes if p - first not in self._gaps))
        self._gaps.add(pair[1] - first)
        self.atoms.append(pair)
        self.sizes[pair] = (node, axis)
        return pair

    def probe_new_nodes(self) -> None:
        """Probe the nodes added to the graph since the last call."""
        nodes = self.graph.nodes
        for node in nodes[self._probed:]:
            if node not in self.probes:
                self._probe(node)
        self._probed = len(nodes)

    def inside(self, body: Graph) -> Builder:
        """A builder for a control-flow body being built inside this one's graph: it shares
        what is known of every node (so a value the body reads from outside keeps its probe
        values), and the sizes it learns stay in the body (a donor there is not visible
        outside). The body's arguments get their sizes with ``set_shape``."""
        child = copy.copy(self)
        child.graph, child._probed = body, 0
        child.sizes, child.atoms = dict(self.sizes), list(self.atoms)
        return child

    def set_shape(self, node: Node, dims: Sequence[Dim | None]) -> None:
        """``node``'s sizes where no primitive's rule gives them (a body's argument, a
        control-flow result): as given, or a new size known only at run time where None."""
        pairs = [d if d is not None else self._new_atom(node, axis) for axis, d in
                 enumerate(dims)]
        self.probes[node] = _at_points(pairs)

    def _probe(self, node: Node) -> None:
        outer = _captured(node)
        if outer is not None:  # a body's stand-in for a value of an enclosing graph
            if outer not in self.probes:
                self._probe(outer)
            self.probes[node] = self.probes[outer]
            if outer in self.known:
                self.known[node] = self.known[outer]
            return
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
                self.sizes.setdefault(pairs[-1], (node, axis))
            else:  # the rule failed, or a size that clamps (a slice of an unknown size)
                pairs.append(self._new_atom(node, axis))
        self.probes[node] = _at_points(pairs)
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
            self.probe_new_nodes()
        return list(zip(*self.probes[x]))

    def probe_values(self, x: Node, what: str) -> tuple[np.ndarray, np.ndarray]:
        """The value of ``x`` at the two probe points, which must be known while importing."""
        if x not in self.probes:
            self.probe_new_nodes()
        if x not in self.known:
            raise ONNXError(f"{what} must be known when the model is imported, but "
                            f"{x.name!r} is known only at run time")
        return self.known[x]

    def dims(self, x: Node, what: str) -> list[Dim]:
        """The elements of the 1-D (or 0-D) integer value ``x`` at the two probe points."""
        first, second = self.probe_values(x, what)
        return [(int(a), int(b)) for a, b in zip(first.reshape(-1), second.reshape(-1))]

    def static(self, x: Node, what: str) -> np.ndarray:
        """The value of ``x``, which must not depend on sizes known only at run time."""
        first, second = self.probe_values(x, what)
        if not np.array_equal(first, second, equal_nan=first.dtype.kind == "f"):
            raise ONNXError(f"{what} depends on a size known only at run time")
        return first

    def static_ints(self, x: Node | None, what: str) -> list[int] | None:
        """The elements of ``x`` (None when the input is omitted), known when importing."""
        return None if x is None else [int(v) for v in self.static(x, what).reshape(-1)]

    def with_known(self, node: Node, first: Any, second: Any) -> Node:
        """``node``, whose value at the probe points is known here (a shape it stands for)."""
        self.probes.setdefault(node, (node.shape, node.shape))
        self.known[node] = (np.asarray(first, node.dtype), np.asarray(second, node.dtype))
        return node

    # -- lowering shapes that may hold symbolic sizes ----------------------------------------
    def reshape(self, x: Node, dims: list[Dim]) -> Node:
        """``x`` reshaped to ``dims``."""
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
            check_size(shape, dtype, what)
            return constant(np.full(shape, value, dtype))
        return self.donor(dims, dtype)._fill(value)

    def donor(self, dims: list[Dim], dtype: np.dtype = dtypes.bool_) -> Node:
        """A node of size ``dims`` whose values do not matter (its shape is what is read):
        vectors of the symbolic sizes, broadcast together (the product of the symbolic sizes
        is allocated, as bools) and then, without copying, to the static sizes."""
        rank = len(dims)
        combined = None
        for i, d in enumerate(dims):
            if d[0] != d[1]:
                piece = self._vector(d).reshape(tuple(-1 if j == i else 1 for j in range(rank)))
                combined = piece if combined is None else combined | piece
        return combined.to(dtype).expand(tuple(-1 if d[0] != d[1] else d[0] for d in dims))

    def _vector(self, d: Dim) -> Node:
        """A 1-D bool node of size ``d``: from an axis of that size, an outer product of
        atoms' vectors, or from an axis whose size differs by a constant (T + 1 from T)."""
        if d in self.sizes:
            return self._axis_vector(d)
        factors = []
        rest = d
        for atom in self.atoms:
            while rest[0] != rest[1] and rest[0] % atom[0] == 0 and rest[1] % atom[1] == 0:
                factors.append(self._axis_vector(atom))
                rest = (rest[0] // atom[0], rest[1] // atom[1])
        if rest[0] == rest[1]:
            if rest[0] != 1 or not factors:
                factors.append(constant(np.zeros(rest[0], bool)))
            vector = factors[0]
            for f in factors[1:]:
                vector = (vector.reshape(-1, 1) | f.reshape(1, -1)).reshape(-1)
            return vector
        for size in self.sizes:
            extra = d[0] - size[0]
            if extra == d[1] - size[1]:
                vector = self._axis_vector(size)
                if extra < 0:
                    return vector[:extra]
                check_size([extra], dtypes.bool_, "a shape donor")
                return functional.cat([vector, constant(np.zeros(extra, bool))], 0)
        raise ONNXError(f"a size known only at run time (probed as {d}) is not a value's size, "
                        "a product of input sizes, or one of those plus a constant")

    def _axis_vector(self, size: Dim) -> Node:
        node, axis = self.sizes[size]
        return node._arange_like(axis).to(bool)  # whatever its other sizes are, even 0

    def arange(self, n: Dim, what: str) -> Node:
        """0, 1, ..., n - 1 (int64), for a size ``n`` that may be known only at run time."""
        if n[0] == n[1]:
            check_size([n[0]], dtypes.int64, what)
            return constant(np.arange(n[0], dtype=np.int64))
        node, axis = self.sizes[n] if n in self.sizes else (self._vector(n), 0)
        return node._arange_like(axis)

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


# What a converter is: (builder, ONNX node, input Nodes (None where omitted), attributes) ->
# a Node, or a list of them (one per output).
Converter = Callable[[Builder, onnx.NodeProto, list, dict], Any]
