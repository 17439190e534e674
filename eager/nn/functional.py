"""``eager.nn.functional``, as ``torch.nn.functional``: the functions shared with graph mode
(staticgraph/ops/functional.py, whose NN_FUNCTIONAL lists them), re-exported."""

from staticgraph.ops.functional import (adaptive_avg_pool2d, avg_pool2d, batch_norm,
                                        binary_cross_entropy, binary_cross_entropy_with_logits,
                                        conv2d, conv_transpose2d, cross_entropy, dropout, elu,
                                        gelu, hardtanh, layer_norm, leaky_relu, linear,
                                        log_softmax, max_pool2d, mse_loss, nll_loss, relu,
                                        sigmoid, silu, softmax, softplus, tanh)

__all__ = ["relu", "gelu", "softplus", "sigmoid", "tanh", "leaky_relu", "silu", "elu",
           "hardtanh", "softmax", "log_softmax", "layer_norm", "batch_norm", "dropout",
           "linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
           "adaptive_avg_pool2d", "cross_entropy", "nll_loss", "mse_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits"]
