"""Shared by both modes, importing only numpy (and scipy for erf): the primitive table, the
operator surface, the composites and the reverse sweep."""

from . import autodiff, dtypes, functional
from .primitive import Kind, Primitive, Saves
from .primitives import PRIMITIVES, P
from .shapes import ShapeError
from .surface import MinMax, Surface

__all__ = ["PRIMITIVES", "P", "Primitive", "Kind", "Saves", "Surface", "MinMax", "ShapeError",
           "autodiff", "dtypes", "functional"]
