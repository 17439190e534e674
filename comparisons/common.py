"""What every comparison script shares: one thread policy, timing by interleaved repeats
summarised as median with min-max, optional libraries, output files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import threadpoolctl

from staticgraph.runtime import fused

NOISY_QUARTILES = 1.5  # upper / lower quartile of a measurement's runs above this: a warning
SPREAD_WARNINGS: list[str] = []  # this run's warnings, in the order measured


def optional(name: str) -> ModuleType | None:
    """Import an optional library, or say on stderr what is skipped without it."""
    try:
        return __import__(name)
    except ImportError:
        print(f"[{name} is not installed: its columns are skipped; "
              f"pip install -e '.[{name}]' adds it]", file=sys.stderr)
        return None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def default_threads() -> int:
    """Half the cores, at least one. A pool that synchronises its threads stalls whenever one
    of them loses its core: on two shared cores, numpy's and torch's pools of two each
    turned 0.3 ms training steps into 5-30 ms ones, and one thread each never did."""
    return max(1, cores() // 2)


def arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, few repeats (~20 s)")
    size.add_argument("--full", action="store_true", help="longer runs, 100k-node compiles")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="where report.md, the PNG plots and the JSON results go")
    parser.add_argument("--threads", type=int, default=default_threads(), metavar="N",
                        help="threads of every pool timed: numpy's BLAS, OpenMP, torch "
                             "intra-op, onnxruntime (default: half of this machine's "
                             f"{cores()} cores, here {default_threads()})")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


@contextlib.contextmanager
def measuring(args: argparse.Namespace) -> Iterator[SimpleNamespace]:
    """What every section gets (sizes, where files go, torch if it is installed, the thread
    counts), with every thread pool set to ``args.threads`` until the block ends. Set here,
    once torch is imported: threadpoolctl reaches only the libraries loaded by then."""
    args.out.mkdir(parents=True, exist_ok=True)
    SPREAD_WARNINGS.clear()
    torch = optional("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    fused_threads = fused.get_num_threads()
    with threadpoolctl.threadpool_limits(args.threads):
        if torch is not None:
            torch.set_num_threads(args.threads)
        fused.set_num_threads(args.threads)
        try:
            yield SimpleNamespace(quick=args.quick, full=args.full, out=args.out, torch=torch,
                                  threads=args.threads, thread_counts=thread_counts(torch))
        finally:
            fused.set_num_threads(fused_threads)
            if torch is not None:
                torch.set_num_threads(torch_threads)


def thread_counts(torch: ModuleType | None) -> dict[str, int]:
    """The threads each loaded library will use, read back from the library."""
    counts = {f"{_package(pool['filepath'])}'s {pool['internal_api']}": pool["num_threads"]
              for pool in threadpoolctl.threadpool_info()}
    if torch is not None:
        counts["torch intra-op"] = torch.get_num_threads()
    counts["staticgraph's fused kernels"] = fused.get_num_threads()
    return counts


def _package(library: str) -> str:
    """The Python package that ships a shared library (``numpy.libs/libscipy_openblas.so``
    is numpy's), else the library's file name."""
    parts = Path(library).parts
    for folder in ("site-packages", "dist-packages"):
        if folder in parts[:-1]:
            return parts[parts.index(folder) + 1].removesuffix(".libs")
    return Path(library).name


def how_timed(ctx: SimpleNamespace) -> str:
    """The report's header: the threads each library used, and how times were taken."""
    counts = ", ".join(f"{name} {n}" for name, n in ctx.thread_counts.items())
    return (f"Threads: --threads {ctx.threads} (default: half of this machine's {cores()} "
            f"cores): {counts}.\n"
            "Times: the programs compared take turns in blocks of runs; each time is the "
            "median run, with the fastest and the slowest beside it: 0.41 ms (0.39-0.52). "
            "A warning names any measurement whose runs' upper quartile is over "
            f"{NOISY_QUARTILES}x their lower quartile.")


def run_section(description: str, name: str, run: Callable, argv: list[str] | None) -> dict:
    """One section as a script of its own (``python -m comparisons.<name>``): its times
    taken as the main job's are, its text printed, its results written to ``<name>.json``."""
    args = arguments(description, argv)
    with measuring(args) as ctx:
        print(how_timed(ctx))
        section = run(ctx)
    print(section["text"])
    print(f"\nwrote {write_json(args.out, name, section['data'])}")
    return section["data"]


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


UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


@dataclass(frozen=True)
class Timing:
    """Seconds of the runs of one program. Reported as the median with the range beside
    it: a median alone hides a run where the machine was busy."""
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    def summary(self, unit: str) -> dict:
        """For the JSON: min, quartiles, median, max in ``unit``, and how many runs."""
        q1, median, q3 = np.percentile(self.seconds, [25, 50, 75]) * UNITS[unit]
        return {"median": float(median), "min": min(self.seconds) * UNITS[unit],
                "q1": float(q1), "q3": float(q3), "max": max(self.seconds) * UNITS[unit],
                "runs": len(self.seconds), "unit": unit}

    def spread_warning(self, what: str) -> str | None:
        """A warning naming ``what`` when the middle half of the runs is spread wide."""
        q1, q3 = np.percentile(self.seconds, [25, 75])
        if q3 <= NOISY_QUARTILES * q1:
            return None
        unit = next(u for u, scale in UNITS.items() if self.median * scale >= 1 or u == "us")
        s = self.summary(unit)
        return (f"warning: {what}: runs spread from {_number(s['min'])} to {_number(s['max'])} "
                f"{unit}, the middle half from {_number(s['q1'])} to {_number(s['q3'])} "
                f"({q3 / q1:.1f}x apart, over {NOISY_QUARTILES}x): the machine was busy or "
                "thread pools competed; try --threads 1 or a quieter machine")


def shown(summary: dict) -> str:
    """A timing summary as a table shows it: ``0.41 ms (0.39-0.52)``."""
    return (f"{_number(summary['median'])} {summary['unit']} "
            f"({_number(summary['min'])}-{_number(summary['max'])})")


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:#.3g}".rstrip(".")


def interleaved(programs: dict[str, Callable[[], object]], repeats: int, what: str,
                rounds: int = 3) -> dict[str, Timing]:
    """Time each program ``repeats`` times. The programs take turns in blocks, a few rounds
    of them, so that a noisy neighbour slows them all alike; not call by call, because then
    one program's allocations (16 MB arrays freed back to the OS) cost the next one page
    faults. A measurement (``what``, then the program's name) whose runs spread wide is
    warned of on stderr and kept in SPREAD_WARNINGS for the report."""
    times: dict[str, list[float]] = {name: [] for name in programs}
    per_block = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for name, run in programs.items():
            run()  # warm: plans compiled, memory mapped
            for _ in range(per_block):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    timings = {name: Timing(tuple(t)) for name, t in times.items()}
    for name, timing in timings.items():
        warning = timing.spread_warning(f"{what}, {name}")
        if warning:
            print(warning, file=sys.stderr, flush=True)
            SPREAD_WARNINGS.append(warning)
    return timings


def seconds_of(run: Callable[[], object]) -> float:
    """Seconds of one run, for a cost paid once (compiling, a first step): nothing to repeat."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
