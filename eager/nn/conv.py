"""Convolution layers, as torch.nn's: Conv2d and ConvTranspose2d (NCHW), with torch's
initialization, checks and printing."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..creation import empty
from ..tensor import Tensor
from . import functional as F
from . import init
from .modules import Module, Parameter

_Size2 = int | tuple[int, int]


def _pair(value: _Size2) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: the weight, shaped ``(out, in / groups, kH,
    kW)`` or, transposed, ``(in, out / groups, kH, kW)``, and the bias, both drawn as torch
    draws them; the checks; the printing."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], padding: str | tuple[int, int],
                 dilation: tuple[int, int], transposed: bool, output_padding: tuple[int, int],
                 groups: int, bias: bool, padding_mode: str) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 "{'same', 'valid'}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode != "zeros":  # torch also pads by reflection, replication, circularly
            raise ValueError(f"padding_mode {padding_mode!r} is not supported: eager pads "
                             "with zeros only (padding_mode='zeros')")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.transposed, self.output_padding = dilation, transposed, output_padding
        self.groups, self.padding_mode = groups, padding_mode
        shape = (in_channels, out_channels // groups) if transposed else \
            (out_channels, in_channels // groups)
        self.weight = Parameter(empty(*shape, *kernel_size))
        self.register_parameter("bias", Parameter(empty(out_channels)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's draw: kaiming_uniform(a=sqrt(5)), which is U(-1/sqrt(fan_in),
        1/sqrt(fan_in)), for the weight, and the same bound for the bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * len(self.padding):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """A 2-D convolution (a cross-correlation, as torch's) over ``(N, C_in, H, W)``;
    ``padding`` may also be "valid" (none) or "same" (the output keeps the input's size)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size2,
                 stride: _Size2 = 1, padding: str | _Size2 = 0, dilation: _Size2 = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, _pair(kernel_size), _pair(stride),
                         padding if isinstance(padding, str) else _pair(padding),
                         _pair(dilation), False, (0, 0), groups, bias, padding_mode)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """The adjoint of Conv2d in its input (a "deconvolution"): it maps Conv2d's output size
    back to its input size; ``output_padding`` (or ``forward``'s ``output_size``) picks among
    the input sizes a strided Conv2d maps to one size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size2,
                 stride: _Size2 = 1, padding: _Size2 = 0, output_padding: _Size2 = 0,
                 groups: int = 1, bias: bool = True, dilation: _Size2 = 1,
                 padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, _pair(kernel_size), _pair(stride),
                         _pair(padding), _pair(dilation), True, _pair(output_padding), groups,
                         bias, padding_mode)

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        output_padding = self.output_padding if output_size is None else \
            self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)

    def _output_padding(self, input: Tensor, output_size: Sequence[int]) -> tuple[int, ...]:
        """The output_padding that gives ``output_size`` (H, W, optionally after N and C)."""
        size = list(output_size)[-2:] if len(output_size) == input.ndim else list(output_size)
        if len(size) != 2:
            raise ValueError(f"ConvTranspose2D: for {input.ndim}D input, output_size must have "
                             f"2 or {input.ndim} elements (got {len(output_size)})")
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                    zip(input.shape[2:], self.stride, self.padding, self.dilation,
                        self.kernel_size)]
        largest = [low + s - 1 for low, s in zip(smallest, self.stride)]
        if any(not low <= n <= high for n, low, high in zip(size, smallest, largest)):
            raise ValueError(f"requested an output size of {size}, but valid sizes range from "
                             f"{smallest} to {largest} (for an input of "
                             f"{list(input.shape[2:])})")
        return tuple(n - low for n, low in zip(size, smallest))
