"""The verdict rule and the mixed detector, re-scored offline: LOSO in a minute, not an hour.

    poetry run python scripts/mixed_lab.py dump --data ../shared/datasets/manifest.csv \\
        --out DIR [--seed 42] [--jobs 2]
    poetry run python scripts/mixed_lab.py score DIR [--variant NAME ...] [--share NAME ...] \\
        [--algorithm catboost svm] [--max-false 0.02]
    poetry run python scripts/mixed_lab.py fit --data ../shared/datasets/manifest.csv --out F.pkl
    poetry run python scripts/mixed_lab.py insample F.pkl [--share NAME ...]

``dump`` runs the shipped procedure's leave-one-source-out folds once (both scorers, about 45
minutes on two cores) and keeps, per fold, what the verdict rule and the mixed detector see:
every left-out page's page probabilities, fragment share and fragments (boxes and the fold's
line-model probabilities), the fold's verdict rules, and the detector's training rows
(:class:`app.training.fold.MixedTraining`, whose inputs are the training pages' out-of-fold page
probabilities and fragments). ``score`` then refits, per fold, what a variant changes, exactly as
``fit_fold`` does, and scores the left-out pages: macro final accuracy, balanced accuracy and both
recalls on pure pages, false ``mixed``, mixed pages found, and, with every fold's score pooled,
the ROC AUC of mixed against pure pages and how many mixed pages a single threshold would find
for at most 3 % false ``mixed``.

- ``--variant``: another evidence function for the detector (refitted on the fold's rows; inner
  folds by source, threshold on out-of-fold scores, as :meth:`MixedTraining.detector`).
- ``--share``: another definition of the page's handwritten share (:func:`page_share` weighs
  fragments by box area and counts those with p >= 0.5): the fold's verdict rule is refitted on
  its training pages' out-of-fold shares, then the detector on the new rule's log-odds.
- ``shipped`` (both): each fold's own rule and detector; it reproduces the LOSO table of
  ``train --loso`` (same seed, same features), and the shipped share itself refitted
  (``area-hard`` is :func:`page_share`) reproduces it too: the check that the refit is the
  procedure's.

``fit`` fits the procedure once on every page (what ``train`` ships) and scores its own pages;
``insample`` then counts, per share, how many first pages of the sure mixed documents that model
calls mixed: what ``tests/test_dev_data.py`` asks of the shipped model (a fifth of them).

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
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.models.base import proba_handwritten  # noqa: E402
from app.models.mixed import WORD_ASPECT, mixed_evidence  # noqa: E402
from app.models.verdict import Fragments, fit_rule, page_share  # noqa: E402
from app.training.corpus import LABEL_CODE, Corpus  # noqa: E402
from app.training.dataset import discover  # noqa: E402
from app.training.evaluate import loso_corpus  # noqa: E402
from app.training.fold import (  # noqa: E402
    FitOptions,
    MixedTraining,
    fit_fold,
    of_docs,
    source_weights,
)

Evidence = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""(fragment boxes, fragment probabilities, page's combined probability q) -> evidence row."""
Share = Callable[[Fragments], float]
"""A page's fragments -> its handwritten share (NaN: no fragment)."""

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


def _init(data: str, seed: int, threads: int = 1) -> None:
    opts = FitOptions(threads=threads, seed=seed)
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


def _fold_record(corpus: Corpus, opts: FitOptions, source: str | None) -> dict[str, Any]:
    """One fold fitted without ``source`` and scored on it (``None``: every page, in sample)."""
    train_docs = {d.sha256 for d in corpus.docs if d.source != source}
    fold = fit_fold(corpus, train_docs, opts)
    train = corpus.pages.where(of_docs(corpus.pages.keys, train_docs))
    test = corpus.pages if source is None else corpus.pages.where(corpus.pages.sources == source)
    sub = corpus.page_lines.of_pages(set(test.keys))
    assert fold.line_model is not None
    by_page = sub.by_page(proba_handwritten(fold.line_model, sub.x)) if sub.pages else {}
    empty = (np.zeros((0, 4)), np.zeros(0))
    probs = {a: proba_handwritten(m, test.x) for a, m in fold.page_models.items()}
    pages = []
    for i, (key, y) in enumerate(zip(test.keys, test.y, strict=True)):
        frags = by_page.get(key, empty)
        share = page_share(frags)
        pages.append(
            {
                "key": key,
                "y": int(y),
                "p": {a: float(v[i]) for a, v in probs.items()},
                "share": None if np.isnan(share) else share,
                "frags": frags,
            }
        )
    return {
        "source": source,
        "pages": pages,
        "rule": fold.rules,
        "mixed": fold.mixed,
        # the detector's original rows, in order (its generated rows follow them)
        "train_keys": list(train.keys),
        "train_y": train.y,
        "train_sources": train.sources,
        "seed": opts.seed,
    }


