"""``eager.nn``, as ``torch.nn``: Parameter, Module, the layers, ``functional``, ``init`` and
``utils`` (gradient clipping)."""

from . import functional, init, utils
from .activation import GELU, Flatten, Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .modules import Embedding, LayerNorm, Linear, Module, Parameter

__all__ = ["Parameter", "Module", "Linear", "LayerNorm", "Embedding", "Sequential",
           "ModuleList", "ModuleDict", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax",
           "LogSoftmax", "Identity", "Flatten", "MSELoss", "NLLLoss", "CrossEntropyLoss",
           "BCELoss", "BCEWithLogitsLoss", "functional", "init", "utils"]
