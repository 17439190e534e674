"""``staticgraph.nn``: ``functional``, the same functions as ``eager.nn.functional``, so one
model function taking ``F`` builds a graph or runs eagerly."""

from . import functional

__all__ = ["functional"]
