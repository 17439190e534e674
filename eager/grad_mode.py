"""Whether operations are recorded for autograd: thread-local, as in PyTorch."""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager and decorator that sets grad mode (``set_grad_enabled(False)``)."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(is_grad_enabled())
        _state.enabled = self.mode

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev.pop()


class no_grad(set_grad_enabled):
    """``with eager.no_grad():`` or ``@eager.no_grad()``: nothing inside is recorded."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable recording inside a ``no_grad`` block."""

    def __init__(self) -> None:
        super().__init__(True)
