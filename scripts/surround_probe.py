"""Dark-surround probe: dev pages laid on black cloth, classified as given and framed.

    poetry run python scripts/surround_probe.py [--model models/default] \\
        [--data ../shared/datasets/manifest.csv] [--per 3]

Manuscripts, old letters and early prints are photographed on black cloth or the scanner bed.
Every source of the dev set has pages of one kind of surround or none, so whether a model reads
the surround instead of the writing cannot be seen in leave-one-source-out. This probe takes the
first ``--per`` pure pages of each source and label, lays each on a dark, speckled cloth (15 % of
the page's long side on every side, seeded: the same cloth for every version), and prints how
many keep their label as given and framed, and which pages a frame changes. The model has seen
these pages as given (they are its training pages): what is measured is what the frame alone
does. A probe, not a benchmark.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.documents import load_pages  # noqa: E402
from app.documents.loader import Page  # noqa: E402
from app.features import FEATURE_VERSION  # noqa: E402
from app.models.predict import classify_pages  # noqa: E402
from app.models.registry import load_version  # noqa: E402


def framed(grey: np.ndarray, seed: int) -> np.ndarray:
    """``grey`` on a dark speckled cloth (mean about 22 grey levels, bright specks)."""
    h, w = grey.shape
    m = int(0.15 * max(h, w))
    rng = np.random.default_rng(seed)
    cloth = np.clip(np.abs(rng.normal(0, 18, (h + 2 * m, w + 2 * m))) + 8, 0, 255)
    cloth[m : m + h, m : m + w] = grey
    return cloth.astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    parser.add_argument("--per", type=int, default=3)
    args = parser.parse_args()
    manifest = Path(args.data)
    if not manifest.is_file():
        sys.stderr.write(f"no manifest at {manifest}\n")
        return 2
    by: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in csv.DictReader(manifest.open(encoding="utf-8")):
        if r["label"] in ("typed", "handwritten"):
            by.setdefault((r["source"], r["label"]), []).append(r)
    model = load_version(Path(args.model))
    right = {(lab, kind): 0 for lab in ("typed", "handwritten") for kind in ("given", "framed")}
    total = dict.fromkeys(("typed", "handwritten"), 0)
    changed = []
    for (source, label), rows in sorted(by.items()):
        for i, r in enumerate(rows[: args.per]):
            page = load_pages(manifest.parent / r["path"], dpi=150)[0]
            frame = Page(image=framed(page.image, i), number=1, dpi=page.dpi)
            given_v, framed_v = classify_pages([page, frame], model)
            total[label] += 1
            right[label, "given"] += given_v.label == label
            right[label, "framed"] += framed_v.label == label
            if given_v.label != framed_v.label:
                changed.append(
                    f"| {source} | {Path(r['path']).name} | {label} | "
                    f"{given_v.label} {given_v.p_handwritten:.2f} | "
                    f"{framed_v.label} {framed_v.p_handwritten:.2f} |"
                )
    print(f"model {model.id} ({model.default_algorithm}), features {FEATURE_VERSION}")
    print()
    print("| label | pages | right as given | right framed |")
    print("|---|---|---|---|")
    for label in ("typed", "handwritten"):
        print(f"| {label} | {total[label]} | {right[label, 'given']} | {right[label, 'framed']} |")
    print()
    print("| source | page | label | as given (p hw) | framed (p hw) |")
    print("|---|---|---|---|---|")
    print("\n".join(changed) if changed else "| (none) | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
