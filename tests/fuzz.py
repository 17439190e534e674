"""Differential random-program fuzzer (the package ``tests/fuzzing``), run for a while:

    python -m tests.fuzz --minutes 10 [--seed S] [--max-ops N] [--quiet]
"""

import sys

from .fuzzing.driver import main

if __name__ == "__main__":
    sys.exit(main())
