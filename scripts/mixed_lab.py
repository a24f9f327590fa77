"""The mixed detector, re-scored offline: leave-one-source-out in seconds instead of 15 minutes.

    poetry run python scripts/mixed_lab.py dump --data ../shared/datasets/manifest.csv \\
        --out DIR [--seed 42] [--jobs 2]
    poetry run python scripts/mixed_lab.py score DIR [--variant NAME ...] [--max-false 0.02]

``dump`` runs the shipped procedure's leave-one-source-out folds (CatBoost, the default scorer)
once and keeps, per fold, what the mixed detector sees: every left-out page's page probability,
fragment share and fragments (boxes and the fold's line-model probabilities), the fold's verdict
rule, and the detector's training rows (:class:`app.training.fold.MixedTraining`, whose inputs
are the training pages' out-of-fold fragments). ``score`` then refits the detector of every fold
on those rows with another evidence function (``--variant``), exactly as
:meth:`MixedTraining.detector` does (inner folds by source, threshold on out-of-fold scores),
and scores the left-out pages: macro final accuracy, false ``mixed``, mixed pages found, and,
with every fold's score pooled, the ROC AUC of mixed against pure pages and how many mixed pages
a single threshold would find for at most 3 % false ``mixed``. ``shipped`` uses each fold's own
detector and reproduces the LOSO table of ``train --loso`` (same seed, same features).

Pages whose label ``AUDIT.csv`` marks ``unsure`` are left out, as in every figure of the project.
Choices made by looking at these outputs are choices made on left-out sources: say so when one
is adopted.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.models.base import proba_handwritten  # noqa: E402
from app.models.mixed import WORD_ASPECT, mixed_evidence  # noqa: E402
from app.models.verdict import page_share  # noqa: E402
from app.training.corpus import Corpus  # noqa: E402
from app.training.dataset import discover  # noqa: E402
from app.training.evaluate import loso_corpus  # noqa: E402
from app.training.fold import FitOptions, MixedTraining, fit_fold  # noqa: E402

Evidence = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""(fragment boxes, fragment probabilities, page's combined probability q) -> evidence row."""

_STATE: dict[str, Any] = {}


def _word_long(boxes: np.ndarray) -> np.ndarray:
    """Fragments at least a word long (the detector's own WORD_ASPECT rule)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.asarray(
        (boxes[:, 2] - boxes[:, 0]) >= WORD_ASPECT * np.maximum(boxes[:, 3] - boxes[:, 1], 1)
    )


def _p_spread(boxes: np.ndarray, p: np.ndarray, hi: float, lo: float) -> list[float]:
    """How sure the word-long fragments are, each way: counts and shares above hi / below lo."""
    word = _word_long(boxes)
    pw = p[word] if word.any() else np.array([0.5])
    return [
        math.log1p(int((pw >= hi).sum())),
        math.log1p(int((pw <= lo).sum())),
        float(np.mean(pw >= hi)),
        float(np.mean(pw <= lo)),
        float(np.median(pw)),
        float(np.percentile(pw, 90)),
    ]


def _page_relative(boxes: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Fragment probabilities relative to the page (log-odds minus the word-long ones' median)."""
    if p.size == 0:
        return p
    q = np.clip(p, 1e-4, 1 - 1e-4)
    z = np.log(q / (1 - q))
    word = _word_long(boxes)
    centre = float(np.median(z[word] if word.any() else z))
    return np.asarray(1.0 / (1.0 + np.exp(-(z - centre))))


VARIANTS: dict[str, Evidence | None] = {
    "shipped": None,
    "refit": mixed_evidence,
    "spread-0.9": lambda b, p, q: np.concatenate(
        [mixed_evidence(b, p, q), _p_spread(b, p, 0.9, 0.1)]
    ),
    "spread-0.95": lambda b, p, q: np.concatenate(
        [mixed_evidence(b, p, q), _p_spread(b, p, 0.95, 0.05)]
    ),
    "page-relative": lambda b, p, q: np.concatenate(
        [mixed_evidence(b, p, q), mixed_evidence(b, _page_relative(b, p), q)[1:]]
    ),
}
"""Evidence functions to compare (``shipped``: each fold's own detector, no refit)."""


def _init(data: str, seed: int) -> None:
    opts = FitOptions(threads=1, algorithms=("catboost",), seed=seed)
    _, corpus, _ = loso_corpus(
        Path(data),
        opts=opts,
        cache_dir=ROOT / ".cache" / "features",
        workers=1,
        lang="eng",
        fullpage=False,
        sources=None,
        progress=None,
        robust=False,
    )
    _STATE.update(corpus=corpus, opts=opts)


