"""What compiling buys: the compiler issue's five targets, each measured side by side in one
run (medians of interleaved repeats), printed as ratios and written to JSON.

    python -m comparisons.compiler [--quick] [--threads N] [--out DIR]
"""

from __future__ import annotations

import tracemalloc

import numpy as np

import eager
import staticgraph as sg

from . import convolutions, plots, runtimes
from .common import (arguments, how_timed, interleaved, measuring, seconds_of, shown, table,
                     target_row, write_json)
from .models import (elementwise_chain, gelu_tanh, layer_norm, mlp_loss, mlp_weights,
                     numpy_sgd_step, torch_version)


def fused_elementwise(torch, quick: bool, repeats: int) -> dict:
    """1. tanh-GELU on 16M float32 and layer_norm on 4096x1024: compiled vs eager (and torch,
    torch.compile)."""
    rng = np.random.default_rng(0)
    cases = {"gelu_tanh": (gelu_tanh, rng.standard_normal(1 << (22 if quick else 24))),
             "layer_norm": (layer_norm, rng.standard_normal((1024 if quick else 4096, 1024)))}
    results = {}
    for name, (fn, data) in cases.items():
        x = data.astype(np.float32)
        compiled, tensor = sg.trace(fn, x), eager.tensor(x)
        what = f"{name} {x.shape}"
        times = interleaved({"compiled": lambda: compiled(x), "eager": lambda: fn(tensor)},
                            repeats, what)
        if torch is not None:
            # Timed apart from ours: torch's OpenMP threads spin after each call and would
            # steal the cores our kernels' threads run on.
            t = torch.from_numpy(x)
            torch_fn = torch_version(torch, name)
            programs = {"torch": lambda: torch_fn(t)}
            if not quick:
                fast = torch.compile(torch_fn)
                programs["torch.compile"] = lambda: fast(t)
            times |= interleaved(programs, repeats, what)
        entry = {f"{k}_ms": t.summary("ms") for k, t in times.items()}
        entry["speedup_vs_eager"] = times["eager"].median / times["compiled"].median
        if "torch.compile" in times:
            entry["vs_torch_compile"] = times["compiled"].median / times["torch.compile"].median
        entry["shape"] = list(x.shape)
        results[name] = entry
    return results


