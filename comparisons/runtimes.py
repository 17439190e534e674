"""Both compiled runtimes side by side: the numpy runtime and the OpenCL runtime (PoCL on
this CPU, or any OpenCL GPU), on the OpenCL issue's targets, and where each one wins.

    python -m comparisons.runtimes [--quick] [--threads N] [--out DIR]

Every ratio is of medians taken in one run, the programs taking turns. torch.compile is timed
apart (its OpenMP threads spin after each call and would steal our cores).
"""

from __future__ import annotations

import numpy as np

import staticgraph as sg

from . import plots
from .common import Timing, interleaved, run_section, shown, table, target_row
from .models import elementwise_chain, gelu_tanh, layer_norm, mlp_loss, mlp_weights, torch_version

RUNTIMES = ("numpy", "opencl")


def why_no_opencl() -> str | None:
    """(Without starting a device: see row_kernels.)"""
    try:
        from staticgraph.runtime.opencl import HOW_TO_GET_ONE, OpenCLUnavailable, devices
        if not devices():
            return "pyopencl finds no OpenCL platform. " + HOW_TO_GET_ONE
    except OpenCLUnavailable as exc:
        return str(exc)
    return None


def _softmax(x):
    return x.softmax(-1)


def _functions(fn, x: np.ndarray) -> dict:
    functions = {}
    for backend in RUNTIMES:
        with sg.Graph().as_default():
            p = sg.placeholder(x.shape, x.dtype, name="x")
            functions[backend] = sg.compile(fn(p), [p], backend=backend)
        functions[backend](x)  # compiled and built before timing
    np.testing.assert_allclose(functions["opencl"](x), functions["numpy"](x), rtol=1e-4,
                               atol=1e-5)
    return functions


def row_kernels(torch, quick: bool, repeats: int) -> dict:
    """layer_norm and softmax over the last axis of 4096x1024 float32, tanh-GELU on 16M.
    torch.compile is timed first, before this process starts an OpenCL device (PoCL's
    worker threads would share the two cores with torch's)."""
    rng = np.random.default_rng(0)
    rows = 256 if quick else 4096
    cases = {"layer_norm": (layer_norm, (rows, 1024)), "softmax": (_softmax, (rows, 1024)),
             "gelu_tanh": (gelu_tanh, (1 << (20 if quick else 24),))}
    data = {name: rng.standard_normal(shape).astype(np.float32)
            for name, (_, shape) in cases.items()}
    times: dict[str, dict[str, Timing]] = {name: {} for name in cases}
    if torch is not None and not quick:
        for name, x in data.items():
            t = torch.from_numpy(x)
            fast = torch.compile(torch_version(torch, name))
            for _ in range(20):  # its first calls after compiling run 3x slower
                fast(t)
            times[name] |= interleaved({"torch.compile": lambda: fast(t)}, repeats,
                                       f"{name} {x.shape}")
    results = {}
    for name, (fn, shape) in cases.items():
        x = data[name]
        functions = _functions(fn, x)
        times[name] |= interleaved({b: (lambda f=f: f(x)) for b, f in functions.items()},
                                   repeats, f"{name} {x.shape}")
        m = {k: t.median for k, t in times[name].items()}
        entry = {f"{k}_ms": t.summary("ms") for k, t in times[name].items()}
        entry["opencl_vs_numpy"] = m["opencl"] / m["numpy"]
        if "torch.compile" in m:
            entry["opencl_vs_torch_compile"] = m["opencl"] / m["torch.compile"]
        entry["shape"] = list(shape)
        results[name] = entry
    return results


