"""Run on N ranks by tests/test_distributed.py: checks each collective's values and gradients
(graph and eager), and that DistributedOptimizer on shards of a global batch takes the steps
one process takes on the whole batch. Rank 0 writes what it found as JSON to argv[1]."""

import json
import sys

import numpy as np

import eager
import staticgraph as sg
import staticgraph.distributed as dist

rank, size = dist.init(timeout=60)
found = {}

# -- values and gradients, graph ----------------------------------------------------------------
with sg.Graph().as_default() as g:
    x = sg.placeholder((2,), "float64", name="x")
    total = dist.allreduce(x * x, "sum")
    mean = dist.allreduce(x, "mean")
    root = dist.broadcast(x, root=size - 1)
    gathered = dist.allgather(x * (rank + 1))
    loss = total.sum() + (mean * 3).sum() + (root * root).sum() + gathered.sum()
    (gx,) = sg.gradients(loss, [x])
    (ggx,) = sg.gradients(gx.sum(), [x])
xv = np.array([1.0, 2.0]) * (rank + 1)
values = sg.Session(g).run([total, mean, root, gathered, gx, ggx], {x: xv})
found["graph"] = [v.tolist() for v in values]

# -- eager: the same primitives on tensors ------------------------------------------------------
t = eager.tensor(xv, requires_grad=True)
(dist.allreduce(t * t, "sum").sum() + dist.allgather(t).sum()).backward()
found["eager_value"] = dist.allreduce(t.detach(), "sum").tolist()
found["eager_grad"] = t.grad.tolist()

# -- DistributedOptimizer on shards = one process on the whole batch ---------------------------
rng = np.random.default_rng(0)
data, labels = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)


def train(distributed: bool) -> list:
    with sg.Graph().as_default() as graph:
        inputs = sg.placeholder((None, 5), "float64")
        targets = sg.placeholder((None,), "int64")
        w = sg.Variable(np.random.default_rng(rank).standard_normal((5, 3)), name="w")
        loss = sg.cross_entropy(inputs @ w, targets)
        optimizer = sg.optim.SGD(0.5, momentum=0.9)
        step = (dist.DistributedOptimizer(optimizer) if distributed else optimizer).minimize(loss)
    sess = sg.Session(graph)
    if distributed:
        dist.broadcast_variables(sess, root=0)  # every rank starts from rank 0's weights
        feeds = {inputs: dist.shard(data), targets: dist.shard(labels)}
    else:
        sess.assign(w, dist.broadcast(np.asarray(sess.run(w)), 0))
        feeds = {inputs: data, targets: labels}
    for _ in range(5):
        sess.run(step, feeds)
    return sess.run(w).tolist()


found["sharded"] = train(True)
found["whole"] = train(False)
if rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(found, f)