def _dump_fold(job: tuple[str, Path]) -> str:
    source, out = job
    record = _fold_record(_STATE["corpus"], _STATE["opts"], source)
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


def _weighted_share(weight: Callable[[np.ndarray], np.ndarray], *, soft: bool) -> Share:
    """A page's handwritten share: fragments weighted by ``weight(boxes)``, each counted as
    handwritten when p >= 0.5 (``soft=False``, the shipped rule) or by its p (``soft=True``)."""

    def share(frags: Fragments) -> float:
        boxes, p = frags
        if boxes.shape[0] == 0:
            return float("nan")
        w = weight(np.asarray(boxes, dtype=np.float64))
        total = float(w.sum())
        if total <= 0:
            return 0.0
        return float((w * (p if soft else (p >= 0.5))).sum() / total)

    return share


def _area(b: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0))


SHARES: dict[str, Share | None] = {
    "shipped": None,
    "area-hard": page_share,
    "area-soft": _weighted_share(_area, soft=True),
    "sqrtarea-soft": _weighted_share(lambda b: np.sqrt(_area(b)), soft=True),
    "sqrtarea-hard": _weighted_share(lambda b: np.sqrt(_area(b)), soft=False),
    "count-soft": _weighted_share(lambda b: np.ones(b.shape[0]), soft=True),
    "count-hard": _weighted_share(lambda b: np.ones(b.shape[0]), soft=False),
}
"""Page handwriting shares to compare (``shipped``: each fold's own rule, no refit; the others
refit the fold's verdict rule on its training pages' out-of-fold shares, as ``fit_fold`` does)."""


_LOADED: dict[Path, dict[str, Any]] = {}


def _load(path: Path) -> dict[str, Any]:
    """One fold of the dump, read once per run (every variant and scorer scores it)."""
    if path not in _LOADED:
        with path.open("rb") as fh:
            _LOADED[path] = pickle.load(fh)  # our own dump
    return _LOADED[path]


def _logit_q(q: float) -> float:
    """The detector's ``mixed_logit_q`` of a rule score (:func:`mixed_evidence`'s first column)."""
    return float(mixed_evidence(np.zeros((0, 4)), np.zeros(0), q)[0])


def _refit_rule(rec: dict[str, Any], algorithm: str, share: Share) -> tuple[Any, np.ndarray]:
    """The fold's verdict rule refitted with another share, and every detector row's share."""
    m: MixedTraining = rec["mixed"][algorithm]
    n = len(rec["train_keys"])
    y = np.asarray(rec["train_y"])
    sources = np.asarray(rec["train_sources"])
    p = np.array([inp[0] for inp in m.inputs], dtype=np.float64)
    shares = np.array([share(inp[2]) for inp in m.inputs], dtype=np.float64)
    pure = y != LABEL_CODE["mixed"]
    rule = fit_rule(p[:n][pure], shares[:n][pure], y[pure], source_weights(sources[pure], y[pure]))
    return rule, shares


Scorer = Callable[[float, float | None, Fragments], np.ndarray]
"""(page probability, share, fragments) -> the detector's evidence row of a page."""


