"""Dropout, as torch.nn's: active in training mode only."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .activation import _maybe_inplace
from .modules import Module


class Dropout(Module):
    """In training, zeroes each element with probability ``p`` (drawn from eager's
    generator) and scales the rest by 1 / (1 - p); the identity in evaluation."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return _maybe_inplace(lambda x: F.dropout(x, self.p, self.training), input,
                              self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
