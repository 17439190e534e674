"""TensorFlow 1.x's names over the native API: ``import staticgraph.compat.v1 as tf`` runs a
classic define-and-run program unchanged but for the import. Each name is a native one, or a
thin adapter of TF1's arguments to one; docs/names.md maps them and says what differs."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ... import api
from ... import control as _control
from ...api import (abs, add, as_node, cast, clip_by_global_norm, clip_by_norm, concat, divide,
                    exp, expand_dims, log, matmul, maximum, minimum, multiply, negative, one_hot,
                    ones, ones_like, pow, reshape, sigmoid, sign, sqrt, square, squeeze, stack,
                    stop_gradient, subtract, tanh, transpose, where, zeros, zeros_like)
from ...gradients import gradients
from ...graph import (Graph, Node, assign, get_default_graph, global_variables_initializer,
                      group, reset_default_graph, variables_initializer)
from ...graph import Variable as _Variable
from ...graph import constant as _constant
from ...graph import name_scope as _name_scope
from ...graph import placeholder as _placeholder
from ...ops import dtypes
from ...session import Session, get_default_session
from . import nn, train
from .init_ops import (constant_initializer, filled, glorot_normal_initializer,
                       glorot_uniform_initializer, ones_initializer, random_normal,
                       random_normal_initializer, random_uniform, random_uniform_initializer,
                       set_random_seed, truncated_normal, truncated_normal_initializer,
                       variance_scaling_initializer, zeros_initializer)
from .variables import AUTO_REUSE, VariableScope, get_variable, get_variable_scope, variable_scope

# -- sources and state ------------------------------------------------------------------------


def placeholder(dtype: Any, shape: Sequence[int | None] | None = None,
                name: str | None = None) -> Node:
    if shape is None:
        raise ValueError(f"placeholder {name or 'Placeholder'!r}: staticgraph needs a "
                         "placeholder's rank when the graph is built: give shape=[...], None "
                         "for a size known only when it runs ([] for a scalar)")
    return _placeholder(shape, dtype, name or "Placeholder")


def constant(value: Any, dtype: Any = None, shape: Sequence[int] | None = None,
             name: str = "Const") -> Node:
    """``value`` (one value fills ``shape``; as many values as it has elements take it)."""
    return _constant(filled(value, shape, dtype), name=name)


def Variable(initial_value: Any, trainable: bool | None = None, *, name: str | None = None,
             dtype: Any = None) -> Node:
    return _Variable(initial_value, name=name or "Variable", trainable=trainable, dtype=dtype)


def assign_add(ref: Node, value: Any) -> Node:
    return assign(ref, ref + value)


def assign_sub(ref: Node, value: Any) -> Node:
    return assign(ref, ref - value)


def global_variables(scope: str | None = None) -> list[Node]:
    """The default graph's Variables (those whose name ``scope`` matches, as ``re.match``)."""
    return _matching(get_default_graph().variables, scope)


def trainable_variables(scope: str | None = None) -> list[Node]:
    return _matching(get_default_graph().trainable_variables, scope)


def _matching(variables: list[Node], scope: str | None) -> list[Node]:
    return [v for v in variables if scope is None or re.match(scope, v.name)]


initialize_all_variables = global_variables_initializer  # TF1's first name for it


@contextlib.contextmanager
def name_scope(name: str) -> Iterator[str]:
    """Prefix ``name/`` to the names of ops built inside; yields the scope with its slash,
    which passed back to ``name_scope`` is that scope again."""
    with _name_scope(name) as scope:
        yield scope + "/"


class InteractiveSession(Session):
    """A Session that is the default one from when it is made until it is closed (for
    shells and notebooks: ``x.eval()`` needs no ``with``)."""

    def __init__(self, graph: Graph | None = None) -> None:
        super().__init__(graph)
        self._default = contextlib.ExitStack()
        self._default.enter_context(self.as_default())

    def close(self) -> None:
        self._default.close()
        super().close()


# -- math ---------------------------------------------------------------------------------------


def equal(x: Any, y: Any) -> Node: return as_node(x) == y
def not_equal(x: Any, y: Any) -> Node: return as_node(x) != y
def less(x: Any, y: Any) -> Node: return as_node(x) < y
def less_equal(x: Any, y: Any) -> Node: return as_node(x) <= y
def greater(x: Any, y: Any) -> Node: return as_node(x) > y
def greater_equal(x: Any, y: Any) -> Node: return as_node(x) >= y


