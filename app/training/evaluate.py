"""Evaluate a trained version on any labelled folder or manifest, or run leave-one-source-out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DatasetError
from app.features import FEATURE_NAMES
from app.features.cache import FeatureCache
from app.features.lines import LINE_MODEL_FEATURES
from app.models.registry import ModelVersion, atomic_write_text
from app.models.verdict import labels_of, page_share
from app.training.corpus import (
    LABEL_CODE,
    Corpus,
    all_lines,
    build_corpus,
    corpus_jobs,
    page_rows,
    without_features,
)
from app.training.dataset import Document, discover
from app.training.featurize import ProgressFn, featurize, jobs_for
from app.training.fold import FitOptions
from app.training.loso import ablation_table, final_label_counts, loso_table, run_loso
from app.training.metrics import classification_metrics
from app.training.train import (
    check_loso_sources,
    split_documents,
    write_loso_pages,
)
from app.training.where import choose_pairs, evaluate_where, filled_jobs, where_table


def evaluate(
    data: Path,
    version: ModelVersion,
    *,
    split: str = "all",
    out: Path | None = None,
    cache_dir: Path | None = None,
    workers: int = 1,
    lang: str = "eng",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Metrics of every algorithm of ``version`` on the labelled documents of ``data``.

    Page metrics (handwritten vs typed, on pure pages) and final-label metrics (what the API
    returns, ``mixed`` included; a pure page called mixed is wrong). With ``split="test"`` only
    the documents the version's own training split held out are used (same seed and test size).
    """
    dataset = discover(data)
    docs = dataset.documents
    if split == "test":
        report = json.loads((version.path / "report.json").read_text(encoding="utf-8"))
        cfg = report["config"]
        _, docs = split_documents(docs, test_size=cfg["test_size"], seed=cfg["seed"])
    jobs = jobs_for(docs, "orig", lang=lang, timeout=30.0)
    results, failures = featurize(
        jobs, cache=FeatureCache(cache_dir), workers=workers, progress=progress
    )
    rows = page_rows(docs, jobs, results)
    if rows.y.size == 0:
        raise DatasetError(f"no page of {data} could be evaluated")
    lines = all_lines(docs, jobs, results).of_pages(set(rows.keys))
    line_p = version.predict_lines(lines.x) if lines.pages else None
    by_page = lines.by_page(line_p) if line_p is not None else {}
    frags = [by_page.get(k) for k in rows.keys]
    shares = np.array([page_share(f) for f in frags], dtype=np.float64)
    pure = rows.y < 2
    skipped = dataset.skipped + failures
    summary: dict[str, Any] = {
        "model": version.id,
        "data": str(data),
        "split": split,
        "pages": int(rows.y.size),
        "by_label": {name: int((rows.y == code).sum()) for name, code in LABEL_CODE.items()},
        "skipped": len(skipped),
        "skipped_reasons": _reasons(skipped),
        "algorithms": {},
    }
    for algo in version.models:
        p = version.predict(rows.x, algo)
        rule = version.verdict_rule(algo)
        labels = labels_of(rule, p, shares, frags)
        metrics = (
            classification_metrics(rows.y[pure], p[pure], sources=rows.sources[pure])
            if pure.any()
            else {}
        )
        metrics["final_label"] = final_label_counts(rows.y, labels)
        summary["algorithms"][algo] = metrics
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "report.json", json.dumps(summary, indent=2))
        atomic_write_text(out / "report.md", summary_table(summary))
    return summary


