"""``python -m comparisons``: run every comparison and print what each mode costs.

Options: ``--quick`` (a smoke run), ``--out DIR`` (where JSON goes, default ``out/``).
"""

from __future__ import annotations

import sys

from . import compiler, eager_overhead


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print("== Per-op overhead: eager vs PyTorch eager ==", flush=True)
    eager_overhead.main(argv)
    print("\n== What compiling buys: the compiler's targets ==", flush=True)
    compiler.main(argv)


if __name__ == "__main__":
    main()
