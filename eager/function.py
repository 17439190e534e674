"""``eager.autograd.Function``: an operation whose forward and backward the user writes, as
``torch.autograd.Function``. Each differentiable output gets a ``BackwardNode`` named
``<ClassName>Backward`` on the same tape as the primitives, so gradients flow through it
into earlier operations and the one reverse sweep pulls back through it like any other."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from staticgraph.ops import dtypes

from .grad_mode import is_grad_enabled, no_grad
from .nodes import FREED, BackwardNode, Node, meta_array, modified_message
from .tensor import Tensor

__all__ = ["Function", "FunctionCtx", "once_differentiable"]

Meta = tuple[tuple[int, ...], np.dtype]  # a tensor's shape and dtype


class FunctionCtx:
    """``ctx``: what ``forward`` leaves for ``backward``: saved tensors, flags, and any
    attribute the user sets (``ctx.k = k``)."""

    needs_input_grad: tuple[bool, ...]

    def __init__(self) -> None:
        self._saved: tuple[Tensor | None, ...] | None = ()
        self._versions: tuple[int, ...] = ()
        self._non_differentiable: set[int] = set()
        self._materialize = True
        self._inputs: tuple[Meta | None, ...] = ()  # per forward argument; None: not a tensor
        self._outputs: tuple[Meta | None, ...] = ()  # per forward output
        self._live = 0  # output nodes not yet released by a backward

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep tensors for ``backward`` (read them back with ``ctx.saved_tensors``);
        modifying one in place before then is an error there, as in torch."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} "
                                f"is of type {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._saved is None:
            raise RuntimeError(FREED)
        for t, version in zip(self._saved, self._versions):
            if t is not None and t._version[0] != version:
                raise RuntimeError(modified_message(t._data, t._grad_fn, t._version[0],
                                                    version))
        return self._saved

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """These outputs get no gradient history (``requires_grad`` False), e.g. indices."""
        self._non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """With False, ``backward`` gets None (not zeros) for outputs that got no gradient."""
        self._materialize = bool(value)

    def _record_versions(self) -> None:
        if self._saved:
            self._versions = tuple(0 if t is None else t._version[0] for t in self._saved)

    def _release_output(self) -> None:
        """One output's node was freed; the saved tensors go when every output's has."""
        self._live -= 1
        if self._live == 0 and self._saved:
            self._saved = None


class FunctionBackward(BackwardNode):
    """The node of one output of a Function call; ``backward`` is called with this output's
    gradient (zeros, or None, for the other outputs)."""

    __slots__ = ("_ctx", "_output")
    _forward_cls: type[Function]

    def __init__(self, ctx: FunctionCtx, output: int, edges: tuple[Node | None, ...]) -> None:
        super().__init__(edges)
        self._ctx, self._output = ctx, output

    def __getattr__(self, name: str) -> Any:
        # torch's node is the ctx: y.grad_fn.saved_tensors, y.grad_fn.k
        if name == "_ctx":
            raise AttributeError(name)
        return getattr(self._ctx, name)

    def _release(self) -> None:
        if not self._freed:
            self._ctx._release_output()
        super()._release()

    def _pullback(self, g: Tensor, needs: list[bool]) -> list[Tensor | None]:
        ctx = self._ctx
        if self._freed and ctx._saved:  # (another output's node may still hold them)
            raise RuntimeError(FREED)
        grads = [g if j == self._output else _absent_gradient(meta, ctx._materialize)
                 for j, meta in enumerate(ctx._outputs)]
        result = self._forward_cls.backward(ctx, *grads)
        return self._checked(result if isinstance(result, tuple) else (result,), needs)

    def _checked(self, result: tuple, needs: list[bool]) -> list[Tensor | None]:
        """``backward``'s gradients, one per forward argument, as one per edge (tensor
        input), refused in torch's words when they do not fit the inputs."""
        name, expected = type(self).__name__, len(self._ctx._inputs)
        if len(result) < expected or any(r is not None for r in result[expected:]):
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {expected}, got {len(result)})")
        cts: list[Tensor | None] = []
        for position, (meta, grad) in enumerate(zip(self._ctx._inputs, result)):
            if meta is None:
                if grad is not None:
                    raise RuntimeError(f"function {name} returned a gradient different than "
                                       f"None at position {position + 1}, but the "
                                       "corresponding forward input was not a Variable")
                continue
            k = len(cts)  # torch counts the tensor inputs only
            if grad is None or self._next[k] is None:
                cts.append(None)
                continue
            if not isinstance(grad, Tensor):
                raise RuntimeError(f"expected Variable or None (got {type(grad).__name__})")
            cts.append(_fitted(grad, meta, name, k) if needs[k] else None)
        return cts


