"""``python -m comparisons``: the same programs both ways, side by side, and what building
the graph first buys and costs. Prints a report and writes ``report.md``, PNG plots and
``results.json`` to ``--out`` (default ``out/``).

    python -m comparisons [--quick | --full] [--threads N] [--out DIR]
"""

from __future__ import annotations

import json
import sys
import time

from . import (compiler, dynamic, eager_overhead, onnx_both_ways, plots, scale_out, seeds,
               training)
from .common import SPREAD_WARNINGS, arguments, how_timed, measuring


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__.splitlines()[0], sys.argv[1:] if argv is None else argv)
    with measuring(args) as ctx:
        return _run(ctx)


def _run(ctx) -> dict:
    started = time.perf_counter()
    header = how_timed(ctx)
    print(header, flush=True)
    results, markdown = {"threads": {"--threads": ctx.threads, **ctx.thread_counts}}, []

    def section(number: str, title: str, run) -> dict:
        print(f"\n[{number}/6] {title}", flush=True)
        out = run()
        print(out["text"], flush=True)
        markdown.extend([f"## {number}. {title}", "", out["markdown"], ""])
        return out

    section("1", "The seeds, both ways", lambda: seeds.run(ctx))
    trained = section("2", "Training, both ways", lambda: training.run(ctx))
    results["training"] = trained["data"]
    compiled = section("3", "What the compiler did",
                       lambda: _compiler_section(ctx, trained["compiled"]))
    results["compiler"] = compiled["data"]
    results["dynamic"] = section("4", "Where define-by-run wins", lambda: dynamic.run(ctx))["data"]
    results["onnx"] = section("5", "ONNX, both ways", lambda: onnx_both_ways.run(ctx))["data"]
    results["scale_out"] = section("6", "Scale-out", lambda: scale_out.run(ctx))["data"]
    if plots.SKIPPED:
        note = "skipped pictures: " + "; ".join(plots.SKIPPED)
        print(f"\n{note}")
        markdown.append(f"> {note}")
    results["spread_warnings"] = list(SPREAD_WARNINGS)
    if SPREAD_WARNINGS:  # on stderr as measured; again here and at the report's top
        print("\n" + "\n".join(SPREAD_WARNINGS))
    top = ["# staticgraph: define-by-run and define-and-run, side by side", "",
           header.replace("\n", "\n\n"), "", *(f"> - {w}" for w in SPREAD_WARNINGS), ""]
    (ctx.out / "report.md").write_text("\n".join(top + markdown) + "\n")
    (ctx.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {ctx.out / 'report.md'} and {ctx.out / 'results.json'} "
          f"in {time.perf_counter() - started:.0f} s")
    return results


def _compiler_section(ctx, training_step) -> dict:
    overhead = eager_overhead.run(ctx)
    compiled = compiler.run(ctx, training_step)
    return {"text": "The compiler's targets (side by side in this run):\n" + compiled["text"] +
                    "\n\nPer-op overhead, eager vs PyTorch eager:\n" + overhead["text"],
            "markdown": "The compiler's targets, measured side by side in this run:\n\n" +
                        compiled["markdown"] + "\n\nPer-op overhead, eager vs PyTorch eager:"
                        "\n\n" + overhead["markdown"],
            "data": {"eager_overhead": overhead["data"], **compiled["data"]}}


if __name__ == "__main__":
    main()
