"""What a check finds: a run that raised, a failure of one oracle, and the signatures that
sort failures into classes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .programs import Program


class Raised:
    """A run that raised: its exception's type and message (and where)."""

    def __init__(self, error: BaseException, phase: str) -> None:
        self.type = type(error).__name__
        self.message = str(error).split("\n")[0][:300]
        self.phase = phase

    def __repr__(self) -> str:
        return f"{self.type} ({self.phase}): {self.message}"


@dataclass
class Failure:
    oracle: str          # a | b | c | d | e | f | w | harness: see ORACLES
    kind: str            # raises | no-raise | value | dtype | shape | ...
    label: str           # which fetch
    detail: str
    pipeline: tuple | None = None
    run: int = 0
    signature: str = ""  # an error's normalised message, or what kind of mismatch

    def prekey(self) -> tuple:
        """The class before shrinking: for an error, its normalised message is the class."""
        if self.kind in ("raises", "no-raise") or self.oracle in "defw":
            return (self.oracle, self.kind, self.signature)
        return (self.oracle, self.kind, self.label.split(" ")[0], self.signature)

    def final_key(self, small: Program, pipeline) -> tuple:
        """The class after shrinking: a mismatch is told apart by the ops left in it."""
        if self.kind in ("raises", "no-raise") or self.oracle == "w":
            return self.prekey()
        return self.prekey() + (small.tags(), pipeline if self.oracle != "c" else None)


ORACLES = {
    "a": "numpy pipeline != interpreter passes=()",
    "b": "graph (interpreter passes=()) != eager",
    "c": "eager != torch",
    "d": "a held result or a feed changed by a later run",
    "e": "results share memory",
    "f": "writing into a returned array changed a later result",
    "w": "eager or graph leaked a numpy RuntimeWarning",
    "harness": "the fuzzer itself failed",
}


def error_signature(raised: Raised) -> str:
    """The innermost error's message, normalised: the same failure from the interpreter, the
    numpy runtime or a fused kernel (each wraps it differently) gets one signature."""
    message = raised.message
    inner = re.search(r"failed at run time[^:]*: (.*)$", message)
    if inner:
        message = re.sub(r"^\w+(Error|Exception): ", "", inner.group(1))
    elif raised.type == "RunError":
        message = re.sub(r"^.*?: ", "", message)
    return norm(message)


def norm(message: str) -> str:
    """A message with its names, numbers and arguments blanked out, cut short."""
    message = re.sub(r"(arguments?|argument): .*$", "argument", message)
    message = re.sub(r"at [^ ]+:\d+", "at L", message)
    message = re.sub(r"'[^']*'", "'_'", message)
    message = re.sub(r"\([^()]*\)", "(_)", message)
    message = re.sub(r"\d+", "N", message)
    return message[:70]