def _fold_rule(
    rec: dict[str, Any],
    algorithm: str,
    evidence: Evidence | None,
    share_fn: Share | None,
    opts: FitOptions,
) -> tuple[Any, Any, Scorer]:
    """A fold's verdict rule, its mixed detector and the detector's evidence function.

    Neither variant: the fold's own rule and detector. Another share: the rule refitted on the
    training pages' out-of-fold shares and the detector refitted on the new rule's log-odds.
    Another evidence function: the detector refitted on it.
    """
    # the detector's inner folds are dealt by the procedure's seed
    opts = replace(opts, seed=int(rec.get("seed", opts.seed)))
    rule = rec["rule"][algorithm]
    m: MixedTraining = rec["mixed"][algorithm]
    inputs = m.inputs
    if share_fn is not None:
        rule, shares = _refit_rule(rec, algorithm, share_fn)
        inputs = [
            (p, None if np.isnan(s) else float(s), f)
            for (p, _, f), s in zip(m.inputs, shares, strict=True)
        ]
    if evidence is None and share_fn is None:

        def own(p: float, share: float | None, frags: Any, rule: Any = rule) -> np.ndarray:
            return np.asarray(rule.evidence(p, share, frags))

        return rule, rule.mixed, own
    if evidence is None:
        # the shipped evidence: only its first column (the rule's log-odds) depends on the
        # rule, so the fold's rows are reused with that column recomputed
        old_rule = rec["rule"][algorithm]

        def ev(
            p: float, share: float | None, frags: Any, rule: Any = rule, old: Any = old_rule
        ) -> np.ndarray:
            x = np.asarray(old.evidence(p, share, frags), dtype=np.float64).copy()
            x[0] = _logit_q(rule.score(p, share))
            return x

        x = m.x.copy()
        x[:, 0] = [_logit_q(rule.score(p, s)) for p, s, _ in inputs]
    else:

        def ev(
            p: float, share: float | None, frags: Any, rule: Any = rule, f: Any = evidence
        ) -> np.ndarray:
            return np.asarray(f(frags[0], frags[1], rule.score(p, share)))

        x = np.array([ev(*inp) for inp in inputs])
    detector = MixedTraining(
        x=x,
        is_mixed=m.is_mixed,
        weights=m.weights,
        units=m.units,
        sources=m.sources,
        inputs=inputs,
    ).detector(opts)
    return rule, detector, ev


def _call(
    pg: dict[str, Any],
    algorithm: str,
    fold: tuple[Any, Any, Scorer],
    share_fn: Share | None,
) -> tuple[int, float]:
    """One dumped page's label code under a fold's rule and detector (what :func:`_fold_rule`
    returns), and the detector's score (0 on a page without fragments, never called mixed)."""
    rule, detector, ev = fold
    p_page = pg["p"][algorithm]
    share = pg["share"]
    if share_fn is not None:
        s_new = share_fn(pg["frags"])
        share = None if np.isnan(s_new) else float(s_new)
    label = 1 if rule.score(p_page, share) >= 0.5 else 0
    if not pg["frags"][0].shape[0]:
        return label, 0.0
    s = float(detector.score(ev(p_page, share, pg["frags"]))[0])
    if detector.enabled and s >= detector.threshold:
        label = LABEL_CODE["mixed"]
    return label, s