def per_op_overhead(torch, repeats: int) -> dict:
    """2. The 100-op chain on a 2x2 tensor, forward + backward: compiled vs torch eager."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((2, 2), name="x")
        loss = elementwise_chain(x)
        (dx,) = sg.gradients(loss, [x])
    compiled = sg.compile([loss, dx], [x])
    ones = np.ones((2, 2), np.float32)

    def eager_step(lib):
        t = lib.ones(2, 2, requires_grad=True)
        elementwise_chain(t).backward()
    programs = {"compiled": lambda: compiled(ones), "eager": lambda: eager_step(eager)}
    if torch is not None:
        programs["torch"] = lambda: eager_step(torch)
    times = interleaved(programs, repeats * 20, "100-op chain 2x2 fwd+bwd")
    entry = {f"{k}_us": t.summary("us") for k, t in times.items()}
    if "torch" in times:
        entry["compiled_vs_torch"] = times["compiled"].median / times["torch"].median
    entry["kernels_per_run"] = compiled.compiled(ones).executable.kernels_per_run
    return entry


def mlp_step(quick: bool, repeats: int) -> dict:
    """3 and 4. One SGD step of a 784-1024-1024-10 MLP on a batch of 256: compiled and eager
    against numpy by hand; planned vs naive memory, and the measured peak."""
    batch = 256
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    weights = mlp_weights((784, 1024, 1024, 10))
    graph = sg.Graph()
    with graph.as_default():
        xs = sg.placeholder((None, 784), name="x")
        ys = sg.placeholder((None,), "int64", name="labels")
        variables = [sg.Variable(w) for w in weights]
        loss = mlp_loss(xs, ys, *variables)
        update = sg.optim.SGD(0.01).minimize(loss)
    session = sg.Session(graph)
    feed = {xs: x, ys: y}
    params = [w.copy() for w in weights]
    tensors = [eager.tensor(w, requires_grad=True) for w in weights]
    optimizer = eager.optim.SGD(tensors, lr=0.01)
    xe, ye = eager.tensor(x), eager.tensor(y)

    def eager_step():
        optimizer.zero_grad()
        mlp_loss(xe, ye, *tensors).backward()
        optimizer.step()
    times = interleaved({
        "numpy": lambda: numpy_sgd_step(x, y, params, 0.01),
        "compiled": lambda: session.run([loss, update], feed),
        "eager": eager_step}, repeats, "MLP step (batch 256)")
    compiled = next(iter(session._plans.values()))
    fresh = sg.Session(graph)
    tracemalloc.start()
    fresh.run([loss, update], feed)  # the first run: buffers are allocated in it too
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        **{f"{k}_ms": t.summary("ms") for k, t in times.items()},
        "compiled_vs_numpy": times["compiled"].median / times["numpy"].median,
        "eager_vs_numpy": times["eager"].median / times["numpy"].median,
        "kernels_per_run": compiled.executable.kernels_per_run,
        "planned_peak_mb": compiled.planned_peak_bytes / 1e6,
        "no_reuse_mb": compiled.no_reuse_bytes / 1e6,
        "planned_vs_no_reuse": compiled.planned_peak_bytes / compiled.no_reuse_bytes,
        "measured_peak_mb": peak / 1e6,
        "measured_vs_planned": peak / compiled.planned_peak_bytes,
        "explain": compiled.explain(),
    }


def random_graph(n: int, seed: int = 0) -> tuple[sg.Graph, sg.Node, sg.Node]:
    """A graph of ``n`` nodes mixing elementwise ops, matmuls and reuse of earlier values."""
    rng = np.random.default_rng(seed)
    graph = sg.Graph()
    with graph.as_default():
        x = sg.placeholder((64, 32), name="x")
        w = sg.Variable(np.eye(32, dtype=np.float32) * 0.5, name="w")
        values = [x]
        while len(graph) < n:
            a, b = (values[rng.integers(max(0, len(values) - 20), len(values))] for _ in "ab")
            kind = rng.integers(0, 5)
            values.append((a + b) if kind == 0 else (a * 0.5).tanh() if kind == 1 else
                          a - b * 2 if kind == 2 else a @ w if kind == 3 else a.relu())
        out = values[-1].sum()
    return graph, x, out


def compile_time(quick: bool, full: bool = False) -> dict:
    """5. Time to compile (specialise, optimise, plan, render) graphs of growing size, once
    each: compiling is a cost paid once."""
    sizes = (1000, 10000, 100000) if full or not quick else (1000, 10000)
    results = {}
    for n in sizes:
        graph, x, out = random_graph(n)
        results[str(n)] = seconds_of(
            lambda: sg.Session(graph).explain(out, {x: np.ones((64, 32), np.float32)}))
        print(f"  compiled a {n}-node graph in {results[str(n)]:.2f} s", flush=True)
    return results


def targets(ctx) -> dict:
    """The five targets, measured side by side."""
    repeats = 3 if ctx.quick else 9
    print("  fused elementwise kernels...", flush=True)
    results = {"fused": fused_elementwise(ctx.torch, ctx.quick, repeats)}
    print("  per-op overhead...", flush=True)
    results["overhead"] = per_op_overhead(ctx.torch, repeats)
    print("  MLP training step...", flush=True)
    results["mlp"] = mlp_step(ctx.quick, repeats)
    print("  convolutions: LeNet step, conv2d forward and backward...", flush=True)
    results["lenet"] = convolutions.lenet_step(ctx.torch, repeats)
    results["conv2d"] = convolutions.conv_forward_backward(ctx.torch, repeats)
    print("  compile time...", flush=True)
    results["compile_s"] = compile_time(ctx.quick, ctx.full)
    return results


def block(x):
    """A transformer-style block for the drawings: layer_norm, then tanh-GELU."""
    return gelu_tanh(layer_norm(x) * 2 + 1)


def what_it_did(ctx, training_step) -> tuple[list[str], list[str]]:
    """Nodes after each pass, fused kernels and memory, for the digits training step and a
    GELU/layer_norm block; drawings of the block before and after fusion."""
    x = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)
    compiled_block = sg.trace(block, x).trace(x).compiled(x)
    text, markdown = [], []
    for title, compiled in (("digits training step", training_step),
                            ("layer_norm + tanh-GELU block, 256x64", compiled_block)):
        if compiled is None:
            continue
        text += [f"-- {title}", compiled.explain(), ""]
        markdown += [f"### {title}", "", "```text", compiled.explain(), "```", ""]
    figures = [plots.graph(ctx.out / "block_before_fusion.png", compiled_block.specialized.to_dot(),
                           "layer_norm + GELU as built"),
               plots.graph(ctx.out / "block_after_fusion.png", compiled_block.graph.to_dot(),
                           "after the passes: fused kernels as clusters")]
    markdown += [f"![{f.stem}]({f.name})" for f in figures if f]
    return text, markdown


def run(ctx, training_step=None) -> dict:
    results = targets(ctx)
    text, markdown = what_it_did(ctx, training_step)
    summary = report(results)
    if ctx.quick:
        summary += ("\n(--quick: smaller arrays and fewer repeats; the targets are for the "
                    "default run)")
    both = runtimes.run(ctx)
    results["runtimes"] = both["data"]
    title = "Both runtimes, numpy and OpenCL, side by side:"
    return {"text": summary + "\n\n" + "\n".join(text) + f"\n{title}\n" + both["text"],
            "markdown": "```text\n" + summary + "\n```\n\n" + "\n".join(markdown) +
                        f"\n{title}\n\n" + both["markdown"],
            "data": results}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__.splitlines()[0], argv)
    with measuring(args) as ctx:
        print(how_timed(ctx))
        results = targets(ctx)
    print(report(results))
    print(f"\nwrote {write_json(args.out, 'compiler', results)}")
    return results


def report(r: dict) -> str:
    rows = []
    for name, e in r["fused"].items():
        rows.append(target_row(f"{name} {tuple(e['shape'])}: eager / compiled",
                               e["speedup_vs_eager"], ">= 2.5x", f"{e['speedup_vs_eager']:.2f}x"))
        if "vs_torch_compile" in e:
            rows.append(target_row(f"{name}: compiled / torch.compile", e["vs_torch_compile"],
                                   "<= 1.0"))
    if "compiled_vs_torch" in r["overhead"]:
        rows.append(target_row("100-op chain 2x2 fwd+bwd: compiled / torch eager",
                               r["overhead"]["compiled_vs_torch"], "<= 0.25"))
    m = r["mlp"]
    rows += [target_row("MLP step: compiled / numpy", m["compiled_vs_numpy"], "<= 1.10"),
             target_row("MLP step: eager / numpy", m["eager_vs_numpy"], "<= 1.3"),
             target_row("MLP step: planned peak / no reuse", m["planned_vs_no_reuse"], "<= 0.6"),
             target_row("MLP step: measured peak / planned", m["measured_vs_planned"],
                        "<= 1.2")]
    for key, what in (("lenet", "LeNet step (batch 64)"),
                      ("conv2d", "conv2d fwd+bwd 32x64x32x32")):
        if "compiled_vs_torch" in r[key]:
            rows.append(target_row(f"{what}: compiled / torch eager",
                                   r[key]["compiled_vs_torch"], "<= 2.0"))
    rows += [target_row(f"compile {n} nodes (s)", s, "< 2 s") if n == "10000" else
             [f"compile {n} nodes (s)", f"{s:.2f}", "", ""]
             for n, s in r["compile_s"].items()]
    measured = {f"{name} {tuple(e['shape'])}": e for name, e in r["fused"].items()}
    measured["MLP step (batch 256)"] = m
    measured["LeNet step (batch 64)"] = r["lenet"]
    measured["conv2d fwd+bwd 32x64x32x32"] = r["conv2d"]
    columns = list(dict.fromkeys(k for e in measured.values() for k in e if k.endswith("_ms")))
    times = [[name, *(shown(e[k]) if k in e else "-" for k in columns)]
             for name, e in measured.items()]
    return (table(rows, ["measure", "value", "target", "this run"]) + "\n\n" +
            table(times, ["time per run: median (min-max)", *(k[:-3] for k in columns)]))


if __name__ == "__main__":
    main()
