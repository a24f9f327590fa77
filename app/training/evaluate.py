"""Evaluate a trained version on any labelled folder or manifest, or run leave-one-source-out."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DatasetError
from app.features.cache import FeatureCache
from app.models.classifiers import proba_handwritten
from app.models.registry import ModelVersion, atomic_write_text
from app.models.verdict import labels_of
from app.training.corpus import (
    LABEL_CODE,
    all_lines,
    build_corpus,
    corpus_jobs,
    page_rows,
    shares_for,
)
from app.training.dataset import discover
from app.training.featurize import ProgressFn, featurize, jobs_for
from app.training.fold import FitOptions
from app.training.loso import final_label_counts, loso_table, run_loso
from app.training.metrics import classification_metrics
from app.training.train import (
    check_loso_sources,
    split_documents,
    write_loso_pages,
)


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
    lines = all_lines(docs, jobs, results)
    line_model = version.line_model
    shares = shares_for(
        rows, lines, partial(proba_handwritten, line_model) if line_model is not None else None
    )
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
        labels = labels_of(rule, p, shares)
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
        robust=True,
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
    summary = run_loso(
        corpus,
        opts,
        workers=workers,
        fullpage=conf or None,
        sources=sources,
        progress=fold_progress,
    )
    summary["data"] = str(data)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        slim = {k: v for k, v in summary.items() if k != "pages"}
        atomic_write_text(out / "loso.json", json.dumps(slim, indent=2, sort_keys=True))
        atomic_write_text(out / "loso.md", loso_table(summary))
        write_loso_pages(out / "loso_pages.csv", summary, docs)
    return summary
