"""Two versions of the feature extraction, side by side, page by page, on one core each in turn.

    poetry run python bench/compare.py BEFORE_TREE AFTER_TREE [--limit 40] [--repeat 3] \\
        [--data ../shared/datasets/manifest.csv]

``BEFORE_TREE`` and ``AFTER_TREE`` are two checkouts of inkwell (``git worktree add /tmp/before
<commit>``). Each runs in a process of its own that imports its own ``app``; the pages (those
``bench/features.py`` picks) are read by the two in turn, one page at a time, the order flipped
every page, each page ``--repeat`` times keeping the fastest. So a busy neighbour or a slow
minute on a shared machine slows both alike, and the ratio per page is what the change did.

Two runs of ``bench/features.py``, one per version, compare each against full-page OCR in its
own run; on a noisy machine the same code has given 3.6x and 4.4x there. This compares the two
versions with each other, which is what an exact speed-up (features unchanged) has to show.
Prints the median and sum per stage for both, the per-page time ratio (median, p10, p90) and
the slowest pages.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("normalise", "orientation", "regularity", "strokes", "ocr", "lines")


def _worker(tree: str, data: str, limit: int, repeat: int, conn: Connection) -> None:
    """Load the pages with ``tree``'s code, then time the pages asked for, one at a time."""
    os.environ["OMP_THREAD_LIMIT"] = "1"
    sys.path.insert(0, tree)
    # ``tree``'s app first: bench/features.py puts this checkout at the front of sys.path when
    # it is imported, so importing it first made both processes run this checkout's code
    import app
    from app.documents import load_pages
    from app.features import analyse_page
    from app.processes import one_blas_thread

    sys.path.insert(1, str(ROOT / "bench"))
    from features import pick_files

    one_blas_thread()
    files = pick_files(Path(data), limit)
    pages = [(source, load_pages(path, dpi=300)[0].image) for path, source in files]
    conn.send((str(Path(app.__file__).resolve().parent), [source for source, _ in pages]))
    while (i := conn.recv()) is not None:
        best, stages = float("inf"), {}
        for _ in range(repeat):
            t0 = time.perf_counter()
            analysis = analyse_page(pages[i][1])
            seconds = time.perf_counter() - t0
            if seconds < best:
                best, stages = seconds, dict(analysis.timings)
        conn.send((best, stages))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", help="checkout of the version before")
    parser.add_argument("after", help="checkout of the version after")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")  # each process imports its own tree's app
    ends, procs = [], []
    for tree in (args.before, args.after):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_worker,
            args=(str(Path(tree).resolve()), args.data, args.limit, args.repeat, theirs),
        )
        proc.start()
        ends.append(mine)
        procs.append(proc)
    (app_before, sources), (app_after, same) = (end.recv() for end in ends)
    for tree, code in ((args.before, app_before), (args.after, app_after)):
        # each process must run its own tree's code, or the comparison compares nothing
        if Path(code) != Path(tree).resolve() / "app":
            for proc in procs:
                proc.terminate()
            raise SystemExit(f"{tree}: its process imported {code}, not its own app")
    assert sources == same, "the two trees picked different pages"
    results: list[list[tuple[float, dict[str, Any]]]] = [[], []]
    for i in range(len(sources)):
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            ends[k].send(i)
            results[k].append(ends[k].recv())
    for end, proc in zip(ends, procs, strict=True):
        end.send(None)
        proc.join()
    before = np.array([r[0] for r in results[0]])
    after = np.array([r[0] for r in results[1]])
    print(f"{len(sources)} pages, read in turn (fastest of {args.repeat}), one process each")
    print(f"before: {args.before} (app from {app_before})")
    print(f"after:  {args.after} (app from {app_after})\n")
    print("| stage | before median s | after median s | before sum s | after sum s |")
    print("|---|---|---|---|---|")
    for stage in STAGES:
        b = np.array([r[1].get(stage, 0.0) for r in results[0]])
        a = np.array([r[1].get(stage, 0.0) for r in results[1]])
        print(
            f"| {stage} | {np.median(b):.3f} | {np.median(a):.3f} | {b.sum():.2f} | {a.sum():.2f} |"
        )
    print(
        f"| total | {np.median(before):.3f} | {np.median(after):.3f} "
        f"| {before.sum():.2f} | {after.sum():.2f} |"
    )
    ratio = before / after
    print(
        f"\nbefore / after per page: median {np.median(ratio):.3f}, "
        f"p10 {np.percentile(ratio, 10):.3f}, p90 {np.percentile(ratio, 90):.3f} "
        "(above 1: after faster)"
    )
    print("slowest pages (before): source, before s, after s")
    for j in np.argsort(-before)[:8]:
        print(f"  {sources[j]}: {before[j]:.3f}, {after[j]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
