"""Run on 2 ranks by tests/test_checkpoint.py: data-parallel training (dropout, Adam) for 6
steps with a Checkpointer saving every 2.

``first DIR_WHOLE DIR_CUT OUT``: train uninterrupted in DIR_WHOLE (rank 0 writes what it got
to OUT), then again in DIR_CUT where rank 1 fails before step 5: the job ends there.
``resume DIR_CUT OUT``: a restarted job in DIR_CUT, its Sessions unseeded (each rank's seed
must come back from the checkpoint), finishes the training; rank 0 writes what it got."""

import json
import sys

import numpy as np

import staticgraph as sg
import staticgraph.distributed as dist
from staticgraph.distributed.checkpoint import Checkpointer
from staticgraph.nn.functional import dropout

rank, size = dist.init(timeout=60)
STEPS, FAIL_BEFORE = 6, 5
data = np.random.default_rng(0).standard_normal((16, 4))
labels = np.random.default_rng(1).integers(0, 3, 16)


def train(directory: str, seed: int | None, fail: bool = False) -> dict:
    with sg.Graph().as_default() as graph:
        inputs = sg.placeholder((None, 4), "float64")
        targets = sg.placeholder((None,), "int64")
        init = np.random.default_rng(10 + rank)  # different per rank: restore broadcasts
        w1 = sg.Variable(init.standard_normal((4, 6)), name="w1")
        w2 = sg.Variable(init.standard_normal((6, 3)), name="w2")
        loss = sg.cross_entropy(dropout((inputs @ w1).tanh(), 0.3) @ w2, targets)
        step_op = dist.DistributedOptimizer(sg.optim.Adam(0.05)).minimize(loss)
    sess = sg.Session(graph, seed=seed)
    ckpt = Checkpointer(sess, directory, every=2, keep=3)
    start = ckpt.restore()
    losses = []
    for step in range(start, STEPS):
        if fail and rank == 1 and step + 1 == FAIL_BEFORE:
            raise RuntimeError(f"rank {rank} lost its node before step {step + 1}")
        rows = (np.arange(8) + 4 * step) % 16  # the data order is a function of the step
        feeds = {inputs: dist.shard(data[rows]), targets: dist.shard(labels[rows])}
        losses.append(float(sess.run([loss, step_op], feeds)[0]))
        ckpt.step(step + 1)
    state = np.concatenate([np.ravel(sess.run(v)) for v in graph.variables])
    return {"start": start, "losses": losses,
            "ranks_state": dist.allgather(state[None]).tolist()}  # every Variable, every rank


def report(found: dict) -> None:
    if rank == 0:
        with open(sys.argv[-1], "w") as f:
            json.dump(found, f)


if sys.argv[1] == "first":
    report(train(sys.argv[2], seed=100 + rank))
    train(sys.argv[3], seed=100 + rank, fail=True)
    print("unreachable: rank 1 failed before step 5")
else:
    report(train(sys.argv[2], seed=None))
