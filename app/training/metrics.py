"""Metrics with bootstrap intervals, per-source breakdowns and McNemar's test."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest, rankdata
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_fscore_support,
)

CLASS_NAMES = ("typed", "handwritten")


def fast_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC from ranks (Mann-Whitney U), ties averaged; None with one class only."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean of the recall of each class; None with one class only."""
    if not (y == 1).any() or not (y == 0).any():
        return None
    return float((np.mean(pred[y == 1] == 1) + np.mean(pred[y == 0] == 0)) / 2)


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, *, seed: int = 0, n: int = 1000
) -> dict[str, list[float] | None]:
    """95 % percentile intervals of accuracy, balanced accuracy and ROC AUC (pages resampled)."""
    rng = np.random.default_rng(seed)
    pred = (p >= 0.5).astype(int)
    acc, bal, auc = [], [], []
    for _ in range(n):
        idx = rng.integers(0, y.size, y.size)
        yy, pp, dd = y[idx], p[idx], pred[idx]
        acc.append(float(np.mean(yy == dd)))
        b = balanced_accuracy(yy, dd)
        a = fast_auc(yy, pp)
        if b is not None and a is not None:
            bal.append(b)
            auc.append(a)

    def ci(v: list[float]) -> list[float] | None:
        return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None

    return {"accuracy": ci(acc), "balanced_accuracy": ci(bal), "roc_auc": ci(auc)}


def classification_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    sources: np.ndarray | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Every metric of one scorer on one test set (y: 1 = handwritten; p: probability)."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    pred = (p >= 0.5).astype(int)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0
    )
    out: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "roc_auc": fast_auc(y, p),
        "brier": float(brier_score_loss(y, p, pos_label=1)) if y.size else None,
        "per_class": {
            name: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(CLASS_NAMES)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "ci95": bootstrap_ci(y, p, seed=seed, n=bootstrap) if bootstrap else None,
    }
    if sources is not None:
        out["per_source"] = {
            str(s): {
                "n": int((sources == s).sum()),
                "accuracy": float(np.mean(pred[sources == s] == y[sources == s])),
            }
            for s in sorted(set(sources.tolist()))
        }
    return out


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float | int]:
    """Exact McNemar test: do two classifiers err on different pages more than chance says?"""
    a_ok = pred_a == y
    b_ok = pred_b == y
    only_a = int(np.sum(a_ok & ~b_ok))
    only_b = int(np.sum(~a_ok & b_ok))
    n = only_a + only_b
    pvalue = float(binomtest(only_a, n, 0.5).pvalue) if n > 0 else 1.0
    return {"a_right_b_wrong": only_a, "a_wrong_b_right": only_b, "p_value": pvalue}
