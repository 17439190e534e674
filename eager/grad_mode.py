"""Whether operations are recorded for autograd: thread-local, as in PyTorch."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set(mode: bool) -> None:
    _state.enabled = mode


class _GradMode:
    """A context manager that is also a decorator, with or without parentheses."""

    mode: bool

    def __new__(cls, func: Callable | None = None):
        if func is not None and callable(func):  # bare @no_grad
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func: Callable | None = None) -> None:
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(is_grad_enabled())
        _set(self.mode)

    def __exit__(self, *exc: Any) -> None:
        _set(self.prev.pop())

    def __call__(self, func: Callable) -> Callable:
        factory = self.clone

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with factory():
                return func(*args, **kwargs)
        return wrapper

    def clone(self) -> _GradMode:
        return type(self)()


class no_grad(_GradMode):
    """``with eager.no_grad():`` or ``@eager.no_grad``: nothing inside is recorded."""

    mode = False


class enable_grad(_GradMode):
    """Re-enable recording inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled(_GradMode):
    """Sets grad mode at once (``eager.set_grad_enabled(False)`` works as a plain call, as in
    torch); as a context manager or decorator it restores the previous mode afterwards."""

    def __new__(cls, mode: bool):
        return object.__new__(cls)

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = [is_grad_enabled()]
        _set(self.mode)

    def __enter__(self) -> None:
        pass  # already set by __init__

    def __exit__(self, *exc: Any) -> None:
        _set(self.prev.pop())

    def __call__(self, func: Callable) -> Callable:
        _set(self.prev.pop())  # as a decorator it applies per call, not from now on
        return super().__call__(func)

    def clone(self) -> set_grad_enabled:
        return set_grad_enabled(self.mode)
