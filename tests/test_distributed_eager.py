"""eager.distributed: allreduce_gradients and DistributedDataParallel, in a world of one rank
(this process: every collective is the identity) and for real in a job of 2 ranks
(tests/distributed/eager_job.py, started as tests/test_distributed.py starts its jobs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_distributed import launch  # (skips this module too where mpi4py is missing)

import eager
import eager.distributed as edist
import eager.nn as nn


def mlp(seed: int = 0, hidden: int = 6) -> nn.Module:
    eager.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 3)).double()


def backward(model: nn.Module, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    x, y = eager.tensor(rng.standard_normal((4, 5))), eager.tensor(rng.integers(0, 3, 4))
    nn.functional.cross_entropy(model(x), y).backward()


def grads(model: nn.Module) -> list[np.ndarray]:
    return [p.grad.numpy().copy() for p in model.parameters()]


# -- buckets ---------------------------------------------------------------------------------
def test_buckets_take_parameters_in_reverse_one_dtype_each_closed_at_the_size() -> None:
    f64, f32 = eager.float64, eager.float32
    tensors = [eager.zeros(10, dtype=f64), eager.zeros(20, dtype=f64), eager.zeros(4, dtype=f32),
               eager.zeros(30, dtype=f64), eager.zeros(40, dtype=f64), eager.zeros(8, dtype=f32)]
    # float64 bytes from the end: 320 + 240 = 560 >= 400 closes [4, 3]; [1, 0] holds 240.
    # float32: [5, 2] (48 bytes). In filling order: by the earliest tensor, latest first.
    assert edist.assign_buckets(tensors, 400) == [[4, 3], [5, 2], [1, 0]]
    assert edist.assign_buckets(tensors, 1) == [[5], [4], [3], [2], [1], [0]]
    assert edist.assign_buckets(tensors, 2**30) == [[5, 2], [4, 3, 1, 0]]
    with pytest.raises(ValueError, match="bucket_bytes must be positive"):
        edist.assign_buckets(tensors, 0)


# -- allreduce_gradients ---------------------------------------------------------------------
def test_allreduce_gradients_in_a_world_of_one_keeps_the_gradients() -> None:
    model = mlp()
    backward(model)
    before, held = grads(model), model[0].weight.grad
    model[2].bias.grad = None  # no gradient: counts as zeros, and gets the result
    assert edist.allreduce_gradients(model, bucket_bytes=100) == 2  # 24 + 144 | 48 + 240 bytes
    after = grads(model)
    for i in (0, 1, 2):
        np.testing.assert_array_equal(after[i], before[i])
    np.testing.assert_array_equal(after[3], np.zeros(3))
    assert model[0].weight.grad is held  # the tensor the user holds, updated
    assert edist.allreduce_gradients(list(model.parameters()), op="sum") == 1
    np.testing.assert_array_equal(grads(model)[0], before[0])
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        edist.allreduce_gradients(model, op="max")


# -- DistributedDataParallel -----------------------------------------------------------------
def test_ddp_in_a_world_of_one_gives_backwards_gradients_one_allreduce_per_bucket() -> None:
    plain, wrapped = mlp(), mlp(seed=5)
    wrapped.load_state_dict(plain.state_dict())
    ddp = edist.DistributedDataParallel(wrapped, bucket_bytes=150)
    assert ddp.buckets == [["2.bias", "2.weight"], ["0.bias", "0.weight"]]
    for step in (1, 2):  # the second without zero_grad: gradients accumulate as without DDP
        backward(plain, seed=step)
        backward(ddp, seed=step)
        assert ddp.allreduces == step * len(ddp.buckets)
        for got, expected in zip(grads(wrapped), grads(plain)):
            np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    assert [k for k in ddp.state_dict()] == [f"module.{k}" for k in plain.state_dict()]


def test_ddp_starts_each_allreduce_as_its_bucket_fills_during_backward() -> None:
    ddp = edist.DistributedDataParallel(mlp(), bucket_bytes=1)  # one bucket per parameter
    started: dict[str, int] = {}  # all-reduces started when each gradient had arrived

    def note(name: str):
        def hook(g: eager.Tensor) -> None:
            started[name] = ddp.allreduces
        return hook
    for name, p in ddp.module.named_parameters():  # (these hooks run after DDP's)
        p.register_hook(note(name))
    backward(ddp)
    assert started == {"2.bias": 1, "2.weight": 2, "0.bias": 3, "0.weight": 4}


def test_ddp_without_its_forward_keeps_gradients_local() -> None:
    ddp = edist.DistributedDataParallel(mlp())
    backward(ddp.module)
    assert ddp.allreduces == 0
    backward(ddp)
    assert ddp.allreduces == 1


def test_ddp_names_the_parameters_that_got_no_gradient() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.unused = nn.Linear(5, 3).double(), nn.Linear(3, 3).double()

        def forward(self, x):
            return self.body(x)

    ddp = edist.DistributedDataParallel(TwoHeads(), bucket_bytes=1)
    backward(ddp)
    with pytest.raises(RuntimeError, match="no gradient: unused.bias, unused.weight"):
        backward(ddp)


def test_ddp_refuses_create_graph() -> None:
    ddp = edist.DistributedDataParallel(mlp())
    with pytest.raises(RuntimeError, match="create_graph=True"):
        ddp(eager.ones(2, 5, dtype=eager.float64)).sum().backward(create_graph=True)


# -- 2 ranks -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("eager_job") / "found.json"
    done = launch(2, "eager_job.py", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def flat(weights: list) -> np.ndarray:
    return np.concatenate([np.ravel(w) for w in weights])


@pytest.mark.parametrize("way", ["allreduce_gradients", "ddp", "graph"])
def test_two_shards_take_the_steps_of_one_process_on_the_whole_batch(job, way) -> None:
    """allreduce_gradients and DDP on 2 shards, and the graph's DistributedOptimizer from the
    same start, end where one process training on the whole batch ends."""
    assert np.abs(flat(job["whole"]) - flat(job["start"])).max() > 0.1  # training moved
    np.testing.assert_allclose(flat(job[way]), flat(job["whole"]), rtol=0, atol=1e-10)


def test_ddp_job_made_two_allreduces_per_step_and_every_rank_agrees(job) -> None:
    assert job["ddp_buckets"] == [["2.bias", "2.weight"], ["0.bias", "0.weight"]]
    assert job["ddp_allreduces"] == 2 * 4  # 2 buckets, 4 steps
    rank0, rank1 = np.array(job["ddp_every_rank"])
    np.testing.assert_array_equal(rank0, rank1)
