"""Checkpoints for jobs that may die: rank 0 writes ``step_000120.npz`` every ``every`` steps,
whole or not at all, keeping the last ``keep``; a restarted job resumes from the newest one
that reads back complete, on every rank, and follows the loss curve the job would have
followed without the interruption.

A checkpoint is a ``Session.save`` file (every Variable of the graph, so the optimizer's slots
and step counts too) with one more member: each rank's random state, the Session's ``seed``
and how many runs it has made, which together choose every random draw (dropout) of the
next run. The step is the file's name. The data order is the training loop's: derive each
step's batch from the step number (``batches[step % n]``, ``default_rng(step)``) and the
step restores it too."""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
import numpy as np

from .. import distributed as dist
from ..ops import collective
from ..session import Session

__all__ = ["Checkpointer"]

_NAME = re.compile(r"step_(\d+)\.npz")
_RANDOM = "checkpoint:random_state"  # the member holding each rank's (seed, runs)


class Checkpointer:
    """``restore()`` once before training (the number of steps already done, 0 if none), then
    ``step(n)`` after each training step, ``n`` counting the steps done: every ``every``
    steps rank 0 writes ``directory/step_<n>.npz`` and deletes the oldest beyond ``keep``
    (None: keep all), and any later than ``n`` (left by a run this one did not resume from).
    Every rank must make the same calls: they are collective.

    ::

        ckpt = Checkpointer(sess, "ckpt", every=100, keep=3)
        for step in range(ckpt.restore(), steps):
            sess.run(train, batch(step))
            ckpt.step(step + 1)
    """

    def __init__(self, session: Session, directory: str | os.PathLike, every: int = 100,
                 keep: int | None = 3) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpointer: every must be a whole number of steps >= 1, "
                             f"got {every!r}")
        if keep is not None and (not isinstance(keep, int) or keep < 1):
            raise ValueError(f"Checkpointer: keep must be a number of checkpoints >= 1 (or "
                             f"None: keep all), got {keep!r}")
        if any(v.name == _RANDOM for v in session.graph.variables):
            raise ValueError(f"a Variable is named {_RANDOM!r}, the name checkpoints keep "
                             f"the random state under: rename it")
        self.session, self.directory = session, Path(directory)
        self.every, self.keep = every, keep

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` goes."""
        return self.directory / f"step_{step:06d}.npz"

    @property
    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of the checkpoints in the directory, oldest first, as this rank
        sees the directory (rank 0's is the one that counts)."""
        if not self.directory.is_dir():
            return []
        found = ((_NAME.fullmatch(p.name), p) for p in self.directory.iterdir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def step(self, step: int) -> bool:
        """Call after training step ``step`` (counting from 1): saves when it is due (every
        ``every`` steps). Whether it saved."""
        if step % self.every:
            return False
        self.save(step)
        return True

    def save(self, step: int) -> Path:
        """Write the checkpoint of ``step`` now (rank 0), and wait until it is complete on
        every rank, so that no rank goes on while the job's last checkpoint is half written:
        a failure from here on resumes at ``step`` at the latest."""
        rank, size = _world()
        states = np.array([self.session.random_state], np.int64)
        if size > 1:
            states = dist.allgather(states)
        path = self.path(step)
        if rank == 0:
            self._write(path, states)
            self._prune(step)
        if size > 1:
            world = collective.mpi().COMM_WORLD
            collective.wait(world.Ibarrier(), f"the barrier after checkpoint {path.name}")
        return path

    def restore(self) -> int:
        """Load the newest checkpoint that reads back complete (damaged ones are skipped,
        with a warning) and return its step; 0, changing nothing, where there is none.

        Rank 0 reads it and broadcasts the Variables to every rank, so the other ranks need
        not see rank 0's directory, and every rank starts from the same weights even without
        a checkpoint (``broadcast_variables``): call it in place of that. Each rank takes back
        its own random state (where the job has as many ranks as the one that saved)."""
        rank, size = _world()
        step, states = self._load() if rank == 0 else (0, np.zeros((0, 2), np.int64))
        if size > 1:
            step, ranks = dist.broadcast(np.array([step, len(states)], np.int64), 0).tolist()
            states = dist.broadcast(states if rank == 0 else np.zeros((ranks, 2), np.int64), 0)
            dist.broadcast_variables(self.session, 0)
        if step == 0:
            return 0
        if len(states) == size:
            self.session.random_state = states[rank].tolist()
        elif rank == 0:
            warnings.warn(f"checkpoint step {step} was saved by a job of {len(states)} ranks, "
                          f"restored on {size}: the Variables and the step continue, but the "
                          f"random draws (dropout) start new sequences", UserWarning,
                          stacklevel=2)
        return step

    def _prune(self, step: int) -> None:
        """Keep the newest ``keep`` checkpoints up to ``step``. Later ones belong to a run
        this one did not resume from: the next restore would pick them over this run's."""
        found = self.checkpoints
        older = [p for s, p in found if s <= step]
        for old in [p for s, p in found if s > step] + (older[:-self.keep] if self.keep else []):
            old.unlink(missing_ok=True)

    def _write(self, path: Path, states: np.ndarray) -> None:
        """Session.save's file plus the random state, under a hidden name until complete."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            self.session.save(partial)
            with open(partial, "r+b") as f:
                with zipfile.ZipFile(f, "a") as archive, \
                        archive.open(f"{_RANDOM}.npy", "w") as member:
                    np.lib.format.write_array(member, states, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())  # on disk before it takes the name restore looks for
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def _load(self) -> tuple[int, np.ndarray]:
        """Restore the newest readable checkpoint into the session: (step, random states)."""
        for stale in self.directory.glob(".*step_*.npz.partial*"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        found = self.checkpoints
        for step, path in reversed(found):
            states = _random_states(path)
            if states is not None:
                self.session.restore(path)  # a model that does not match it raises here
                return step, states
        if found:
            raise ValueError(f"none of the {len(found)} checkpoints in {self.directory} reads "
                             f"back complete (see the warnings); remove them to start over")
        return 0, np.zeros((0, 2), np.int64)


def _random_states(path: Path) -> np.ndarray | None:
    """The ranks' random states saved in ``path``, or None (with a warning saying why) when
    the file is damaged: every member is read, so that a truncated or altered one shows."""
    try:
        # (opened here: np.load leaves its own file open when the zip is damaged)
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}  # (each checked by its CRC)
        states = arrays[_RANDOM]
        if states.ndim != 2 or states.shape[1:] != (2,):
            raise ValueError(f"{_RANDOM} has shape {states.shape}, not (ranks, 2)")
        return states
    except KeyError:
        reason = f"it has no {_RANDOM!r}: Session.save wrote it, not a Checkpointer"
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"skipping damaged checkpoint {path} ({reason})", UserWarning,
                  stacklevel=4)
    return None


def _world() -> tuple[int, int]:
    """(rank, size); without mpi4py a process is a world of one, as without mpiexec."""
    try:
        return dist.rank(), dist.size()
    except ImportError:
        return 0, 1
