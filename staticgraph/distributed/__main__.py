"""``python -m staticgraph.distributed -n 4 script.py args...``: run ``script.py`` on 4 ranks
with ``mpiexec`` (the one installed beside this Python, as the mpich wheel puts it, else the
first on PATH), MPI started and faults handled on each rank (staticgraph.distributed.init)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from ..ops.collective import INSTALL


def find_mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        raise SystemExit(f"no mpiexec found beside {sys.executable} or on PATH. {INSTALL}")
    return found


def command(ranks: int, script: str, args: list[str], timeout: float | None) -> list[str]:
    """The mpiexec command line that runs ``script`` on ``ranks`` ranks."""
    worker = [sys.executable, "-m", "staticgraph.distributed.worker"]
    if timeout is not None:
        worker += ["--timeout", str(timeout)]
    return [find_mpiexec(), "-n", str(ranks), *worker, script, *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m staticgraph.distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--ranks", type=int, required=True, help="how many processes")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a collective may wait for the other ranks before the job "
                             "is ended on every rank (default: no limit)")
    parser.add_argument("script", help="the Python script every rank runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    options = parser.parse_args(argv)
    if options.ranks < 1:
        parser.error(f"-n must be at least 1, got {options.ranks}")
    return run(command(options.ranks, options.script, options.args, options.timeout))


def run(argv: list[str]) -> int:
    """Run the mpiexec command, passing its output through. A rank that dies without a word
    (killed by a signal, or a crash in native code) is reported by mpiexec with its process
    id only: each rank records its id (worker.py), so this names the rank too."""
    with tempfile.TemporaryDirectory(prefix="staticgraph-ranks-") as ranks:
        environment = {**os.environ, "STATICGRAPH_RANK_PIDS": ranks}
        dead: list[str] = []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                              env=environment) as job:
            for line in job.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                dead += re.findall(r"PID (\d+) RUNNING", line)
        pids = {open(os.path.join(ranks, f)).read(): f for f in os.listdir(ranks)}
        for pid in dead:
            if pid in pids:
                print(f"python -m staticgraph.distributed: rank {pids[pid]} (process {pid}) "
                      f"died without raising (killed by a signal, or a crash in native code); "
                      "the job was ended on every rank", file=sys.stderr)
        return job.returncode


if __name__ == "__main__":
    sys.exit(main())
