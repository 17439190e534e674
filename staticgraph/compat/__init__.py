"""Other frameworks' names over the native API: ``import staticgraph.compat.v1 as tf`` runs
TensorFlow 1.x programs (docs/names.md)."""

from . import v1

__all__ = ["v1"]
