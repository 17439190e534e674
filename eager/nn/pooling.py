"""Pooling layers, as torch.nn's (NCHW): each keeps its arguments as given, as torch does,
and calls the function of the same name."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .modules import Module

_Size2 = int | tuple[int, int]


class MaxPool2d(Module):
    """The maximum of each ``kernel_size`` window; ``stride`` defaults to the kernel size."""

    def __init__(self, kernel_size: _Size2, stride: _Size2 | None = None, padding: _Size2 = 0,
                 dilation: _Size2 = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise ValueError("return_indices=True is not supported: eager's max_pool2d "
                             "returns the maxima only")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each ``kernel_size`` window; with ``count_include_pad`` the padding's
    zeros count in the mean."""

    def __init__(self, kernel_size: _Size2, stride: _Size2 | None = None, padding: _Size2 = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """The mean over ``output_size`` windows tiling the image: 1 is a global average pool
    (other sizes must divide the input's)."""

    def __init__(self, output_size: _Size2) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