def training_step(repeats: int) -> dict:
    """One SGD step of the 784-1024-1024-10 MLP on a batch of 256, and where OpenCL's time
    goes (each step finished before the next: matmul, elementwise, reduction, movement,
    host steps, transfers)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 784)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    weights = mlp_weights((784, 1024, 1024, 10))
    graph = sg.Graph()
    with graph.as_default():
        xs = sg.placeholder((None, 784), name="x")
        ys = sg.placeholder((None,), "int64", name="labels")
        loss = mlp_loss(xs, ys, *[sg.Variable(w) for w in weights])
        update = sg.optim.SGD(0.01).minimize(loss)
    sessions = {b: sg.Session(graph, backend=b) for b in RUNTIMES}
    feed = {xs: x, ys: y}
    losses = {b: [float(s.run([loss, update], feed)[0]) for _ in range(3)]
              for b, s in sessions.items()}
    np.testing.assert_allclose(losses["opencl"], losses["numpy"], rtol=1e-5)
    times = interleaved({b: (lambda s=s: s.run([loss, update], feed))
                         for b, s in sessions.items()}, repeats, "MLP step on both runtimes")
    profiles = [sessions["opencl"].profile([loss, update], feed) for _ in range(repeats)]
    shares = {k: float(np.median([p.get(k, 0.0) for p in profiles])) for k in profiles[0]}
    total = sum(shares.values())
    compiled = sessions["opencl"].compiled([loss, update], feed)
    return {**{f"{k}_ms": t.summary("ms") for k, t in times.items()},
            "opencl_vs_numpy": times["opencl"].median / times["numpy"].median,
            "opencl_share": {k: v / total for k, v in shares.items()},
            "launches": compiled.executable.kernels_per_run,
            "on_host": compiled.executable.on_host}


def crossover(quick: bool, repeats: int) -> dict:
    """Seconds per run of the same program at growing sizes on both runtimes: small ones are
    launch-bound (a fixed cost per kernel), large ones bandwidth- or compute-bound."""
    sizes = [1 << k for k in range(8, 19 if quick else 23, 2)]
    series: dict[str, list[dict]] = {b: [] for b in RUNTIMES}
    for n in sizes:
        x = np.random.default_rng(0).standard_normal((n // 256, 256)).astype(np.float32)
        functions = _functions(lambda p: gelu_tanh(layer_norm(p)), x)
        times = interleaved({b: (lambda f=f: f(x)) for b, f in functions.items()}, repeats,
                            f"layer_norm+GELU {x.shape}")
        for b in RUNTIMES:
            series[b].append(times[b].summary("s"))
    wins = [n for n, a, b in zip(sizes, series["numpy"], series["opencl"])
            if b["median"] < a["median"]]
    return {"elements": sizes, **{f"{b}_s": v for b, v in series.items()},
            "opencl_wins_from": wins[0] if wins else None}


def chain_overhead(repeats: int) -> dict:
    """The 100-op chain on 2x2, forward and backward: all fixed cost."""
    with sg.Graph().as_default():
        x = sg.placeholder((2, 2), name="x")
        loss = elementwise_chain(x)
        (dx,) = sg.gradients(loss, [x])
    ones = np.ones((2, 2), np.float32)
    functions = {b: sg.compile([loss, dx], [x], backend=b) for b in RUNTIMES}
    for f in functions.values():
        f(ones)
    times = interleaved({b: (lambda f=f: f(ones)) for b, f in functions.items()},
                        repeats * 20, "100-op chain 2x2 on both runtimes")
    return {**{f"{b}_us": t.summary("us") for b, t in times.items()},
            **{f"{b}_kernels": f.compiled(ones).executable.kernels_per_run
               for b, f in functions.items()}}


def measure(ctx) -> dict:
    repeats = 3 if ctx.quick else 9
    print("  row kernels and GELU on both runtimes...", flush=True)
    results = {"rows": row_kernels(ctx.torch, ctx.quick, repeats)}
    print("  MLP training step on both runtimes...", flush=True)
    results["mlp"] = training_step(repeats)
    print("  the 100-op chain and sizes where OpenCL overtakes...", flush=True)
    results["chain"] = chain_overhead(repeats)
    results["crossover"] = crossover(ctx.quick, repeats)
    from staticgraph.runtime.opencl import get_device
    results["device"] = get_device().name
    return results


def report(r: dict) -> str:
    rows = []
    for name, e in r["rows"].items():
        shape = tuple(e["shape"])
        if "opencl_vs_torch_compile" in e:
            bound = "<= 1.0" if name == "gelu_tanh" else "<= 1.3"
            rows.append(target_row(f"{name} {shape}: OpenCL / torch.compile",
                                   e["opencl_vs_torch_compile"], bound))
        rows.append([f"{name} {shape}: OpenCL / numpy runtime", f"{e['opencl_vs_numpy']:.2f}",
                     "", ""])
    m, c = r["mlp"], r["chain"]
    rows.append(target_row("MLP step: OpenCL / numpy runtime", m["opencl_vs_numpy"], "<= 1.5"))
    rows.append(["100-op chain 2x2: OpenCL / numpy runtime",
                 f"{c['opencl_us']['median'] / c['numpy_us']['median']:.2f}",
                 f"({c['opencl_kernels']} vs {c['numpy_kernels']} kernels)", ""])
    wins = r["crossover"]["opencl_wins_from"]
    rows.append(["layer_norm+GELU: OpenCL faster from", f"{wins} elements" if wins else "never",
                 "", ""])
    measured = {f"{name} {tuple(e['shape'])}": e for name, e in r["rows"].items()}
    measured["MLP step (batch 256)"] = m
    measured["100-op chain 2x2"] = c
    times = [[name, *(next((shown(e[k + unit]) for unit in ("_ms", "_us") if k + unit in e),
                           "-") for k in ("numpy", "opencl", "torch.compile"))]
             for name, e in measured.items()]
    share = ", ".join(f"{k} {v:.0%}" for k, v in sorted(m["opencl_share"].items(),
                                                       key=lambda kv: -kv[1]))
    return (f"OpenCL device: {r['device']}\n" +
            table(rows, ["measure", "value", "target", "this run"]) + "\n\n" +
            table(times, ["time per run: median (min-max)", "numpy runtime", "OpenCL",
                          "torch.compile"]) +
            f"\nMLP step: {m['launches']} OpenCL launches; OpenCL's time: {share}")


def run(ctx) -> dict:
    """The section of ``python -m comparisons`` (skipped, saying how to get OpenCL, without
    a device)."""
    missing = why_no_opencl()
    if missing:
        text = f"(the OpenCL runtime is skipped: {missing})"
        return {"text": text, "markdown": text, "data": {"skipped": missing}}
    results = measure(ctx)
    text = report(results)
    x = results["crossover"]
    figure = plots.lines(ctx.out / "runtimes_crossover.png",
                         "layer_norm + tanh-GELU over (n/256, 256) float32, per run",
                         {f"{b} runtime": [t["median"] for t in x[f"{b}_s"]]
                          for b in RUNTIMES}, "elements",
                         "seconds", log=True, x=x["elements"])
    markdown = "```text\n" + text + "\n```\n"
    if figure:
        markdown += f"\n![runtimes crossover]({figure.name})\n"
    return {"text": text, "markdown": markdown, "data": results}


def main(argv: list[str] | None = None) -> dict:
    return run_section(__doc__.splitlines()[0], "runtimes", run, argv)


if __name__ == "__main__":
    main()
