"""Evaluate a trained version on any labelled folder or manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DatasetError
from app.features.cache import FeatureCache
from app.models.registry import ModelVersion, atomic_write_text
from app.training.dataset import discover
from app.training.featurize import ProgressFn, featurize, jobs_for
from app.training.metrics import classification_metrics
from app.training.train import _rows, split_documents


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

    With ``split="test"`` only the documents the version's own training split held out are used
    (same seed and test size), which reproduces the training report's test metrics.
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
    rows = _rows(docs, jobs, results)
    if rows.y.size == 0:
        raise DatasetError(f"no page of {data} could be evaluated")
    skipped = dataset.skipped + failures
    summary: dict[str, Any] = {
        "model": version.id,
        "data": str(data),
        "split": split,
        "pages": int(rows.y.size),
        "by_label": {
            "handwritten": int(rows.y.sum()),
            "typed": int((rows.y == 0).sum()),
        },
        "skipped": len(skipped),
        "skipped_reasons": _reasons(skipped),
        "algorithms": {},
    }
    for algo in version.models:
        p = version.predict(rows.x, algo)
        summary["algorithms"][algo] = classification_metrics(rows.y, p, sources=rows.sources)
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


def summary_table(summary: dict[str, Any]) -> str:
    """A plain-text table of an evaluation summary."""
    lines = [
        f"model {summary['model']} on {summary['data']} ({summary['split']}): "
        f"{summary['pages']} pages {summary['by_label']}, {summary['skipped']} skipped "
        f"{summary['skipped_reasons'] or ''}".rstrip(),
        "",
        f"{'algorithm':<10} {'accuracy':>9} {'bal.acc':>8} {'ROC AUC':>8} {'Brier':>7}  confusion",
    ]
    for algo, m in summary["algorithms"].items():

        def f(v: float | None) -> str:
            return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

        lines.append(
            f"{algo:<10} {f(m['accuracy']):>9} {f(m['balanced_accuracy']):>8} "
            f"{f(m['roc_auc']):>8} {f(m['brier']):>7}  {m['confusion_matrix']}"
        )
    return "\n".join(lines) + "\n"
