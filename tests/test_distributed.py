"""sg.distributed for real: jobs of 2 and 4 ranks started with ``python -m
staticgraph.distributed`` (mpiexec), each rank running tests/distributed/*_job.py. Skipped,
saying how to install, where mpi4py or mpiexec is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import staticgraph as sg
import staticgraph.distributed as dist

mpi4py = pytest.importorskip("mpi4py", reason="pip install -e '.[distributed]' for MPI tests")
JOBS = Path(__file__).parent / "distributed"


def launch(ranks: int, job: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "staticgraph.distributed", "-n", str(ranks),
               str(JOBS / job), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=[2, 4], ids=lambda n: f"{n}ranks")
def collectives(request, tmp_path_factory) -> tuple[int, dict]:
    out = tmp_path_factory.mktemp("job") / "found.json"
    done = launch(request.param, "collectives_job.py", str(out))
    assert done.returncode == 0, done.stderr
    return request.param, json.loads(out.read_text())


def test_collectives_give_every_rank_the_combined_values(collectives) -> None:
    n, found = collectives
    xs = [np.array([1.0, 2.0]) * (r + 1) for r in range(n)]  # rank r's input
    total, mean, root, gathered, _, _ = found["graph"]
    np.testing.assert_allclose(total, sum(x * x for x in xs))
    np.testing.assert_allclose(mean, sum(xs) / n)
    np.testing.assert_allclose(root, xs[-1])
    np.testing.assert_allclose(gathered, np.concatenate([x * (r + 1) for r, x in enumerate(xs)]))
    np.testing.assert_allclose(found["eager_value"], sum(xs))


def test_gradients_of_collectives_sum_over_ranks(collectives) -> None:
    """Rank 0's gradient of the job's total loss (every rank's loss summed): the all-reduced
    terms count once per rank; the broadcast's root is the last rank, not rank 0."""
    n, found = collectives
    x0 = np.array([1.0, 2.0])
    _, _, _, _, gx, ggx = found["graph"]
    np.testing.assert_allclose(gx, n * 2 * x0 + 3 + n)   # total, mean, (root: 0), allgather
    np.testing.assert_allclose(ggx, [2.0 * n, 2.0 * n])
    np.testing.assert_allclose(found["eager_grad"], n * 2 * x0 + n)


def test_distributed_optimizer_on_shards_takes_the_whole_batchs_steps(collectives) -> None:
    _, found = collectives
    np.testing.assert_allclose(found["sharded"], found["whole"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("job, says", [
    ("failing_job.py", ["rank 1 of 2 failed", "ran out of data"]),          # an exception
    ("killed_job.py", ["rank 1 (process", "died without raising"]),        # SIGKILL
])
def test_a_failing_rank_ends_the_job_on_every_rank_naming_it(job, says) -> None:
    start = time.monotonic()
    done = launch(2, job, timeout=60)
    assert done.returncode != 0
    assert all(text in done.stderr for text in says), done.stderr
    assert "unreachable" not in done.stdout
    assert time.monotonic() - start < 30


def test_one_process_is_a_world_of_one() -> None:
    """Without mpiexec every collective is the identity, in graphs and on arrays."""
    assert dist.init() == (0, 1)
    with sg.Graph().as_default() as g:
        x = sg.placeholder((3,), "float64")
        y = dist.allreduce(x, "mean") + dist.broadcast(x) + dist.allgather(x)
        (gx,) = sg.gradients(y.sum(), [x])
    values = sg.Session(g).run([y, gx], {x: [1.0, 2.0, 3.0]})
    np.testing.assert_allclose(values[0], [3.0, 6.0, 9.0])
    np.testing.assert_allclose(values[1], [3.0, 3.0, 3.0])
    np.testing.assert_allclose(dist.allreduce(np.arange(3.0), "sum"), np.arange(3.0))
    assert dist.shard(np.arange(10), 1, 3).tolist() == [4, 5, 6]
    assert [len(dist.shard(np.arange(10), r, 4)) for r in range(4)] == [3, 3, 2, 2]


def test_collectives_refuse_bools_and_integer_means() -> None:
    with sg.Graph().as_default():
        with pytest.raises(sg.DTypeError, match="not bool"):
            dist.allreduce(sg.placeholder((2,), "bool"), "sum")
        with pytest.raises(sg.DTypeError, match="op='sum'"):
            dist.allreduce(sg.placeholder((2,), "int64"), "mean")
        with pytest.raises(ValueError, match="'sum' or 'mean'"):
            dist.allreduce(sg.placeholder((2,)), "max")
