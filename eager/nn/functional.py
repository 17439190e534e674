"""``eager.nn.functional``, as ``torch.nn.functional``: the functions shared with graph mode
(staticgraph/ops/functional.py), re-exported."""

from staticgraph.ops.functional import (binary_cross_entropy, binary_cross_entropy_with_logits,
                                        cross_entropy, gelu,
                                        layer_norm, linear, log_softmax, mse_loss, nll_loss,
                                        relu, sigmoid, softmax, softplus, tanh)

__all__ = ["relu", "gelu", "softplus", "sigmoid", "tanh", "softmax", "log_softmax",
           "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits",
           "layer_norm", "linear"]
