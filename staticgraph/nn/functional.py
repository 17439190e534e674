"""``staticgraph.nn.functional``: torch.nn.functional's names, the very functions
``eager.nn.functional`` has (staticgraph/ops/functional.py), taking graph nodes. ``training=``
of ``batch_norm`` and ``dropout`` takes a Python bool or a bool node (a placeholder), so one
graph serves training and evaluation."""

from ..ops.functional import NN_FUNCTIONAL
from ..ops.functional import *  # noqa: F403

__all__ = list(NN_FUNCTIONAL)