def score(
    folder: Path,
    variant: str,
    max_false: float,
    unsure: set[str],
    *,
    algorithm: str = "catboost",
    share_name: str = "shipped",
    seed: int = 42,
) -> dict[str, Any]:
    """Macro final accuracy, pure-page recalls, false mixed, mixed found, pooled AUC."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - only here

    evidence = VARIANTS[variant]
    share_fn = SHARES[share_name]
    opts = FitOptions(max_false_mixed=max_false, seed=seed)
    per_source: dict[str, float] = {}
    pooled: list[tuple[bool, float]] = []
    false_mixed = found = pure = mixed = 0
    recall = {0: [0, 0], 1: [0, 0]}
    for path in sorted(folder.glob("*.pkl")):
        rec = _load(path)
        fold = _fold_rule(rec, algorithm, evidence, share_fn, opts)
        right = []
        for pg in rec["pages"]:
            if pg["key"][0] in unsure:
                continue
            label, s = _call(pg, algorithm, fold, share_fn)
            right.append(label == pg["y"])
            pooled.append((pg["y"] == 2, s))
            if pg["y"] == 2:
                mixed += 1
                found += label == 2
            else:
                pure += 1
                false_mixed += label == 2
                recall[pg["y"]][0] += label == pg["y"]
                recall[pg["y"]][1] += 1
        per_source[rec["source"]] = float(np.mean(right)) if right else float("nan")
    is_mixed = np.array([m for m, _ in pooled])
    scores = np.array([s for _, s in pooled])
    pure_scores = np.sort(scores[~is_mixed])
    above = np.array([(pure_scores >= s).sum() for s in scores[is_mixed]])
    typed_recall = recall[0][0] / max(recall[0][1], 1)
    hw_recall = recall[1][0] / max(recall[1][1], 1)
    return {
        "macro": float(np.nanmean(list(per_source.values()))),
        "per_source": per_source,
        "typed_recall": typed_recall,
        "hw_recall": hw_recall,
        "balanced": (typed_recall + hw_recall) / 2,
        "false_mixed": false_mixed,
        "pure": pure,
        "found": found,
        "mixed": mixed,
        "auc": float(roc_auc_score(is_mixed, scores))
        if 0 < is_mixed.sum() < is_mixed.size
        else float("nan"),
        "found_at_3pct": int((above <= int(0.03 * pure)).sum()),
    }


def fit(data: str, out: Path, seed: int) -> None:
    """One fit on every page (the shipped model's procedure), scored on its own pages."""
    _init(data, seed, threads=2)
    record = _fold_record(_STATE["corpus"], _STATE["opts"], None)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        pickle.dump(record, fh)


def insample(path: Path, share_name: str, unsure: set[str], algorithm: str) -> dict[str, Any]:
    """How many sure mixed documents' first pages the model fitted on every page calls mixed.

    What ``tests/test_dev_data.py::test_the_shipped_model_calls_mixed_dev_pages_mixed`` asks of
    the shipped model (at least a fifth), for another page share.
    """
    rec = _load(path)
    share_fn = SHARES[share_name]
    fold = _fold_rule(rec, algorithm, None, share_fn, FitOptions())
    rule, detector, _ = fold
    first = [
        pg
        for pg in rec["pages"]
        if pg["y"] == LABEL_CODE["mixed"] and pg["key"][0] not in unsure and pg["key"][1] == 1
    ]
    called = sum(_call(pg, algorithm, fold, share_fn)[0] == LABEL_CODE["mixed"] for pg in first)
    return {
        "rule": (rule.a, rule.b, rule.c),
        "threshold": detector.threshold,
        "called": called,
        "pages": len(first),
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
    f = sub.add_parser("fit")
    f.add_argument("--data", required=True)
    f.add_argument("--out", required=True, help="a .pkl file")
    f.add_argument("--seed", type=int, default=42)
    i = sub.add_parser("insample")
    i.add_argument("file", help="what fit wrote")
    i.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    i.add_argument("--share", nargs="*", default=["shipped"], choices=list(SHARES))
    i.add_argument("--algorithm", nargs="*", default=["catboost", "svm"])
    s = sub.add_parser("score")
    s.add_argument("folder")
    s.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    s.add_argument("--variant", nargs="*", default=list(VARIANTS))
    s.add_argument("--max-false", type=float, default=0.02)
    s.add_argument(
        "--seed", type=int, default=42, help="the dump's seed (dumps made before it was stored)"
    )
    s.add_argument("--algorithm", nargs="*", default=["catboost", "svm"])
    s.add_argument("--share", nargs="*", default=["shipped"], choices=list(SHARES))
    args = ap.parse_args()
    if args.cmd == "dump":
        dump(args.data, Path(args.out), args.seed, args.jobs, args.sources)
        return 0
    if args.cmd == "fit":
        fit(args.data, Path(args.out), args.seed)
        return 0
    unsure = {doc.sha256 for doc in discover(Path(args.data)).documents if doc.unsure}
    if args.cmd == "insample":
        sys.stdout.write(
            "| scorer | share | rule (a, b, c) | detector threshold | sure mixed pages called "
            "mixed |\n|---|---|---|---|---|\n"
        )
        for algorithm in args.algorithm:
            for share in args.share:
                r = insample(Path(args.file), share, unsure, algorithm)
                a, b, c = r["rule"]
                sys.stdout.write(
                    f"| {algorithm} | {share} | {a:.2f}, {b:.2f}, {c:.2f} | {r['threshold']:.3f} "
                    f"| {r['called']} of {r['pages']} |\n"
                )
        return 0
    sys.stdout.write(
        "| scorer | share | evidence | macro final | balanced (pure) | typed recall "
        "| handwritten recall | false mixed | mixed found | pooled AUC "
        "| found at <= 3 % false |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for algorithm in args.algorithm:
        for share in args.share:
            for name in args.variant:
                r = score(
                    Path(args.folder),
                    name,
                    args.max_false,
                    unsure,
                    algorithm=algorithm,
                    share_name=share,
                    seed=args.seed,
                )
                sys.stdout.write(
                    f"| {algorithm} | {share} | {name} | {r['macro']:.4f} | {r['balanced']:.4f} "
                    f"| {r['typed_recall']:.3f} | {r['hw_recall']:.3f} "
                    f"| {r['false_mixed']} of {r['pure']} | {r['found']} of {r['mixed']} "
                    f"| {r['auc']:.3f} | {r['found_at_3pct']} |\n"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
