"""How the orientation decision does on the dev pages given at a turn, and what a layout test adds.

    poetry run python bench/orientation.py [--turn 0|90|180|270] [--gate 1.25,1.5,2]
        [--data ../shared/datasets/manifest.csv] [--jobs 2]

Every page of the manifest is given turned by ``--turn`` degrees counter-clockwise and read as
``analyse_page`` reads it up to its decision (the same readings, the same rule): which pages are
suspect, which turn wins, and so how many are read at the turn that undoes ``--turn``, at another
turn, or as given (the dev pages are upright but for one, the intake form, given sideways: it
counts as another turn). The pages are read without the service's layout gate (``SIDEWAYS_GATE``:
a sideways suspect's turns are read only when a turned layout puts at least that many times the
page's own share of components into text lines); then, for each ``--gate`` factor and for the
service's own, what the gate does to the sideways suspects: the readings it spares, the undoing
turns it loses and the other (wrong) turns it avoids.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.features.extract import SIDEWAYS_GATE, passes_sideways_gate  # noqa: E402

os.environ["OMP_THREAD_LIMIT"] = "1"


def read_page(job: tuple[str, int]) -> list[dict[str, Any]]:
    """The decision on every page of one file given turned by ``quarter`` quarter turns."""
    from app.documents import load_pages
    from app.features import extract

    extract.SIDEWAYS_GATE = 0.0  # every turn read: the gate is applied afterwards, per factor
    path, quarter = job
    out = []
    for page in load_pages(Path(path)):
        ocr = extract.OcrSettings()
        first = extract._Reading.of(np.ascontiguousarray(np.rot90(page.image, quarter)), ocr)
        best_k, read = extract.decide_turn(first, ocr)  # the service's rule, every turn read
        shares = [extract.line_share(r) for k, r in read.items() if k]
        out.append(
            {
                "path": path,
                "page": page.number,
                "turns": first.turns,
                "best": best_k,
                "share": extract.line_share(first),
                "turned_share": max(shares, default=0.0),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    parser.add_argument("--turn", type=int, choices=[0, 90, 180, 270], default=0)
    parser.add_argument("--gate", default="1.25,1.5,2")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    data = Path(args.data)
    if not data.is_file():
        print(f"no manifest at {data}: this measurement needs the dev datasets", file=sys.stderr)
        return 1
    quarter = args.turn // 90
    rows = list(csv.DictReader(data.open()))
    jobs = [(str(data.parent / r["path"]), quarter) for r in rows]
    with Pool(args.jobs) as pool:
        pages = [p for ps in pool.imap(read_page, jobs, chunksize=4) for p in ps]
    upright = (4 - quarter) % 4  # the turn that brings the page back upright
    sideways = [p for p in pages if sorted(p["turns"]) == [1, 3]]
    print(
        f"{len(pages)} pages given turned {args.turn}°; {len(sideways)} suspect of lying sideways"
    )

    def passes(p: dict[str, Any], factor: float) -> bool:
        return passes_sideways_gate(p["share"], p["turned_share"], factor)

    def best(p: dict[str, Any], factor: float) -> int:
        gated = sorted(p["turns"]) == [1, 3] and not passes(p, factor)
        return 0 if gated else int(p["best"])

    for name, factor in (
        ("without the gate", 0.0),
        (f"with the gate ({SIDEWAYS_GATE:g}x)", SIDEWAYS_GATE),
    ):
        print(
            f"{name}: read at the turn that undoes {args.turn}°: "
            f"{sum(best(p, factor) == upright for p in pages)}, at another turn: "
            f"{sum(best(p, factor) not in (0, upright) for p in pages)}, as given: "
            f"{sum(best(p, factor) == 0 for p in pages)}"
        )
    print()
    print(
        "| gate (turned share / own share) | sideways turns read | spared | undoing turns lost "
        "| other turns avoided |"
    )
    print("|---|---|---|---|---|")
    factors = sorted({float(f) for f in args.gate.split(",") if f.strip()} | {SIDEWAYS_GATE})
    for factor in factors:
        kept = [p for p in sideways if passes(p, factor)]
        dropped = [p for p in sideways if p not in kept]
        lost = sum(p["best"] == upright and upright != 0 for p in dropped)
        avoided = sum(p["best"] not in (0, upright) for p in dropped)
        mark = " (the service's)" if factor == SIDEWAYS_GATE else ""
        print(f"| {factor:g}x{mark} | {len(kept)} | {len(dropped)} | {lost} | {avoided} |")
    other = [p for p in pages if best(p, SIDEWAYS_GATE) not in (0, upright)]
    for p in other[:20]:
        print(f"read at another turn: {Path(p['path']).name} p{p['page']} ({p['best'] * 90}°)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
