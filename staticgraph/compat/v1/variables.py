"""TF1's variable scopes: ``get_variable`` makes or shares the Variable named ``scope/name``,
and ``variable_scope(..., reuse=)`` says which (reuse errors in TF1's words)."""

from __future__ import annotations

import contextlib
import enum
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from ...graph import Graph, GraphError, Node, Role, Variable, get_default_graph
from ...ops import dtypes
from .init_ops import GlorotUniform, Zeros


class _ReuseMode(enum.Enum):
    AUTO_REUSE = "AUTO_REUSE"


AUTO_REUSE = _ReuseMode.AUTO_REUSE  # get_variable makes the variable, or shares it if it exists


class VariableScope:
    """What ``variable_scope`` opens: the prefix of ``get_variable``'s names, whether it
    shares existing Variables (``reuse``), and defaults for the Variables it makes."""

    def __init__(self, name: str, reuse: bool | _ReuseMode = False,
                 initializer: Any = None, dtype: Any = None) -> None:
        self.name, self.reuse, self.initializer, self.dtype = name, reuse, initializer, dtype

    def reuse_variables(self) -> None:
        """From now on, ``get_variable`` in this scope shares existing Variables."""
        self.reuse = True

    def __repr__(self) -> str:
        return f"<VariableScope {self.name!r} reuse={self.reuse}>"


# The open scopes of each graph (TF1 keeps them in the graph too): a new graph starts at the
# root scope.
_open_scopes: weakref.WeakKeyDictionary[Graph, list[VariableScope]] = \
    weakref.WeakKeyDictionary()


def _scopes() -> list[VariableScope]:
    return _open_scopes.setdefault(get_default_graph(), [VariableScope("")])


def get_variable_scope() -> VariableScope:
    return _scopes()[-1]


@contextlib.contextmanager
def variable_scope(name_or_scope: str | VariableScope, reuse: bool | _ReuseMode | None = None,
                   initializer: Any = None, dtype: Any = None) -> Iterator[VariableScope]:
    """A scope for ``get_variable`` and, with the same name, for the names of the ops built
    inside. ``reuse``: True shares existing Variables (here and in inner scopes), AUTO_REUSE
    makes or shares, None or False inherits the enclosing scope's."""
    scopes, graph = _scopes(), get_default_graph()
    parent = scopes[-1]
    if isinstance(name_or_scope, VariableScope):  # re-entered: that scope's names again
        name, inherited = name_or_scope.name, name_or_scope
        ops_scope = graph.name_scope(name + "/")
    else:
        inherited = parent
        name = f"{parent.name}/{name_or_scope}" if parent.name else name_or_scope
        ops_scope = graph.name_scope(name_or_scope)
    scope = VariableScope(
        name, reuse or inherited.reuse,
        inherited.initializer if initializer is None else initializer,
        inherited.dtype if dtype is None else dtypes.as_dtype(dtype))
    scopes.append(scope)
    try:
        with ops_scope:
            yield scope
    finally:
        scopes.pop()


def _existing(graph: Graph, name: str) -> Node | None:
    try:
        node = graph.get(name)
    except GraphError:
        return None
    if node.role is not Role.VARIABLE:
        raise ValueError(f"cannot make Variable {name}: a {node.op} of that name exists "
                         f"(built at {node.location})")
    return node


def get_variable(name: str, shape: Sequence[int] | None = None, dtype: Any = None,
                 initializer: Any = None, trainable: bool | None = None) -> Node:
    """The Variable ``scope/name``: made in a scope that does not reuse, shared (its shape and
    dtype checked) in one that does. ``initializer`` is an initializer (default: the scope's,
    else glorot_uniform_initializer for floats, zeros for the rest) or a value."""
    scope, graph = get_variable_scope(), get_default_graph()
    full_name = f"{scope.name}/{name}" if scope.name else name
    dtype = dtypes.as_dtype(dtype) if dtype is not None else scope.dtype
    existing = _existing(graph, full_name)
    if existing is not None:
        if not scope.reuse:
            raise ValueError(f"Variable {full_name} already exists, disallowed. Did you mean to "
                             "set reuse=True or reuse=tf.AUTO_REUSE in VarScope? Originally "
                             f"defined at: {existing.location}")
        if shape is not None and tuple(shape) != existing.shape:
            raise ValueError(f"Trying to share variable {full_name}, but specified shape "
                             f"{tuple(shape)} and found shape {existing.shape}.")
        if dtype is not None and dtype != existing.dtype:
            raise ValueError(f"Trying to share variable {full_name}, but specified dtype "
                             f"{dtype.name} and found dtype {existing.dtype.name}.")
        return existing
    if scope.reuse is True:
        raise ValueError(f"Variable {full_name} does not exist, or was not created with "
                         "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in "
                         "VarScope?")
    initializer = initializer if initializer is not None else scope.initializer
    if initializer is None or callable(initializer):
        if shape is None:
            raise ValueError(f"Shape of a new variable ({full_name}) must be fully defined, but "
                             "instead was None.")
        dtype = dtype if dtype is not None else dtypes.float32
        if initializer is None:
            initializer = GlorotUniform() if dtypes.is_floating(dtype) else Zeros()
        value = initializer(shape, dtype)
    elif shape is not None:
        raise ValueError("If initializer is a constant, do not specify shape.")
    else:
        value = initializer
    with graph.name_scope("/"):  # the name is the scope's, whatever name scope is open
        return Variable(value, name=full_name, trainable=trainable, dtype=dtype)
