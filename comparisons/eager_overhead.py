"""Per-op overhead of define-by-run: eager vs PyTorch eager on tiny tensors, where the
Python work around each op (not the arithmetic) is what is measured.

    python -m comparisons.eager_overhead [--quick] [--out DIR]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

import eager

from .common import arguments, median_seconds, optional, table, write_json

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

    per = 1e6
    kernel = median_seconds(lambda: np.multiply(a, a), repeats) * per
    untracked = median_seconds(lambda: x * x, repeats) * per
    recorded = median_seconds(lambda: w * x, repeats) * per
    both = median_seconds(recorded_backward, repeats) * per
    return {"numpy kernel": kernel, "eager op, nothing to record": untracked,
            "eager op, recorded": recorded, "backward() of that one-op graph": both - recorded}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__.splitlines()[0], argv)
    repeats = 30 if args.quick else 300
    torch = optional("torch")
    results: dict = {"repeats": repeats, "programs": {}}
    rows = []
    for program in (seed_example, elementwise_chain):
        ours = median_seconds(lambda: program(eager), repeats)
        entry = {"eager_us": ours * 1e6}
        row = [program.__name__, f"{ours * 1e6:.1f}"]
        if torch is not None:
            theirs = median_seconds(lambda: program(torch), repeats)
            entry.update(torch_us=theirs * 1e6, ratio=ours / theirs)
            row += [f"{theirs * 1e6:.1f}", f"{ours / theirs:.2f}x"]
        results["programs"][program.__name__] = entry
        rows.append(row)
    header = ["program (forward+backward)", "eager us"]
    if torch is not None:
        header += ["torch us", "eager/torch"]
    print(table(rows, header))
    breakdown = per_op_breakdown(repeats * 10)
    results["per_op_us"] = breakdown
    print("\nwhere one eager op's time goes (median microseconds):")
    print(table([[k, f"{v:.2f}"] for k, v in breakdown.items()], ["layer", "us"]))
    print(f"\nwrote {write_json(args.out, 'eager_overhead', results)}")
    return results


if __name__ == "__main__":
    main()
