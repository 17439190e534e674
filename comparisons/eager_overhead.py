"""Per-op overhead of define-by-run: eager vs PyTorch eager on tiny tensors, where the
Python work around each op (not the arithmetic) is what is measured.

    python -m comparisons.eager_overhead [--quick] [--threads N] [--out DIR]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

import eager

from .common import interleaved, run_section, shown, table

CHAIN_OPS = 100  # 20 rounds of 5 elementwise ops


def seed_example(lib: ModuleType) -> None:
    """The 000 article's first example, forward and backward."""
    x = lib.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    out.backward()


def elementwise_chain(lib: ModuleType) -> None:
    """A 100-op elementwise chain on a 2x2 tensor, forward and backward."""
    x = lib.ones(2, 2, requires_grad=True)
    y = x
    for _ in range(CHAIN_OPS // 5):
        y = (y * 1.01 + 0.1).tanh() - 0.05
        y = y * y
    y.sum().backward()


def per_op_breakdown(repeats: int) -> dict[str, dict | float]:
    """Microseconds per op of one eager multiply, layer by layer (the last one a difference
    of medians)."""
    a = np.ones((2, 2), np.float32)
    x, w = eager.ones(2, 2), eager.ones(2, 2, requires_grad=True)

    def recorded_backward():
        y = w * x
        y.backward(eager.ones(2, 2))

    t = interleaved({"numpy": lambda: np.multiply(a, a), "untracked": lambda: x * x,
                     "recorded": lambda: w * x, "both": recorded_backward}, repeats,
                    "one 2x2 multiply")
    return {"numpy kernel": t["numpy"].summary("us"),
            "eager op, nothing to record": t["untracked"].summary("us"),
            "eager op, recorded": t["recorded"].summary("us"),
            "backward() of that one-op graph": (t["both"].median - t["recorded"].median) * 1e6}


def run(ctx) -> dict:
    repeats = 30 if ctx.quick else 300
    torch = ctx.torch
    results: dict = {"repeats": repeats, "programs": {}}
    rows = []
    libraries = {"eager": eager} | ({"torch": torch} if torch is not None else {})
    for program in (seed_example, elementwise_chain):
        times = interleaved({name: (lambda lib=lib: program(lib))
                             for name, lib in libraries.items()}, repeats, program.__name__)
        entry = {f"{name}_us": t.summary("us") for name, t in times.items()}
        row = [program.__name__, *(shown(e) for e in entry.values())]
        if torch is not None:
            entry["ratio"] = times["eager"].median / times["torch"].median
            row.append(f"{entry['ratio']:.2f}x")
        results["programs"][program.__name__] = entry
        rows.append(row)
    header = ["program (forward+backward)", "eager: median (min-max)"]
    if torch is not None:
        header += ["torch: median (min-max)", "eager/torch"]
    breakdown = per_op_breakdown(repeats * 10)
    results["per_op_us"] = breakdown
    text = "\n".join([table(rows, header), "", "where one eager op's time goes:",
                      table([[k, shown(v) if isinstance(v, dict) else
                              f"{v:.2f} us (a difference of medians)"]
                             for k, v in breakdown.items()], ["layer", "median (min-max)"])])
    return {"text": text, "markdown": f"```text\n{text}\n```", "data": results}


def main(argv: list[str] | None = None) -> dict:
    return run_section(__doc__.splitlines()[0], "eager_overhead", run, argv)


if __name__ == "__main__":
    main()
