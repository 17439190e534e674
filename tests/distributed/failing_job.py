"""Run on N ranks by tests/test_distributed.py: the last rank raises before the first
collective; the others wait in it. The job must end on every rank, naming the rank."""

import numpy as np

import staticgraph.distributed as dist

rank, size = dist.init(timeout=30)
if rank == size - 1:
    raise RuntimeError(f"rank {rank} ran out of data")
dist.allreduce(np.ones(3), "sum")
print("unreachable: the allreduce cannot complete")
