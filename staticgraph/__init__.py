"""staticgraph: define-and-run deep learning on one shared table of primitives.

The define-and-run API (graphs, sessions, compiler) builds on ``staticgraph.ops``, which the
define-by-run ``eager`` package shares.
"""

from . import ops

__version__ = "0.1.0"
__all__ = ["ops"]
