"""``backward()`` and ``eager.autograd.grad``: PyTorch's semantics on the shared reverse
sweep (``staticgraph.ops.autodiff.backprop``); ``Function`` for operations the user writes
(``eager/function.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from staticgraph.ops import autodiff

from . import function  # noqa: F401  (eager.autograd.function, as torch.autograd.function)
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import set_grad_enabled
from .nodes import AccumulateGrad, BackwardNode, Node

__all__ = ["backward", "grad", "Function", "FunctionCtx", "once_differentiable"]


def _root(t: Any, index: int) -> Node:
    edge = t._gradient_edge()
    if edge is not None:
        return edge
    raise RuntimeError(f"element {index} of tensors does not require grad and does not have a "
                       "grad_fn")


def _seeds(outputs: list, grad_outputs: list) -> list[tuple[Node, Any]]:
    if grad_outputs and len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one gradient per output: got {len(grad_outputs)} "
                           f"gradients for {len(outputs)} outputs")
    seeds = []
    for i, t in enumerate(outputs):
        root = _root(t, i)
        g = grad_outputs[i] if grad_outputs else None
        if g is None:
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = t._lift(np.ones(t._data.shape, t._data.dtype))
        else:
            g = t._operand(g)
            if g.shape != t.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape} and output[{i}] has a shape of {t.shape}.")
        seeds.append((root, g))
    return seeds


def _sweep(seeds, retain_graph: bool, create_graph: bool, targets=None) -> dict[Node, Any]:
    def parents(node: Node):
        return node._next

    def pullback(node: Node, g: Any, needs: list[bool]) -> list:
        if not isinstance(node, BackwardNode):
            return [None] * len(needs)
        cts = node._pullback(g, needs)
        if not retain_graph:
            node._release()
        return cts

    with set_grad_enabled(create_graph):
        return autodiff.backprop(seeds, parents, pullback, targets,
                                 lambda node, g: node._apply_hooks(g))


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad`` (and retained ``.grad``)."""
    outputs = autodiff.as_list(tensors)
    retain = create_graph if retain_graph is None else retain_graph
    grads = _sweep(_seeds(outputs, autodiff.as_list(grad_tensors)), retain, create_graph)
    with set_grad_enabled(create_graph):
        for node, g in grads.items():
            if isinstance(node, AccumulateGrad):
                node.variable._accumulate_grad(g, create_graph)
            elif isinstance(node, BackwardNode) and node._retained is not None:
                owner = node._retained()
                if owner is not None:
                    owner._accumulate_grad(g, create_graph)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, returned, not accumulated."""
    outputs, inputs = autodiff.as_list(outputs), autodiff.as_list(inputs)
    nodes = []
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        nodes.append(t._gradient_edge())
    retain = create_graph if retain_graph is None else retain_graph
    seeds = _seeds(outputs, autodiff.as_list(grad_outputs))
    grads = _sweep(seeds, retain, create_graph, set(nodes))
    result = []
    for i, node in enumerate(nodes):
        g = grads.get(node)
        if g is None and not allow_unused:
            raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have been "
                               "used in the graph. Set allow_unused=True if this is the desired "
                               "behavior.")
        result.append(g)
    return tuple(result)
