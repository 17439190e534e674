"""The table of primitives: every operation both modes know, each defined in one place.

Families live in their own modules (elementwise, reduce, movement, indexing, linalg); this
module gathers them so that code can say ``P.add`` or look one up by name.
"""

from __future__ import annotations

from types import SimpleNamespace

from . import collective, composite, conv, elementwise, indexing, linalg, movement, reduce
from .primitive import Kind, Primitive, Saves

PRIMITIVES: dict[str, Primitive] = {
    p.name: p for family in (elementwise, reduce, movement, indexing, linalg, composite, conv,
                             collective)
    for p in family.PRIMITIVES
}
P = SimpleNamespace(**PRIMITIVES)

__all__ = ["PRIMITIVES", "P", "Primitive", "Kind", "Saves"]
