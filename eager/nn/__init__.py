"""``eager.nn``, as ``torch.nn``: Parameter, Module, the layers, ``functional``, ``init`` and
``utils`` (gradient clipping)."""

from . import functional, init, utils
from .activation import (ELU, GELU, Flatten, Hardtanh, Identity, LeakyReLU, LogSoftmax, ReLU,
                         ReLU6, Sigmoid, SiLU, Softmax, Tanh)
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .modules import Embedding, LayerNorm, Linear, Module, Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["Parameter", "Module", "Linear", "LayerNorm", "Embedding", "Sequential",
           "ModuleList", "ModuleDict", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "ReLU", "ReLU6",
           "LeakyReLU", "SiLU", "ELU", "Hardtanh", "GELU", "Tanh", "Sigmoid", "Softmax",
           "LogSoftmax", "Identity", "Flatten", "MSELoss", "NLLLoss", "CrossEntropyLoss",
           "BCELoss", "BCEWithLogitsLoss", "functional", "init", "utils"]
