"""``eager.nn.functional``, as ``torch.nn.functional``: the composites shared with graph mode,
re-exported (their gradients come from the primitives they are made of)."""

from staticgraph.ops.functional import (cross_entropy, gelu, layer_norm, linear, log_softmax,
                                        mse_loss, relu, softmax, softplus)

__all__ = ["relu", "gelu", "softplus", "softmax", "log_softmax", "cross_entropy", "mse_loss", "layer_norm",
           "linear"]
