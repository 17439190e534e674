"""Run on 2 ranks by tests/test_distributed.py: the last rank is killed (SIGKILL) before the
first collective; the launcher must end the job and name that rank."""

import os
import signal

import numpy as np

import staticgraph.distributed as dist

rank, size = dist.init(timeout=30)
if rank == size - 1:
    os.kill(os.getpid(), signal.SIGKILL)
dist.allreduce(np.ones(3), "sum")
print("unreachable: the allreduce cannot complete")
