"""``python -m comparisons``: run every comparison and print what each mode costs."""

from __future__ import annotations

import sys

from . import eager_overhead


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print("== Per-op overhead: eager vs PyTorch eager ==")
    eager_overhead.main(argv)


if __name__ == "__main__":
    main()
