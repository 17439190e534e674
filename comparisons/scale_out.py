"""Scale-out: the digits MLP trained data-parallel with 1, 2 and 4 ranks at the same global
batch, each job started as ``python -m staticgraph.distributed -n N comparisons/scale_out.py
job ...`` (rank 0 writes what the job measured as JSON); and what all-reducing gradients costs
on paper (the ring model), with this machine's latency and bandwidth.

    python -m comparisons.scale_out [--quick] [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import threadpoolctl

import staticgraph as sg
import staticgraph.distributed as dist
from staticgraph.graph import Node
from staticgraph.passes import DEFAULT_PASSES, PASSES
from staticgraph.ops.collective import INSTALL, allreduce_into, mpi

# Absolute imports: every rank runs this file as a script (runpy), not as a package module.
from comparisons import plots
from comparisons.common import SPREAD_WARNINGS, interleaved, run_section, shown, table, \
    target_row, thread_counts
from comparisons.models import mlp_weights
from comparisons.training import BATCH, LR, MOMENTUM, SIZES, batches, load_digits

ROOT = Path(__file__).resolve().parent.parent
RANKS = (1, 2, 4)
BIG_SIZES, BIG_BATCH = (784, 1024, 1024, 10), 256  # the target's MLP and global batch
COST_RANKS = (8, 64, 512)


# -- the programs, the same on every rank ------------------------------------------------------

def mlp_step(sizes: tuple[int, ...], dtype: str, distributed: bool = True):
    """An MLP (ReLU between layers) trained with SGD + momentum on cross-entropy; its
    gradients averaged across ranks with ``distributed``. Returns (graph, x, y, loss, step)."""
    with sg.Graph().as_default() as g:
        x = sg.placeholder((None, sizes[0]), dtype, name="images")
        y = sg.placeholder((None,), "int64", name="labels")
        params = [sg.Variable(w.astype(dtype), name=f"w{k}")
                  for k, w in enumerate(mlp_weights(sizes))]
        h = x
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            h = h.relu() if k + 2 < len(params) else h
        loss = sg.cross_entropy(h, y)
        optimizer = sg.optim.SGD(LR, momentum=MOMENTUM)
        step = (dist.DistributedOptimizer(optimizer) if distributed else optimizer).minimize(loss)
    return g, x, y, loss, step


def collectives_of(graph) -> list[Node]:
    """The collectives a compiled program runs (each run: once each)."""
    return [n for n in graph.nodes if n.prim is not None and n.prim.collective]


def bucketing_pass() -> str | None:
    """The compiler pass that buckets gradients, if this staticgraph has one."""
    return next((name for name in PASSES if "bucket" in name), None)


def pipelines() -> dict[str, tuple[str, ...]]:
    """The default passes without bucketing, and with it where staticgraph has the pass."""
    bucket = bucketing_pass()
    without = tuple(p for p in DEFAULT_PASSES if p != bucket)
    if bucket is None:
        return {"without": without}
    at = without.index("plan_memory")
    return {"without": without, "with": DEFAULT_PASSES if bucket in DEFAULT_PASSES else
            (*without[:at], bucket, *without[at:])}


def allreduce_bytes(sizes: tuple[int, ...], dtype: str, passes: tuple[str, ...]) -> list[int]:
    """The bytes of each collective in one compiled training step of the MLP (no MPI
    needed: compiling is local)."""
    g, x, y, loss, step = mlp_step(sizes, dtype)
    feeds = {x: np.zeros((BATCH, sizes[0]), dtype), y: np.zeros(BATCH, np.int64)}
    compiled = sg.Session(g, passes=passes).compiled([loss, step], feeds)
    return [int(np.prod(n.shape)) * n.dtype.itemsize for n in collectives_of(compiled.graph)]


def allreduces_per_step() -> dict:
    """Collectives in one digits step, without and with the bucketing pass."""
    return {"parameters": len(mlp_weights(SIZES)), "bucketing_pass": bucketing_pass(),
            "passes": sorted(PASSES)} | {name: len(allreduce_bytes(SIZES, "float64", passes))
                                          for name, passes in pipelines().items()}


# -- what each rank runs -----------------------------------------------------------------------

def _digits(steps: int, repeats: int) -> dict:
    """Train ``steps`` steps on shards of each global batch; then time, taking turns, the
    step, the step with one all-reduce per gradient (no bucketing), the step without its
    collectives, and the step's collectives alone."""
    x_train, y_train, *_ = load_digits()
    g, x, y, loss, step = mlp_step(SIZES, "float64")
    session = sg.Session(g)
    dist.broadcast_variables(session)  # (the same initial weights everywhere already)
    losses = []
    for idx in itertools.islice(batches(len(y_train), epochs=1 + steps // 20), steps):
        mine = float(session.run([loss, step], {x: dist.shard(x_train[idx]),
                                                y: dist.shard(y_train[idx])})[0])
        losses.append(float(dist.allreduce(np.array(mine), "mean")))  # the global batch's
    idx = dist.shard(next(batches(len(y_train), 1)))
    feeds = {x: x_train[idx], y: y_train[idx]}
    local, lx, ly, local_loss, local_step = mlp_step(SIZES, "float64", distributed=False)
    local_session = sg.Session(local)
    with sg.Graph().as_default() as alone:  # the step's all-reduces, of the same sizes
        reduced = [dist.allreduce(sg.Variable(np.zeros(n.shape, n.dtype)), "mean")
                   for n in collectives_of(session.compiled([loss, step], feeds).graph)]
    alone_session = sg.Session(alone)
    programs = {"step": lambda: session.run([loss, step], feeds)}
    if bucketing_pass() is not None:
        unbucketed = sg.Session(g, passes=pipelines()["without"])
        programs["step, unbucketed"] = lambda: unbucketed.run([loss, step], feeds)
    programs |= {"step without collectives": lambda: local_session.run(
                     [local_loss, local_step], {lx: feeds[x], ly: feeds[y]}),
                 "collectives only": lambda: alone_session.run(reduced)}
    timings = interleaved(programs, repeats, f"digits MLP on {dist.size()} ranks")
    return {"losses": losses, "ms": {k: t.summary("ms") for k, t in timings.items()},
            "rows_per_rank": len(idx)}


def _big_mlp(steps: int, threads: list[int]) -> dict:
    """The target's step: the B=256 784-1024-1024-10 MLP, float32, random data, its global
    batch split across the ranks; with each count of threads (BLAS and fused kernels, whose
    count is read when a plan is compiled), taking turns. On several ranks, the same step
    without its all-reduce too (``"local"``, with the first count)."""
    rng = np.random.default_rng(0)
    images = dist.shard(rng.standard_normal((BIG_BATCH, BIG_SIZES[0]), np.float32))
    labels = dist.shard(rng.integers(0, BIG_SIZES[-1], BIG_BATCH))
    pools = threadpoolctl.ThreadpoolController()
    programs, counts = {}, {}
    ways = [(n, True) for n in threads] + [(threads[0], False)] * (dist.size() > 1)
    for n, distributed in ways:
        g, x, y, loss, step = mlp_step(BIG_SIZES, "float32", distributed)
        with pools.limit(limits=n):
            sg.set_num_threads(n)
            session = sg.Session(g)
            session.compiled([loss, step], {x: images, y: labels})
            counts[n] = thread_counts(None)

        programs[n if distributed else "local"] = _in_pool(
            pools, n, functools.partial(session.run, [loss, step], {x: images, y: labels}))
    timings = interleaved(programs, steps, f"B={BIG_BATCH} MLP on {dist.size()} ranks, threads")
    return {"ms": {n: t.summary("ms") for n, t in timings.items()}, "threads": counts}


def _in_pool(pools: threadpoolctl.ThreadpoolController, threads: int, run) -> Callable:
    """``run`` with the BLAS and OpenMP pools limited to ``threads``."""
    def limited() -> None:
        with pools.limit(limits=threads):
            run()
    return limited


def _sweep() -> list[dict]:
    """Seconds of one all-reduce by message size (float64 sums), as a compiled step runs it:
    the kernel (Iallreduce, then wait) into a buffer allocated once. The median of 5 rounds,
    each the mean of many calls after a barrier."""
    world = mpi().COMM_WORLD
    found = []
    for nbytes, calls in ((8, 400), (8 << 10, 200), (128 << 10, 50), (1 << 20, 20),
                          (8 << 20, 5)):
        data, out = np.ones(nbytes // 8), np.empty(nbytes // 8)
        rounds = []
        for _ in range(5):
            world.Barrier()
            start = time.perf_counter()
            for _ in range(calls):
                allreduce_into(data, out, "sum")
            rounds.append((time.perf_counter() - start) / calls)
        found.append({"bytes": nbytes, "seconds": float(np.median(rounds))})
    return found


def job(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="comparisons/scale_out.py job")
    parser.add_argument("out", type=Path, help="where rank 0 writes the JSON")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--big-steps", type=int, default=0)
    parser.add_argument("--big-threads", type=int, nargs="+", default=[1])
    parser.add_argument("--sweep", action="store_true")
    options = parser.parse_args(argv)
    found: dict = {"ranks": dist.size()}
    with threadpoolctl.threadpool_limits(1):  # one thread a rank: ranks fill the cores
        sg.set_num_threads(1)
        found["threads"] = thread_counts(None)
        found["digits"] = _digits(options.steps, options.repeats)
        if options.sweep:
            found["allreduce"] = _sweep()
    if options.big_steps:
        found["big_mlp"] = _big_mlp(options.big_steps, options.big_threads)
    found["spread_warnings"] = list(SPREAD_WARNINGS)
    if dist.rank() == 0:
        options.out.write_text(json.dumps(found))


# -- the main job's side -----------------------------------------------------------------------

def missing() -> str | None:
    """Why the jobs cannot run here (and how to fix it), or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return f"mpi4py is not installed. {INSTALL}"
    from staticgraph.distributed.__main__ import find_mpiexec
    try:
        find_mpiexec()
    except SystemExit as error:
        return str(error)
    return None


def launch(ranks: int, *args: str) -> dict:
    """Run this file's ``job`` on ``ranks`` ranks through the launcher; rank 0's JSON."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "found.json"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "staticgraph.distributed", "-n", str(ranks),
                               __file__, "job", str(out), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"the {ranks}-rank job failed (exit {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        print(f"  {ranks} rank{'s' * (ranks > 1)}: done in {time.perf_counter() - started:.1f} s"
              " (start-up included)", flush=True)
        found = json.loads(out.read_text())
    SPREAD_WARNINGS.extend(found["spread_warnings"])
    for warning in found["spread_warnings"]:
        print(warning, file=sys.stderr, flush=True)
    return found


def ring_seconds(nbytes: float, ranks: int, alpha: float, bandwidth: float) -> float:
    """A ring all-reduce of ``nbytes`` on ``ranks`` ranks: a reduce-scatter then an
    all-gather, each p-1 steps moving n/p bytes and paying one latency alpha."""
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * alpha


def latency_and_bandwidth(sweep: list[dict]) -> tuple[float, float]:
    """alpha and B of the ring model from 2 ranks (T = n/B + 2 alpha): alpha from the
    smallest message, B from the largest."""
    small, large = sweep[0], sweep[-1]
    alpha = small["seconds"] / 2
    return alpha, large["bytes"] / (large["seconds"] - 2 * alpha)


def bucketing_on_paper(alpha: float, bandwidth: float) -> list[dict]:
    """Ring all-reduce time per step for each model's float32 gradients: one all-reduce per
    gradient, against the buckets the bucketing pass makes (DistributedOptimizer's default
    bucket size)."""
    ways = pipelines()
    rows = []
    for name, sizes in (("digits MLP", SIZES), ("784-1024-1024-10 MLP", BIG_SIZES)):
        grads = allreduce_bytes(sizes, "float32", ways["without"])
        buckets = allreduce_bytes(sizes, "float32", ways.get("with", ways["without"]))
        for p in COST_RANKS:
            rows.append({"model": name, "gradients": len(grads), "buckets": len(buckets),
                         "bytes": sum(grads), "ranks": p,
                         "per_gradient_ms": 1e3 * sum(ring_seconds(n, p, alpha, bandwidth)
                                                      for n in grads),
                         "bucketed_ms": 1e3 * sum(ring_seconds(n, p, alpha, bandwidth)
                                                  for n in buckets)})
    return rows


def run(ctx) -> dict:
    counts = allreduces_per_step()
    bucket = ("absent: no bucketing pass in staticgraph.passes.PASSES (" +
              ", ".join(counts["passes"]) + ")" if counts["bucketing_pass"] is None else
              f"{counts['with']} (pass {counts['bucketing_pass']!r})")
    count_line = (f"all-reduces per digits step: {counts['without']} without bucketing "
                  f"(one per parameter: {counts['parameters']}); with bucketing: {bucket}")
    reason = missing()
    if reason is not None:
        text = f"skipped: {reason}\n{count_line}"
        return {"text": text, "markdown": f"> {text}".replace("\n", "\n>\n> "),
                "data": {"skipped": reason, "allreduces_per_step": counts}}
    steps, repeats = (12, 30) if ctx.quick else (40, 90)
    big = ["--big-steps", "6" if ctx.quick else "15"]
    extra = {1: [*big, "--big-threads", "2", "1"], 2: [*big, "--sweep"]}
    jobs = {n: launch(n, "--steps", str(steps), "--repeats", str(repeats), *extra.get(n, []))
            for n in RANKS}
    return _report(ctx, jobs, counts, count_line, steps)


def _report(ctx, jobs: dict[int, dict], counts: dict, count_line: str, steps: int) -> dict:
    curves = {n: np.array(job["digits"]["losses"]) for n, job in jobs.items()}
    gaps = {n: float(np.max(np.abs(curve - curves[1]))) for n, curve in curves.items()}
    ms = {n: job["digits"]["ms"] for n, job in jobs.items()}
    shares = {n: {"alone": t["collectives only"]["median"] / t["step"]["median"],
                  "exposed": 1 - t["step without collectives"]["median"] / t["step"]["median"]}
              for n, t in ms.items()}
    big = {"1 rank x 2 threads": jobs[1]["big_mlp"]["ms"]["2"],
           "1 rank x 1 thread": jobs[1]["big_mlp"]["ms"]["1"],
           "2 ranks x 1 thread": jobs[2]["big_mlp"]["ms"]["1"],
           "2 ranks x 1 thread, no all-reduce": jobs[2]["big_mlp"]["ms"]["local"]}
    ratio = big["2 ranks x 1 thread"]["median"] / big["1 rank x 2 threads"]["median"]
    alpha, bandwidth = latency_and_bandwidth(jobs[2]["allreduce"])
    paper = bucketing_on_paper(alpha, bandwidth)
    unbucketed = "step, unbucketed" in ms[1]
    text = [f"digits MLP {'-'.join(map(str, SIZES))}, float64, global batch {BATCH} split "
            f"across the ranks, SGD lr {LR} momentum {MOMENTUM}, {steps} steps; one thread a "
            "rank (4 ranks share this machine's 2 cores)",
            table([[str(n), str(jobs[n]["digits"]["rows_per_rank"]), f"{curves[n][-1]:.6f}",
                    f"{gaps[n]:.2g}", shown(t["step"]),
                    shown(t["step, unbucketed"]) if unbucketed else "-",
                    shown(t["step without collectives"])] for n, t in ms.items()],
                  ["ranks", "rows/rank", "final loss", "max |loss - 1 rank|", "time/step",
                   "one all-reduce a gradient", "no all-reduces"]),
            count_line, "",
            "communication: the step's all-reduces timed alone (the same sizes), and what they "
            "add to the step (the step less the same step without them: waits for the other "
            "ranks included, overlap with the backward pass excluded)",
            table([[str(n), shown(t["collectives only"]), f"{100 * shares[n]['alone']:.0f}%",
                    f"{100 * shares[n]['exposed']:.0f}%"] for n, t in ms.items()],
                  ["ranks", "all-reduces alone", "alone / step", "added / step"]), "",
            f"B={BIG_BATCH} {'-'.join(map(str, BIG_SIZES))} MLP step, float32, random data: "
            + ", ".join(f"{way} {shown(t)}" for way, t in big.items()),
            table([target_row("2 ranks x 1 thread / 1 rank x 2 threads", ratio, "<= 1.0")],
                  ["measure", "value", "target", ""]), "",
            "all-reduce between 2 ranks here: " + ", ".join(
                f"{_size(s['bytes'])} {1e6 * s['seconds']:.1f} us" for s in jobs[2]["allreduce"])
            + f"; ring model T = 2(p-1)/p n/B + 2(p-1) alpha: alpha {1e6 * alpha:.2f} us, "
            f"B {bandwidth / 1e9:.2f} GB/s",
            table([[r["model"], str(r["ranks"]), f"{r['gradients']} / {r['buckets']}",
                    f"{r['per_gradient_ms']:.3f} / {r['bucketed_ms']:.3f} ms",
                    f"{r['per_gradient_ms'] / r['bucketed_ms']:.2f}x"] for r in paper],
                  ["on paper (float32 gradients)", "ranks", "all-reduces", "ring time per step",
                   "bucketing buys"])]
    named = {n: f"{n} rank{'s' * (n > 1)}" for n in jobs}
    figures = [plots.lines(ctx.out / "scale_out_loss.png", "digits MLP loss, float64, same "
                           "global batch", {named[n]: c.tolist() for n, c in curves.items()},
                           "step", "cross-entropy", log=True),
               plots.stacked_bars(ctx.out / "scale_out_step.png", "digits MLP: time per step",
                                  {named[n]: _split(t) for n, t in ms.items()}, "ms")]
    markdown = ["```text", *text, "```", ""] + [f"![{f.stem}]({f.name})" for f in figures if f]
    data = {"loss_gap_vs_1_rank": gaps, "losses": {n: c.tolist() for n, c in curves.items()},
            "step_ms": ms, "communication_share": shares, "allreduces_per_step": counts,
            "target": {"ms": big, "ratio": ratio,
                       "threads": {n: jobs[n]["big_mlp"]["threads"] for n in (1, 2)}},
            "allreduce_seconds": jobs[2]["allreduce"], "alpha_s": alpha,
            "bandwidth_bytes_per_s": bandwidth, "bucketing_on_paper": paper}
    return {"text": "\n".join(text), "markdown": "\n".join(markdown), "data": data}


def _split(ms: dict) -> dict[str, float]:
    """A step as bars: its collectives (timed alone) and the rest."""
    alone = ms["collectives only"]["median"]
    return {"rest of the step": max(0.0, ms["step"]["median"] - alone),
            "all-reduces (timed alone)": alone}


def _size(nbytes: int) -> str:
    return next(f"{nbytes // 2 ** s} {u}" for s, u in ((20, "MB"), (10, "KB"), (0, "B"))
                if nbytes >= 2 ** s)


def main(argv: list[str] | None = None) -> dict:
    return run_section(__doc__.splitlines()[0], "scale_out", run, argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["job"]:
        job(sys.argv[2:])
    else:
        main()
