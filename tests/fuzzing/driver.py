"""The fuzzing loop: each program through every oracle, each new failure class shrunk and
reported; and its command line, ``python -m tests.fuzz``."""

from __future__ import annotations

import argparse
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .check import check
from .failures import Failure
from .generator import GENERATOR_ERRORS, generate
from .modes import random_orders
from .programs import Program
from .reproducer import reproducer
from .shrink import shrink
from .surface import torch


@dataclass
class Stats:
    """What a fuzzing session found so far."""
    programs: int = 0
    failures: Counter = field(default_factory=Counter)     # class -> occurrences
    classes: dict = field(default_factory=dict)            # class -> reproducer
    prekeys: Counter = field(default_factory=Counter)      # key before shrinking -> programs
    names: dict = field(default_factory=dict)               # key -> class name


def describe(f: Failure, small: Program, pipeline) -> str:
    """A failure class's name."""
    where = ""
    if pipeline is not None and f.oracle not in ("b", "c"):
        where = f" [{pipeline[0]} passes={','.join(pipeline[1]) or '()'}]"
    return (f"({f.oracle}) {f.kind} in {f.label.split(' ')[0]}: {f.signature or '-'}"
            f" | ops {','.join(small.tags()) or '-'}{where}")


def fuzz_one(seed: int, stats: Stats, max_ops: int, report=print, shrink_budget: float = 20.0,
             pipelines_extra: int = 2) -> None:
    """Program ``seed`` through every oracle (and ``pipelines_extra`` random pipelines), its
    failures counted in ``stats``; a mismatch is shrunk (a few of each kind, then now and then)
    and each new class reported with its reproducer."""
    prog, runs = generate(seed, max_ops=max_ops)
    rng = np.random.default_rng(seed + 1)
    extra = tuple(random_orders(rng, pipelines_extra))
    failures = check(prog, runs, extra_pipelines=extra)
    stats.programs += 1
    for key, f in {f.prekey(): f for f in failures}.items():
        stats.prekeys[key] += 1
        if f.oracle == "harness":
            name = f"(harness) {f.signature}"
            stats.failures[name] += 1
            if name not in stats.classes:
                stats.classes[name] = f"# seed {seed}\n{f.detail}"
                report(f"\n=== new failure class: {name}  (seed {seed})\n{f.detail}")
            continue
        known = stats.names.get(key)
        if known is not None and (f.kind in ("raises", "no-raise") or f.oracle == "w"):
            stats.failures[known] += 1  # an error's class is its message: nothing to shrink
            continue
        # a mismatch: shrink a few of each, then only now and then
        if stats.prekeys[key] > 3 and rng.random() > 0.1:
            stats.failures[stats.names.get(key) or describe(f, prog, f.pipeline)] += 1
            continue
        small, small_runs, pipeline, f = shrink(prog, runs, f, shrink_budget)
        final = f.final_key(small, pipeline)
        name = stats.names.setdefault(final, describe(f, small, pipeline))
        stats.names.setdefault(key, name)
        stats.failures[name] += 1
        if name not in stats.classes:
            source = reproducer(small, small_runs, f, pipeline)
            stats.classes[name] = f"# program seed {seed}\n{source}"
            report(f"\n=== new failure class: {name}  (program seed {seed}; "
                   f"{len(prog.ops)} ops shrunk to {len(small.ops)})\n{source}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz",
        description='Differential random-program fuzzer: "correct under any input".')
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-ops", type=int, default=40)
    parser.add_argument("--quiet", action="store_true", help="no reproducers while running")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    print(f"fuzzing for {args.minutes} min from seed {seed} (torch: "
          f"{'yes' if torch is not None else 'no, oracle (c) skipped'})", flush=True)
    stats = Stats()
    start = time.monotonic()
    end = start + args.minutes * 60
    last = start
    k = 0
    while time.monotonic() < end:
        try:
            fuzz_one(seed * 1_000_003 + k, stats, args.max_ops,
                     report=(lambda *a: None) if args.quiet else
                     (lambda *a: print(*a, flush=True)))
        except Exception:  # noqa: BLE001 - the fuzzer's own bug: report it, go on
            name = "(harness) " + traceback.format_exc(limit=-1).strip().splitlines()[-1]
            stats.failures[name] += 1
            if name not in stats.classes:
                stats.classes[name] = traceback.format_exc()
                print(f"\n=== {name} (program seed {seed * 1_000_003 + k})\n"
                      f"{traceback.format_exc()}", flush=True)
        k += 1
        now = time.monotonic()
        if now - last > 15:
            last = now
            print(f"[{(now - start) / 60:5.1f} min] programs {stats.programs}, failures "
                  f"{sum(stats.failures.values())}, classes {len(stats.classes)}", flush=True)
    print(f"\n==== totals: {stats.programs} programs in {(time.monotonic() - start) / 60:.1f} min "
          f"from seed {seed}; {len(stats.classes)} failure classes, "
          f"{sum(stats.failures.values())} failing checks ====")
    for name, count in stats.failures.most_common():
        print(f"{count:6d}  {name}")
    for text, count in GENERATOR_ERRORS.items():
        print(f"{count:6d}  (generator error, op skipped) {text.strip().splitlines()[-1]}")
    if args.quiet:
        for name, source in stats.classes.items():
            print(f"\n=== {name}\n{source}")
    return 1 if stats.classes else 0
