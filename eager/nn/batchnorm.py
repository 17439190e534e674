"""Batch normalization layers, as torch.nn's: BatchNorm1d and BatchNorm2d, with the running
statistics as buffers (``running_mean``, ``running_var``, ``num_batches_tracked``)."""

from __future__ import annotations

from ..creation import empty, ones, tensor, zeros
from ..tensor import Tensor
from . import functional as F
from . import init
from .modules import Module, Parameter


class _BatchNorm(Module):
    """Normalizes each channel (axis 1) with the batch's statistics in training, which move
    the running ones ``momentum`` of the way (``momentum=None``: their plain average over
    the batches seen), and with the running ones in evaluation. Without
    ``track_running_stats`` there are none, and the batch's statistics serve in both modes."""

    _expected_dims: tuple[int, ...]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", Parameter(empty(num_features)) if affine else None)
        self.register_parameter("bias", Parameter(empty(num_features))
                                if affine and bias else None)
        for name, value in (("running_mean", zeros(num_features)),
                            ("running_var", ones(num_features)),
                            ("num_batches_tracked", tensor(0))):
            self.register_buffer(name, value if track_running_stats else None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._expected_dims:
            expected = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"expected {expected} input (got {input.ndim}D input)")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # the cumulative average: the n-th batch weighs 1/n
                momentum = 1.0 / int(self.num_batches_tracked)
        # The batch's statistics in training, or in evaluation when there are no running ones;
        # these are passed to be used (evaluation) or moved (training, when tracked).
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        passed = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if passed else None,
                            self.running_var if passed else None, self.weight, self.bias,
                            use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over ``(N, C)`` or ``(N, C, L)``."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over ``(N, C, H, W)``."""

    _expected_dims = (4,)
