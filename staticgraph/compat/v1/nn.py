"""``tf.nn``: TF1's neural-network functions over the native ones."""

from __future__ import annotations

from typing import Any

from ...api import as_node, cross_entropy, log_softmax, relu, sigmoid, softmax, stop_gradient, tanh
from ...graph import Node
from ...ops import dtypes, functional


def sparse_softmax_cross_entropy_with_logits(*, labels: Any, logits: Any) -> Node:
    """The cross entropy of each row of ``logits`` with its class index in ``labels`` (int32
    or int64, as TF1 takes them)."""
    logits = as_node(logits)
    labels = logits._operand(labels)
    if labels.dtype.kind in "iu":
        labels = labels.to(dtypes.int64)
    return cross_entropy(logits, labels, reduction="none")


def softmax_cross_entropy_with_logits_v2(*, labels: Any, logits: Any) -> Node:
    """The cross entropy of each row of ``logits`` with a distribution over the classes in
    ``labels`` (the gradient flows into both)."""
    return cross_entropy(logits, as_node(logits)._operand(labels), reduction="none")


def softmax_cross_entropy_with_logits(*, labels: Any, logits: Any) -> Node:
    """TF1's first version: no gradient flows into ``labels``."""
    return softmax_cross_entropy_with_logits_v2(labels=stop_gradient(labels), logits=logits)


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: Any = None,
            name: Any = None, rate: Any = None) -> Node:
    """Each element kept with probability ``keep_prob`` (or zeroed with ``rate``) and scaled
    by 1 / keep_prob; new numbers at every run (the Session's generator: Session(seed=))."""
    if noise_shape is not None:
        raise TypeError("tf.nn.dropout's noise_shape is not supported")
    if (keep_prob is None) == (rate is None):
        raise ValueError("give tf.nn.dropout one of keep_prob and rate")
    p = rate if rate is not None else 1 - keep_prob  # (a placeholder's 1 - p is a node)
    return functional.dropout(as_node(x), p, training=True)


def l2_loss(t: Any) -> Node:
    """sum(t ** 2) / 2"""
    t = as_node(t)
    return (t * t).sum() / 2


__all__ = ["relu", "sigmoid", "tanh", "softmax", "log_softmax",
           "sparse_softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "softmax_cross_entropy_with_logits", "dropout", "l2_loss"]
