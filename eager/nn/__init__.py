"""``eager.nn``, as ``torch.nn``: Parameter, Module, the layers, and ``functional``."""

from . import functional
from .modules import (GELU, Embedding, LayerNorm, Linear, Module, Parameter, ReLU,
                      Sequential)

__all__ = ["Parameter", "Module", "Linear", "ReLU", "GELU", "Sequential", "LayerNorm",
           "Embedding", "functional"]