def _dump_fold(job: tuple[str, Path]) -> str:
    source, out = job
    corpus: Corpus = _STATE["corpus"]
    fold = fit_fold(corpus, {d.sha256 for d in corpus.docs if d.source != source}, _STATE["opts"])
    test = corpus.pages.where(corpus.pages.sources == source)
    sub = corpus.page_lines.of_pages(set(test.keys))
    assert fold.line_model is not None
    by_page = sub.by_page(proba_handwritten(fold.line_model, sub.x)) if sub.pages else {}
    empty = (np.zeros((0, 4)), np.zeros(0))
    pages = []
    for key, y, p in zip(
        test.keys, test.y, proba_handwritten(fold.page_models["catboost"], test.x), strict=True
    ):
        frags = by_page.get(key, empty)
        share = page_share(frags)
        pages.append(
            {
                "key": key,
                "y": int(y),
                "p": float(p),
                "share": None if np.isnan(share) else share,
                "frags": frags,
            }
        )
    mixed = fold.mixed["catboost"]
    record = {"source": source, "pages": pages, "rule": fold.rules["catboost"], "mixed": mixed}
    with (out / f"{source}.pkl").open("wb") as fh:
        pickle.dump(record, fh)
    return source


def dump(data: str, out: Path, seed: int, jobs: int, only: list[str] | None = None) -> None:
    """One pickle per left-out source in ``out`` (``only``: these sources' folds alone)."""
    out.mkdir(parents=True, exist_ok=True)
    sources = only or sorted({d.source for d in discover(Path(data)).documents})
    with Pool(jobs, initializer=_init, initargs=(data, seed)) as pool:
        for done in pool.imap_unordered(_dump_fold, [(s, out) for s in sources]):
            sys.stderr.write(f"{done}\n")


def score(folder: Path, variant: str, max_false: float, unsure: set[str]) -> dict[str, Any]:
    """Macro final accuracy, false mixed, mixed found, pooled AUC of one evidence variant."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - only here

    evidence = VARIANTS[variant]
    opts = FitOptions(max_false_mixed=max_false)
    per_source: dict[str, float] = {}
    pooled: list[tuple[bool, float]] = []
    false_mixed = found = pure = mixed = 0
    for path in sorted(folder.glob("*.pkl")):
        with path.open("rb") as fh:
            rec = pickle.load(fh)  # our own dump
        rule = rec["rule"]
        if evidence is None:
            detector = rule.mixed

            def ev(p: float, share: float | None, frags: Any, rule: Any = rule) -> np.ndarray:
                return np.asarray(rule.evidence(p, share, frags))
        else:

            def ev(
                p: float, share: float | None, frags: Any, rule: Any = rule, f: Any = evidence
            ) -> np.ndarray:
                return np.asarray(f(frags[0], frags[1], rule.score(p, share)))

            m: MixedTraining = rec["mixed"]
            x = np.array([ev(*inp) for inp in m.inputs])
            detector = MixedTraining(
                x=x,
                is_mixed=m.is_mixed,
                weights=m.weights,
                units=m.units,
                sources=m.sources,
                inputs=m.inputs,
            ).detector(opts)
        right = []
        for pg in rec["pages"]:
            if pg["key"][0] in unsure:
                continue
            q = rule.score(pg["p"], pg["share"])
            label = 1 if q >= 0.5 else 0
            s = 0.0
            if pg["frags"][0].shape[0]:
                s = float(detector.score(ev(pg["p"], pg["share"], pg["frags"]))[0])
                if detector.enabled and s >= detector.threshold:
                    label = 2
            right.append(label == pg["y"])
            pooled.append((pg["y"] == 2, s))
            if pg["y"] == 2:
                mixed += 1
                found += label == 2
            else:
                pure += 1
                false_mixed += label == 2
        per_source[rec["source"]] = float(np.mean(right)) if right else float("nan")
    is_mixed = np.array([m for m, _ in pooled])
    scores = np.array([s for _, s in pooled])
    pure_scores = np.sort(scores[~is_mixed])
    above = np.array([(pure_scores >= s).sum() for s in scores[is_mixed]])
    return {
        "macro": float(np.nanmean(list(per_source.values()))),
        "false_mixed": false_mixed,
        "pure": pure,
        "found": found,
        "mixed": mixed,
        "auc": float(roc_auc_score(is_mixed, scores))
        if 0 < is_mixed.sum() < is_mixed.size
        else float("nan"),
        "found_at_3pct": int((above <= int(0.03 * pure)).sum()),
    }


def main() -> int:
    """Dump folds, or score variants on a dump."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--data", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--jobs", type=int, default=2)
    d.add_argument("--sources", nargs="*", help="only these folds (default: every source)")
    s = sub.add_parser("score")
    s.add_argument("folder")
    s.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    s.add_argument("--variant", nargs="*", default=list(VARIANTS))
    s.add_argument("--max-false", type=float, default=0.02)
    args = ap.parse_args()
    if args.cmd == "dump":
        dump(args.data, Path(args.out), args.seed, args.jobs, args.sources)
        return 0
    unsure = {doc.sha256 for doc in discover(Path(args.data)).documents if doc.unsure}
    sys.stdout.write(
        "| evidence | macro final | false mixed | mixed found | pooled AUC "
        "| found at <= 3 % false |\n|---|---|---|---|---|---|\n"
    )
    for name in args.variant:
        r = score(Path(args.folder), name, args.max_false, unsure)
        sys.stdout.write(
            f"| {name} | {r['macro']:.4f} | {r['false_mixed']} of {r['pure']} | "
            f"{r['found']} of {r['mixed']} | {r['auc']:.3f} | {r['found_at_3pct']} |\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
