"""The nodes eager mode records: one ``BackwardNode`` per differentiable op (its class is
named as PyTorch names it: ``AddBackward0`` for a primitive, ``MyFnBackward`` for a custom
``autograd.Function``) and an ``AccumulateGrad`` per leaf."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from staticgraph.ops import autodiff
from staticgraph.ops.dtypes import torch_name
from staticgraph.ops.primitive import Primitive

FREED = ("Trying to backward through the graph a second time (or directly access saved "
         "tensors after they have already been freed). Saved intermediate values of the graph "
         "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if "
         "you need to backward through the graph a second time or if you need to access saved "
         "tensors after calling backward.")


DETACHED = ("Trying to use a saved tensor that has been detached in-place, i.e. with "
            ".detach_().This is not supported, please use out-of-place `.detach()` instead")


class Node:
    """``torch.autograd.graph.Node``: what ``grad_fn`` holds. ``_next`` has one entry per
    differentiable input (where its gradient goes, or None)."""

    __slots__ = ("_next", "__weakref__")
    _qualified = False  # torch's hand-written nodes report a C++-qualified name()

    def name(self) -> str:
        name = type(self).__name__
        return f"torch::autograd::{name}" if self._qualified else name

    @property
    def next_functions(self) -> tuple[tuple[Node | None, int], ...]:
        return tuple((node, 0) for node in self._next)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {id(self):#x}>"

    def _apply_hooks(self, g: Any) -> Any:
        """The gradient arriving here, after the hooks of the tensor it is the gradient of."""
        return g


def run_hooks(hooks: list | None, g: Any) -> Any:
    """``Tensor.register_hook``'s functions in order; one that returns a value replaces g."""
    for hook in hooks or ():
        result = hook(g)
        if result is not None:
            g = result
    return g


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook away again."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class AccumulateGrad(Node):
    """The end of every path to a leaf: adds the incoming gradient to ``variable.grad``."""

    __slots__ = ("variable",)
    _qualified = True

    def __init__(self, variable: Any) -> None:
        self._next = ()
        self.variable = variable

    def _apply_hooks(self, g: Any) -> Any:
        return run_hooks(self.variable._hooks, g)  # a leaf's hooks live on the tensor


class BackwardNode(Node):
    """One recorded operation: where the gradients of its inputs go (``_next``), the hooks
    of the tensor it made, whether that tensor retains its grad, and whether backward has
    freed what it saved. Subclasses say how to pull a gradient back (``_pullback``)."""

    __slots__ = ("_freed", "_retained", "_hooks")

    def __init__(self, edges: tuple[Node | None, ...]) -> None:
        self._next, self._hooks, self._freed, self._retained = edges, None, False, None

    def _apply_hooks(self, g: Any) -> Any:
        return run_hooks(self._hooks, g)  # a non-leaf's hooks live on its grad_fn, as in torch

    def _release(self) -> None:
        """Free what was saved for backward (after a backward without retain_graph)."""
        self._freed = True

    def _pullback(self, g: Any, needs: list[bool]) -> list[Any]:
        """One gradient per edge (None where ``needs`` is false) from the output's ``g``."""
        raise NotImplementedError


class PrimitiveBackward(BackwardNode):
    """How to pull a gradient back through one primitive: its params and what the
    primitive's VJP rules need (saved tensors with their versions, or only shapes)."""

    __slots__ = ("_prim", "_params", "_positions", "_inputs", "_versions", "_meta", "_out")

    def __init__(self, prim: Primitive, params: dict, inputs: tuple, out: Any,
                 positions: tuple[int, ...], edges: tuple[Node | None, ...]) -> None:
        """Recorded when ``out = prim(*inputs, **params)`` ran; ``edges[k]`` is where the
        gradient of input ``positions[k]`` goes."""
        super().__init__(edges)
        self._prim, self._params, self._positions = prim, params, positions
        if prim.saves_inputs:
            self._inputs = inputs
            self._versions = tuple(t._version[0] for t in inputs)
        else:
            self._inputs = None
            self._meta = tuple((t._data.shape, t._data.dtype) for t in inputs)
        # The output is kept as its array (not the Tensor, which would be a reference cycle)
        # plus the version box it shares with the Tensor.
        self._out = (out._data, out._version, out._version[0]) \
            if prim.saves_output else None

    def _release(self) -> None:
        super()._release()
        self._inputs = self._out = None

    def _pullback(self, g: Any, needs: list[bool]) -> list[Any]:
        if self._freed and self._prim.saves:
            raise RuntimeError(FREED)
        make = type(g)._make
        if self._inputs is None:
            inputs = tuple(make(meta_array(shape, dtype)) for shape, dtype in self._meta)
        else:
            for position, edge in zip(self._positions, self._next):
                t = self._inputs[position]  # it had a history when saved: still has one?
                if edge is not None and t._grad_fn is None and not t._requires_grad:
                    raise RuntimeError(DETACHED)
            for t, version in zip(self._inputs, self._versions):
                if t._version[0] != version:
                    raise RuntimeError(modified_message(t._data, t._grad_fn, t._version[0],
                                                        version))
            inputs = self._inputs
        out = None
        if self._out is not None:
            data, box, version = self._out
            if box[0] != version:
                raise RuntimeError(modified_message(data, self, box[0], version))
            out = make(data, self)
        all_needs = [False] * len(inputs)
        for position, need in zip(self._positions, needs):
            all_needs[position] = need
        cts = autodiff.vjp(self._prim, g, out, inputs, self._params, all_needs)
        return [cts[p] for p in self._positions]


_node_classes: dict[str, type[PrimitiveBackward]] = {}


def node_class(name: str) -> type[PrimitiveBackward]:
    """A PrimitiveBackward subclass per torch name, so ``type(y.grad_fn).__name__`` reads
    right."""
    cls = _node_classes.get(name)
    if cls is None:
        cls = _node_classes[name] = type(name, (PrimitiveBackward,), {
            "__slots__": (), "_qualified": name in ("CopySlices", "CopyBackwards")})
    return cls


def meta_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zero-strided array of the right shape and dtype: what a rule that only reads the
    shape of an input gets, so eager need not keep that input alive (as torch saves sizes)."""
    return np.ndarray(shape, dtype, buffer=np.zeros(1, dtype), strides=(0,) * len(shape))


def modified_message(data: np.ndarray, grad_fn: Node | None, now: int,
                     expected: int) -> str:
    which = ""
    if grad_fn is not None:
        which = f", which is output 0 of {re.sub(r'Backward[0-9]*$', '', grad_fn.name())},"
    return ("one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [eager.{torch_name(data.dtype)}Tensor {list(data.shape)}]"
            f"{which} is at version {now}; expected version {expected} instead.")
