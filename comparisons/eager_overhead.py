"""Per-op overhead of define-by-run: eager vs PyTorch eager on tiny tensors, where the
Python work around each op (not the arithmetic) is what is measured.

    python -m comparisons.eager_overhead [--quick] [--out DIR]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

import eager

from .common import arguments, context, interleaved_medians, table, write_json

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


def per_op_breakdown(repeats: int) -> dict[str, float]:
    """Microseconds per op of one eager multiply, layer by layer."""
    a = np.ones((2, 2), np.float32)
    x, w = eager.ones(2, 2), eager.ones(2, 2, requires_grad=True)

    def recorded_backward():
        y = w * x
        y.backward(eager.ones(2, 2))

    t = interleaved_medians({"numpy": lambda: np.multiply(a, a), "untracked": lambda: x * x,
                             "recorded": lambda: w * x, "both": recorded_backward}, repeats)
    return {"numpy kernel": t["numpy"] * 1e6, "eager op, nothing to record": t["untracked"] * 1e6,
            "eager op, recorded": t["recorded"] * 1e6,
            "backward() of that one-op graph": (t["both"] - t["recorded"]) * 1e6}


def run(ctx) -> dict:
    repeats = 30 if ctx.quick else 300
    torch = ctx.torch
    results: dict = {"repeats": repeats, "programs": {}}
    rows = []
    for program in (seed_example, elementwise_chain):
        ours = interleaved_medians({"eager": lambda: program(eager)}, repeats)["eager"]
        entry = {"eager_us": ours * 1e6}
        row = [program.__name__, f"{ours * 1e6:.1f}"]
        if torch is not None:
            theirs = interleaved_medians({"torch": lambda: program(torch)}, repeats)["torch"]
            entry.update(torch_us=theirs * 1e6, ratio=ours / theirs)
            row += [f"{theirs * 1e6:.1f}", f"{ours / theirs:.2f}x"]
        results["programs"][program.__name__] = entry
        rows.append(row)
    header = ["program (forward+backward)", "eager us"]
    if torch is not None:
        header += ["torch us", "eager/torch"]
    breakdown = per_op_breakdown(repeats * 10)
    results["per_op_us"] = breakdown
    text = "\n".join([table(rows, header), "", "where one eager op's time goes (median us):",
                      table([[k, f"{v:.2f}"] for k, v in breakdown.items()], ["layer", "us"])])
    return {"text": text, "markdown": f"```text\n{text}\n```", "data": results}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__.splitlines()[0], argv)
    section = run(context(args))
    print(section["text"])
    print(f"\nwrote {write_json(args.out, 'eager_overhead', section['data'])}")
    return section["data"]


if __name__ == "__main__":
    main()
