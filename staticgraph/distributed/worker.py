"""What each rank of ``python -m staticgraph.distributed`` runs: start MPI with the job's
fault handling (staticgraph.distributed.init), then the user's script as ``__main__``."""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from . import init


def main() -> None:
    parser = argparse.ArgumentParser(prog="staticgraph.distributed.worker")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    rank, _ = init(timeout=options.timeout)
    pids = os.environ.get("STATICGRAPH_RANK_PIDS")
    if pids:  # so the launcher can name a rank that dies without a word
        with open(os.path.join(pids, str(rank)), "w") as f:
            f.write(str(os.getpid()))
    sys.argv = [options.script, *options.args]
    runpy.run_path(options.script, run_name="__main__")


if __name__ == "__main__":
    main()
