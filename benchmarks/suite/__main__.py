"""``python -m benchmarks.suite``: parse the settings, run every part, exit with its status."""

from __future__ import annotations

import sys

from .config import parse_args
from .runner import main

if __name__ == "__main__":
    sys.exit(main(parse_args(sys.argv[1:])))
