"""Where the user is: the first stack frame outside this framework (for the file:line of a
graph node, and for warnings that point at the user's line, not ours)."""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType

_INTERNAL_DIRS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                    d) + os.sep for d in ("staticgraph", "eager"))


def user_frame() -> tuple[FrameType | None, int]:
    """The user's frame, and how many frames above the caller of this function it is."""
    frame, level = sys._getframe(2), 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame, level = frame.f_back, level + 1
    return frame, level


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """A warning reported at the user's line."""
    _, level = user_frame()
    warnings.warn(message, category, stacklevel=level + 1)