def _absent_gradient(meta: Meta | None, materialize: bool) -> Tensor | None:
    """What ``backward`` gets for an output no gradient reached: zeros, as torch passes."""
    if meta is None or not materialize:
        return None
    return Tensor._make(np.zeros(*meta))


def _fitted(grad: Tensor, meta: Meta, name: str, index: int) -> Tensor:
    """``grad`` summed back to the input's shape (if it broadcasts to it) and cast to its
    dtype, as torch validates a Function's gradients."""
    shape, dtype = meta
    if grad.shape != shape:
        expandable = len(shape) <= grad.ndim and all(
            d in (1, g) for d, g in zip(reversed(shape), reversed(grad.shape)))
        if not expandable:
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {index} "
                               f"- got {list(grad.shape)} but expected shape compatible with "
                               f"{list(shape)}")
        grad = grad._sum_to(Tensor._make(meta_array(shape, dtype)))
    return grad.to(dtype)


class Function:
    """Subclass it with ``@staticmethod forward(ctx, *args)`` and ``@staticmethod
    backward(ctx, *grad_outputs)`` (one gradient per forward argument, None for
    non-tensors), then call ``MyFn.apply(*args)``.

    ``forward`` runs without recording; ``backward`` records only under
    ``create_graph=True``, so a backward written with tensor operations can be
    differentiated again. Torch's newer split, ``forward(*args)`` plus
    ``setup_context(ctx, inputs, output)``, works too.
    """

    _backward_cls: type[FunctionBackward]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._backward_cls = type(f"{cls.__name__}Backward", (FunctionBackward,),
                                 {"__slots__": (), "_forward_cls": cls})

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple, output: Any) -> None:
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` now and, if a tensor argument requires grad, record the call."""
        separate_setup = cls.setup_context is not Function.setup_context
        if kwargs:  # bound to forward's parameters, as torch does
            forward = inspect.signature(cls.forward)
            if not separate_setup:
                forward = forward.replace(parameters=list(forward.parameters.values())[1:])
            bound = forward.bind(*args, **kwargs)
            bound.apply_defaults()
            args = bound.args
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            if separate_setup:
                output = cls.forward(*args)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args)
        outputs = output if isinstance(output, tuple) else (output,)
        ctx._inputs = tuple(_meta(a) for a in args)
        ctx._outputs = tuple(_meta(o) for o in outputs)
        if is_grad_enabled() and any(ctx.needs_input_grad):
            edges = tuple(a._gradient_edge() for a in args if isinstance(a, Tensor))
            outputs = tuple(_recorded(o, j, ctx, edges, args, cls._backward_cls)
                            for j, o in enumerate(outputs))
        ctx._record_versions()
        return outputs if isinstance(output, tuple) else outputs[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method. (Example: "
                           "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")


def _meta(value: Any) -> Meta | None:
    return (value._data.shape, value._data.dtype) if isinstance(value, Tensor) else None


def _recorded(output: Any, index: int, ctx: FunctionCtx, edges: tuple[Node | None, ...],
              args: tuple, node_cls: type[FunctionBackward]) -> Any:
    """``output`` with the call's node as its grad_fn, unless it cannot carry a gradient."""
    if not isinstance(output, Tensor) or not dtypes.is_floating(output.dtype) \
            or id(output) in ctx._non_differentiable:
        return output
    if output.requires_grad or any(output is a for a in args):
        output = output.detach()  # a tensor the caller holds keeps its own history
    output._grad_fn = node_cls(ctx, index, edges)
    ctx._live += 1
    return output


class Error(BackwardNode):
    """What a ``@once_differentiable`` backward's results record under ``create_graph``:
    differentiating them again raises (torch's node of the same name)."""

    __slots__ = ()
    _qualified = True

    def _pullback(self, g: Any, needs: list[bool]) -> list[Any]:
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")


def once_differentiable(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Function's ``backward`` that is not itself differentiable: it runs without
    recording, and differentiating its results raises instead of silently giving zero."""

    @functools.wraps(backward)
    def wrapper(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        with no_grad():
            result = backward(ctx, *grad_outputs)
        recorded = [g for g in grad_outputs if isinstance(g, Tensor) and g.requires_grad]
        if not is_grad_enabled() or not recorded:
            return result
        edges = tuple(g._gradient_edge() for g in recorded)

        def refusing(r: Any) -> Any:
            if not isinstance(r, Tensor) or not dtypes.is_floating(r.dtype):
                return r
            r = r.detach()  # (it may be a tensor the caller holds, such as a grad_output)
            r._grad_fn = Error(edges)
            return r
        if isinstance(result, tuple):
            return tuple(refusing(r) for r in result)
        return refusing(result)
    return wrapper
