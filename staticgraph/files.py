"""Files written whole or not at all (checkpoints, ONNX models, eager.save): to a fresh name
beside the target, renamed over it once complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents into; ``path`` changes only when the
    block ends without an exception."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {os.fspath(path)}: there is no directory "
                                f"{directory}")
    # Opened as open() would (mkstemp's files are private, 0600, whatever the umask says).
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    try:
        with open(tmp, "xb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())  # on disk before it is renamed: a power cut leaves old or new
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