def _one_of(name: str, value: Any, old_name: str, old_value: Any) -> Any:
    """An argument TF1 takes under two names (the second deprecated)."""
    if value is not None and old_value is not None:
        raise ValueError(f"Cannot specify both '{name}' and '{old_name}'.")
    return value if value is not None else old_value


def _reduction(native):
    def reduce(input_tensor: Any, axis: Any = None, keepdims: bool | None = None, *,
               reduction_indices: Any = None, keep_dims: bool | None = None) -> Node:
        axis = _one_of("axis", axis, "reduction_indices", reduction_indices)
        keepdims = _one_of("keepdims", keepdims, "keep_dims", keep_dims)
        return native(input_tensor, axis, keepdims or False)
    reduce.__name__ = f"reduce_{native.__name__}"
    reduce.__doc__ = f"``sg.{native.__name__}`` with TF1's argument names."
    return reduce


reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod = map(
    _reduction, [api.sum, api.mean, api.max, api.min, api.prod])


def argmax(input: Any, axis: int | None = None, *, dimension: int | None = None,
           output_type: Any = dtypes.int64) -> Node:
    """The index of the largest value along ``axis`` (TF1's default: 0)."""
    axis = _one_of("axis", axis, "dimension", dimension)
    return api.argmax(input, 0 if axis is None else axis).to(output_type)


# -- control flow -------------------------------------------------------------------------------

cond = _control.cond  # (TF1's arguments already)


def while_loop(cond: Any, body: Any, loop_vars: Any, shape_invariants: Any = None,
               parallel_iterations: int = 10, back_prop: bool = True, swap_memory: bool = False,
               name: str | None = None, maximum_iterations: int | None = None,
               return_same_structure: bool = True) -> Any:
    """tf.while_loop's arguments; trips run one after another and gradients are always
    there, so parallel_iterations, back_prop and swap_memory change nothing."""
    if shape_invariants is not None:
        raise ValueError("while_loop: shape_invariants is not supported: a loop variable keeps "
                         "its shape in staticgraph (docs/control_flow.md)")
    return _control.while_loop(cond, body, loop_vars, maximum_iterations,
                               name=name or "while_loop")


def scan(fn: Any, elems: Any, initializer: Any = None, parallel_iterations: int = 10,
         back_prop: bool = True, swap_memory: bool = False, infer_shape: bool = True,
         reverse: bool = False, name: str | None = None) -> Any:
    """tf.scan's arguments (parallel_iterations, back_prop, swap_memory and infer_shape change
    nothing, as for while_loop)."""
    return _control.scan(fn, elems, initializer, reverse=reverse, name=name or "scan")


# -- dtypes (last: ``bool`` is TF's name for the dtype) -------------------------------------------
float16, float32, float64 = dtypes.float16, dtypes.float32, dtypes.float64
int8, int16, int32, int64, uint8 = (dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64,
                                    dtypes.uint8)
bool = dtypes.bool_

__all__ = [
    "nn", "train", "Graph", "Session", "InteractiveSession", "get_default_session",
    "get_default_graph", "reset_default_graph", "placeholder", "constant", "Variable",
    "get_variable", "variable_scope", "get_variable_scope", "VariableScope", "AUTO_REUSE",
    "name_scope", "assign", "assign_add", "assign_sub", "group", "gradients",
    "global_variables_initializer", "initialize_all_variables", "variables_initializer",
    "global_variables", "trainable_variables", "set_random_seed", "random_normal",
    "truncated_normal", "random_uniform", "zeros_initializer", "ones_initializer",
    "constant_initializer", "random_normal_initializer", "truncated_normal_initializer",
    "random_uniform_initializer", "variance_scaling_initializer", "glorot_uniform_initializer",
    "glorot_normal_initializer", "zeros", "ones", "zeros_like", "ones_like", "one_hot",
    "add", "subtract", "multiply", "divide", "pow", "negative", "abs", "sign", "square", "sqrt",
    "exp", "log", "tanh", "sigmoid", "maximum", "minimum", "matmul", "cast", "where",
    "stop_gradient", "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "reduce_sum",
    "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "argmax", "clip_by_norm",
    "clip_by_global_norm", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "bool"]
