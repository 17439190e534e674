"""Run on N ranks by tests/test_distributed_eager.py: an eager MLP trained on shards of one
global batch, with allreduce_gradients and with DistributedDataParallel, and the same MLP as
a graph with DistributedOptimizer; and one process on the whole batch, the oracle. Rank 0
writes the final weights of each as JSON to argv[1]."""

import json
import sys

import numpy as np

import eager
import eager.distributed as edist
import eager.nn as nn
import staticgraph as sg
import staticgraph.distributed as dist

rank, size = dist.init(timeout=60)
rng = np.random.default_rng(0)
data, labels = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
STEPS, LR, MOMENTUM = 4, 0.5, 0.9


def mlp(seed: int) -> nn.Module:
    eager.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def weights(model: nn.Module) -> list:
    return [p.detach().numpy().tolist() for p in model.parameters()]


def train_eager(model: nn.Module, x: np.ndarray, y: np.ndarray, sync=lambda: None) -> list:
    optimizer = eager.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for _ in range(STEPS):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(eager.tensor(x)), eager.tensor(y)).backward()
        sync()
        optimizer.step()
    return weights(model)


def train_graph(start: list, x: np.ndarray, y: np.ndarray) -> list:
    """The same MLP and SGD as a graph, gradients averaged by DistributedOptimizer."""
    with sg.Graph().as_default() as graph:
        inputs = sg.placeholder((None, 5), "float64")
        targets = sg.placeholder((None,), "int64")
        w0, b0, w1, b1 = [sg.Variable(np.array(v)) for v in start]
        logits = (inputs @ w0.T + b0).tanh() @ w1.T + b1
        optimizer = dist.DistributedOptimizer(sg.optim.SGD(LR, momentum=MOMENTUM))
        step = optimizer.minimize(sg.cross_entropy(logits, targets))
    session = sg.Session(graph)
    for _ in range(STEPS):
        session.run(step, {inputs: x, targets: y})
    return [session.run(v).tolist() for v in (w0, b0, w1, b1)]


x, y = dist.shard(data), dist.shard(labels)
start = weights(mlp(0))
found = {"start": start, "whole": train_eager(mlp(0), data, labels)}

model = mlp(0)  # the same start on every rank: allreduce_gradients broadcasts nothing
found["allreduce_gradients"] = train_eager(model, x, y, lambda: edist.allreduce_gradients(model))

# Each rank starts from its own weights: DDP sets them all to rank 0's (seed 0). 150 bytes
# make two buckets: the last layer's parameters (24 + 144 bytes), then the first's.
ddp = edist.DistributedDataParallel(mlp(rank), bucket_bytes=150)
found["ddp"] = train_eager(ddp, x, y)
found["ddp_buckets"], found["ddp_allreduces"] = ddp.buckets, ddp.allreduces
flat = np.concatenate([np.ravel(w) for w in found["ddp"]])
found["ddp_every_rank"] = dist.allgather(flat[None]).tolist()

found["graph"] = train_graph(start, x, y)
if rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(found, f)
