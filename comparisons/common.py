"""What every comparison script shares: timing by medians, optional libraries, output files."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace


def optional(name: str) -> ModuleType | None:
    """Import an optional library, or say on stderr what is skipped without it."""
    try:
        return __import__(name)
    except ImportError:
        print(f"[{name} is not installed: its columns are skipped; "
              f"pip install -e '.[{name}]' adds it]", file=sys.stderr)
        return None


def arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, few repeats (~20 s)")
    size.add_argument("--full", action="store_true", help="longer runs, 100k-node compiles")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="where report.md, the PNG plots and the JSON results go")
    return parser.parse_args(argv)


def context(args: argparse.Namespace) -> SimpleNamespace:
    """What every section gets: sizes, where files go, and torch if it is installed."""
    args.out.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(quick=args.quick, full=args.full, out=args.out,
                           torch=optional("torch"))


def write_json(out: Path, name: str, results: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def target_row(measure: str, value: float, bound: str, shown: str | None = None) -> list[str]:
    """A row of a targets table: the value, its target (``"<= 1.3"``, ``">= 2.5x"``, ``"< 2 s"``)
    and whether this run met it."""
    op, number = bound.split()[:2]
    limit = float(number.rstrip("x"))
    met = {"<=": value <= limit, ">=": value >= limit, "<": value < limit}[op]
    return [measure, shown or f"{value:.2f}", bound, "met" if met else "MISSED"]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([line.format(*header), line.format(*("-" * w for w in widths))]
                     + [line.format(*map(str, r)) for r in rows])


def interleaved_medians(programs: dict[str, Callable[[], object]], repeats: int,
                        rounds: int = 3) -> dict:
    """Median seconds of each program. The programs take turns in blocks, a few rounds of
    them, so that a noisy neighbour slows them all alike; not call by call, because then one
    program's allocations (16 MB arrays freed back to the OS) cost the next one page faults."""
    times: dict[str, list[float]] = {name: [] for name in programs}
    per_block = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for name, run in programs.items():
            run()  # warm: plans compiled, memory mapped
            for _ in range(per_block):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
