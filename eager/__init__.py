"""eager: define-by-run tensors with PyTorch's autograd, on staticgraph's primitive table.

>>> import eager
>>> x = eager.ones(2, 2, requires_grad=True)
>>> out = (3 * (x + 2) ** 2).mean()
>>> out.backward()
>>> x.grad
tensor([[4.5000, 4.5000],
        [4.5000, 4.5000]])
"""

from staticgraph.ops.dtypes import (bool_ as bool, float16, float32, float64, int8, int16,
                                    int32, int64, uint8)

from . import autograd
from .creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                       linspace, manual_seed, ones, ones_like, rand, rand_like, randint, randn,
                       randn_like, tensor, zeros, zeros_like)
from .functional import *  # noqa: F403  (torch.exp, torch.cat, ...)
from .functional import __all__ as _functional_names
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor, device

double, float, long = float64, float32, int64

from . import nn, optim  # noqa: E402
from .serialization import load, save  # noqa: E402

__all__ = ["Tensor", "device", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty",
           "full",
           "randn", "rand", "randint", "arange", "linspace", "eye", "zeros_like", "ones_like",
           "empty_like", "full_like", "randn_like", "rand_like", "manual_seed", "no_grad",
           "enable_grad", "set_grad_enabled", "is_grad_enabled", "autograd", "nn", "optim",
           "save", "load",
           "float16", "float32", "float64", "double", "float", "long", "int8", "int16", "int32",
           "int64", "uint8", "bool", *_functional_names]
