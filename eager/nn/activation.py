"""Activation layers, as torch.nn's: each calls the function of the same name."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .modules import Module


class ReLU(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Softmax(Module):
    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, _dim(self.dim, input))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, _dim(self.dim, input))


def _dim(dim: int | None, input: Tensor) -> int:
    """torch's legacy choice when no dim is given (it warns): 0 for 0-, 1- and 3-D inputs."""
    return dim if dim is not None else (0 if input.ndim in (0, 1, 3) else 1)


class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:  # (torch ignores its arguments)
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