def _reasons(skipped: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, reason in skipped:
        key = reason.split("'")[0].strip() if "label" in reason else reason
        counts[key] = counts.get(key, 0) + 1
    return counts


def _f(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def summary_table(summary: dict[str, Any]) -> str:
    """A plain-text table of an evaluation summary."""
    lines = [
        f"model {summary['model']} on {summary['data']} ({summary['split']}): "
        f"{summary['pages']} pages {summary['by_label']}, {summary['skipped']} skipped "
        f"{summary['skipped_reasons'] or ''}".rstrip(),
        "",
        f"{'algorithm':<10} {'accuracy':>9} {'bal.acc':>8} {'ROC AUC':>8} {'Brier':>7} "
        f"{'final':>6} {'false mixed':>11} {'mixed ok':>8}  confusion",
    ]
    for algo, m in summary["algorithms"].items():
        fl = m["final_label"]
        lines.append(
            f"{algo:<10} {_f(m.get('accuracy')):>9} {_f(m.get('balanced_accuracy')):>8} "
            f"{_f(m.get('roc_auc')):>8} {_f(m.get('brier')):>7} {_f(fl['accuracy']):>6} "
            f"{fl['false_mixed']:>11} {fl['mixed_called_mixed']:>4}/{fl['mixed_pages']:<3}"
            f"  {m.get('confusion_matrix', '')}"
        )
    return "\n".join(lines) + "\n"


def loso_corpus(
    data: Path,
    *,
    opts: FitOptions,
    cache_dir: Path | None,
    workers: int,
    lang: str,
    fullpage: bool,
    sources: list[str] | None,
    progress: ProgressFn | None,
    robust: bool = True,
) -> tuple[list[Document], Corpus, dict[tuple[str, int], float]]:
    """The documents, the corpus and the full-page confidences a LOSO run needs.

    Public for the scripts that re-run parts of a leave-one-source-out evaluation
    (``scripts/mixed_lab.py``) on exactly the corpus the evaluation reads.
    """
    dataset = discover(data)
    docs = dataset.documents
    check_loso_sources(docs)
    unknown = sorted(set(sources or []) - {d.source for d in docs})
    if unknown:
        raise DatasetError(f"unknown source(s): {', '.join(unknown)}")
    jobs = corpus_jobs(
        docs,
        lang=lang,
        timeout=30.0,
        augment=opts.augment,
        robust=robust,
        composites=opts.composites,
    )
    fp_docs = [d for d in docs if d.label != "mixed"] if fullpage else []
    fp_jobs = jobs_for(fp_docs, "fullpage", lang=lang, timeout=30.0)
    all_jobs = [j for v in jobs.values() for j in v] + fp_jobs
    results, _failures = featurize(
        all_jobs, cache=FeatureCache(cache_dir), workers=workers, progress=progress
    )
    corpus = build_corpus(docs, jobs, results)
    conf = {
        (d.sha256, int(page["page"])): float(page["features"]["fullpage_conf"])
        for d, j in zip(fp_docs, fp_jobs, strict=True)
        for page in results.get(j, [])
    }
    return docs, corpus, conf


def loso_ablation(
    data: Path,
    *,
    word: str,
    opts: FitOptions,
    cache_dir: Path | None,
    workers: int = 1,
    lang: str = "eng",
    sources: list[str] | None = None,
    out: Path | None = None,
    progress: ProgressFn | None = None,
    fold_progress: ProgressFn | None = None,
) -> str:
    """Leave-one-source-out with and without the features named with ``word``; the table.

    Writes ``loso.json``/``loso.md`` of both runs (``with/``, ``without/``) and
    ``ablation.md`` to ``out`` when given.
    """
    docs, corpus, _ = loso_corpus(
        data,
        opts=opts,
        cache_dir=cache_dir,
        workers=workers,
        lang=lang,
        fullpage=False,
        sources=sources,
        progress=progress,
    )
    if not any(word in n for n in FEATURE_NAMES + LINE_MODEL_FEATURES):
        raise DatasetError(f"no page or line feature is named with {word!r}")
    runs = {}
    for name, variant in (("with", corpus), ("without", without_features(corpus, word))):
        runs[name] = run_loso(
            variant, opts, workers=workers, sources=sources, progress=fold_progress
        )
        if out is not None:
            _write_loso(out / name, runs[name], docs)
    table = ablation_table(runs["with"], runs["without"], f"features named '{word}'")
    if out is not None:
        atomic_write_text(out / "ablation.md", table)
    return table


def _write_loso(out: Path, summary: dict[str, Any], docs: list[Document]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    slim = {k: v for k, v in summary.items() if k != "pages"}
    atomic_write_text(out / "loso.json", json.dumps(slim, indent=2, sort_keys=True))
    atomic_write_text(out / "loso.md", loso_table(summary))
    write_loso_pages(out / "loso_pages.csv", summary, docs)


def where_evaluate(
    data: Path,
    *,
    pairs: int,
    cache_dir: Path | None,
    workers: int = 1,
    lang: str = "eng",
    per_pair: int = 6,
    out: Path | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Line boxes against truth on generated filled-in pages (:mod:`app.training.where`)."""
    opts = FitOptions(threads=1)
    docs, corpus, _ = loso_corpus(
        data,
        opts=opts,
        cache_dir=cache_dir,
        workers=workers,
        lang=lang,
        fullpage=False,
        sources=None,
        progress=progress,
        robust=False,
    )
    chosen = choose_pairs(docs, pairs)
    if not chosen:
        raise DatasetError("--where needs typed sources and handwritten sources without frame")
    jobs = filled_jobs(docs, chosen, per_pair=per_pair, lang=lang, timeout=30.0)
    flat = [j for v in jobs.values() for j in v]
    results, _failures = featurize(
        flat, cache=FeatureCache(cache_dir), workers=workers, progress=progress
    )
    result = evaluate_where(corpus, jobs, results, opts)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "where.json", json.dumps(result, indent=2))
        atomic_write_text(out / "where.md", where_table(result))
    return result


def loso_evaluate(
    data: Path,
    *,
    opts: FitOptions,
    cache_dir: Path | None,
    workers: int = 1,
    lang: str = "eng",
    fullpage: bool = False,
    sources: list[str] | None = None,
    out: Path | None = None,
    progress: ProgressFn | None = None,
    fold_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Leave-one-source-out on ``data`` from the feature cache (extracting what is missing).

    ``sources`` limits which sources are left out in turn (every fold still trains on all the
    others). Writes ``loso.json`` and ``loso.md`` to ``out`` when given.
    """
    docs, corpus, conf = loso_corpus(
        data,
        opts=opts,
        cache_dir=cache_dir,
        workers=workers,
        lang=lang,
        fullpage=fullpage,
        sources=sources,
        progress=progress,
    )
    summary = run_loso(
        corpus,
        opts,
        workers=workers,
        fullpage=conf or None,
        sources=sources,
        progress=fold_progress,
    )
    summary["data"] = str(data)
    summary["options"] = {
        "seed": opts.seed,
        "clean_lines": opts.clean_lines,
        "composites": opts.composites,
    }
    if out is not None:
        _write_loso(out, summary, docs)
    return summary
