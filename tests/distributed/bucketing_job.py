"""Run on N ranks by tests/test_bucketing.py: an MLP trained data-parallel on shards of each
global batch, its gradients all-reduced one by one (no "bucket" pass) and in buckets of
two sizes. Rank 0 writes, as JSON to argv[1], each way's final weights, the all-reduces each
step started (MPI_Iallreduce calls, counted as they happen), and the collectives of the
compiled step."""

import itertools
import json
import sys

import numpy as np

import staticgraph as sg
import staticgraph.distributed as dist
from staticgraph.ops import collective
from staticgraph.passes import DEFAULT_PASSES

rank, size = dist.init(timeout=60)
SIZES, STEPS, BATCH = (12, 10, 8, 3), 3, 8
rng = np.random.default_rng(0)  # the same data and initial weights on every rank
data, labels = rng.standard_normal((STEPS * BATCH, SIZES[0])), rng.integers(0, 3, STEPS * BATCH)
weights = [rng.standard_normal(shape)
           for a, b in itertools.pairwise(SIZES) for shape in [(a, b), (b,)]]


class CountingMPI:
    """mpi4py's MPI, with COMM_WORLD's Iallreduce calls counted."""

    def __init__(self, MPI) -> None:
        self.MPI, self.calls = MPI, 0
        self.COMM_WORLD = self

    def Iallreduce(self, *args, **kwargs):
        self.calls += 1
        return self.MPI.COMM_WORLD.Iallreduce(*args, **kwargs)

    def __getattr__(self, name):  # COMM_WORLD's (size, Abort...), else MPI's (SUM, IN_PLACE)
        world = self.MPI.COMM_WORLD
        return getattr(world, name) if hasattr(world, name) else getattr(self.MPI, name)


counting = CountingMPI(collective.mpi())
collective.mpi = lambda: counting  # (the kernels look mpi() up at each call)


def train(passes, bucket_bytes, distributed=True) -> dict:
    """``distributed``: each rank its shard of each batch, gradients all-reduced; else this
    process alone on whole batches (the oracle)."""
    with sg.Graph().as_default() as g:
        x = sg.placeholder((None, SIZES[0]), "float64")
        y = sg.placeholder((None,), "int64")
        params = [sg.Variable(w) for w in weights]
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            h = h.relu() if k + 2 < len(params) else h
        loss = sg.cross_entropy(h, y)
        optimizer = sg.optim.SGD(0.1, momentum=0.9)
        if distributed:
            optimizer = dist.DistributedOptimizer(optimizer, bucket_bytes=bucket_bytes)
        step = optimizer.minimize(loss)
    session = sg.Session(g, passes=passes)
    calls = []
    for k in range(STEPS):
        rows = slice(k * BATCH, (k + 1) * BATCH)
        share = dist.shard if distributed else (lambda whole: whole)
        feeds = {x: share(data[rows]), y: share(labels[rows])}
        before = counting.calls
        session.run(step, feeds)
        calls.append(counting.calls - before)
    compiled = session.compiled(step, feeds)
    return {"weights": [session.run(p).tolist() for p in params], "calls": calls,
            "collectives": [n.op for n in compiled.graph.nodes
                            if n.prim is not None and n.prim.collective]}


found = {"parameters": len(weights),
         "one_by_one": train([p for p in DEFAULT_PASSES if p != "bucket"], dist.BUCKET_BYTES),
         "one_bucket": train(DEFAULT_PASSES, dist.BUCKET_BYTES),
         "two_buckets": train(DEFAULT_PASSES, 1000),  # (the last gradient, 960 B, alone)
         "whole_batches": train(DEFAULT_PASSES, None, distributed=False)}
if rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(found, f)
