"""The few free functions each mode supplies as ``F`` (the rest of the surface is methods),
and the intended differences from torch."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np

import eager
import staticgraph as sg
from staticgraph.ops import functional as shared

try:
    import torch
except ImportError:  # the torch oracle (c) is skipped
    torch = None

# Intended, documented differences from torch that are not failures: name -> one-line reason.
# Each is handled where the name is used (grep for it).
KNOWN_DIFFERENCES = {
    "max_dim_ties": "docs/eager.md: max(dim)/min(dim) share the gradient evenly among ties, as "
                    "amax does; torch sends it to the returned index. torch runs .amax/.amin "
                    "there.",
    "max_nan": "docs/eager.md: max()/min() of values holding a NaN give a NaN gradient, as "
               "amax/amin do; torch's max() sends it to the NaN. torch runs .amax()/.amin() "
               "there.",
}

DTYPES = ("float64", "float32", "int64", "int32", "int16", "uint8", "bool")
FUNCS = ("gelu", "layer_norm", "cross_entropy", "mse_loss", "linear", "cat", "stack", "where",
         "softmax", "log_softmax", "softplus", "relu", "conv2d", "max_pool2d", "avg_pool2d",
         "leaky_relu", "silu", "elu", "hardtanh")


def _identity_assign(variable, value):
    """sg.assign's value in eager and torch: the new value, in the Variable's dtype."""
    return value.to(variable.dtype)


GRAPH_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=sg.constant,
                          assign=sg.assign, **{d: np.dtype(d) for d in DTYPES})
EAGER_F = SimpleNamespace(**{n: getattr(shared, n) for n in FUNCS}, tensor=eager.tensor,
                          assign=_identity_assign, **{d: np.dtype(d) for d in DTYPES})
TORCH_F = None
if torch is not None:
    import torch.nn.functional as _tf
    TORCH_F = SimpleNamespace(
        gelu=_tf.gelu, layer_norm=_tf.layer_norm, cross_entropy=_tf.cross_entropy,
        mse_loss=_tf.mse_loss, linear=_tf.linear, cat=torch.cat, stack=torch.stack,
        where=torch.where, softmax=torch.softmax, log_softmax=torch.log_softmax,
        softplus=_tf.softplus, relu=torch.relu, conv2d=_tf.conv2d, max_pool2d=_tf.max_pool2d,
        avg_pool2d=_tf.avg_pool2d, leaky_relu=_tf.leaky_relu, silu=_tf.silu, elu=_tf.elu,
        hardtanh=_tf.hardtanh, tensor=torch.tensor, assign=_identity_assign,
        **{d: getattr(torch, d) for d in DTYPES})


def torch_side(source: str) -> str:
    """A program's source as torch runs it: KNOWN_DIFFERENCES["max_dim_ties"] and
    ["max_nan"]."""
    source = re.sub(r"\.max\(([^()]*)\)\.values", r".amax(\1)", source)
    source = re.sub(r"\.min\(([^()]*)\)\.values", r".amin(\1)", source)
    return re.sub(r"\.(max|min)\(\)", r".a\1()", source)
