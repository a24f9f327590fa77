"""Wall time of `python -m app classify` on one sample, start-up included, and what it is made of.

    poetry run python bench/cli.py [--runs 5] [--file samples/typed_report.pdf]

Runs the command as a user would (a fresh interpreter each time) and, in the same run, a fresh
interpreter that only imports what `classify` imports and loads the default model, so the share of
start-up in the total is measured side by side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STARTUP = (
    "from pathlib import Path\n"
    "import app.cli, app.documents, app.features, app.models.predict\n"
    "from app.models.registry import load_version\n"
    "load_version(Path('models/default'))\n"
)


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--file", default="samples/typed_report.pdf")
    args = parser.parse_args()
    full, start = [], []
    for _ in range(args.runs):  # interleaved: both see the same machine load
        full.append(wall([sys.executable, "-m", "app", "classify", args.file]))
        start.append(wall([sys.executable, "-c", STARTUP]))
    print(f"`python -m app classify {args.file}`, {args.runs} runs, default model")
    print()
    print("| | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, values in (("classify, start-up included", full), ("start-up only", start)):
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )
    print()
    print(f"start-up share of the median: {statistics.median(start) / statistics.median(full):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
