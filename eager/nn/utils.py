"""``eager.nn.utils``, as ``torch.nn.utils``: gradient clipping with torch's formulas, in
place on each parameter's ``.grad`` and never recorded."""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable

from ..creation import tensor
from ..functional import stack
from ..grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]

Tensors = Tensor | Iterable[Tensor]


def _as_list(tensors: Tensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


@no_grad()
def get_total_norm(tensors: Tensors, norm_type: float | str = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` as if concatenated into one vector: the
    norm of their norms. ``norm_type`` may be ``inf`` (or ``'inf'``)."""
    tensors, norm_type = _as_list(tensors), float(norm_type)
    if not tensors:
        return tensor(0.0)
    total_norm = stack([t.norm(norm_type) for t in tensors]).norm(norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm.item()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    return total_norm


@no_grad()
def clip_grads_with_norm_(parameters: Tensors, max_norm: float, total_norm: Tensor) -> None:
    """Scale every ``.grad`` by min(max_norm / (total_norm + 1e-6), 1)."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    clip_coef = float(max_norm) / (total_norm + 1e-6)
    clip_coef_clamped = clip_coef.clamp(max=1.0)  # only ever scale down
    for g in grads:
        g.mul_(clip_coef_clamped)


@no_grad()
def clip_grad_norm_(parameters: Tensors, max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients of ``parameters`` together so that their total norm is at most
    ``max_norm``; returns the total norm before clipping. Parameters without a ``.grad``
    are skipped."""
    if isinstance(parameters, types.GeneratorType):
        parameters = list(parameters)
        if not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will "
                          "occur.", stacklevel=3)
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


@no_grad()
def clip_grad_value_(parameters: Tensors, clip_value: float) -> None:
    """Clamp every ``.grad`` into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            p.grad.clamp_(min=-clip_value, max=clip_value)
