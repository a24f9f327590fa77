"""The line model: a verdict for every text line, the handwritten share, and the mixed band.

Honest line labels come from IAM forms: lines above the handwritten body (the printed header) are
typed and lines inside it handwritten: same page, same scanner, same resolution, so the only
difference is the writing. Lines below the body (the "Name:" line and signatures) are left out.
Every other document's lines take the document's label: FUNSD's handwritten fill-ins are
therefore label noise among its "typed" lines, which is why line metrics are reported per source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from catboost import CatBoostClassifier
from sklearn.model_selection import StratifiedGroupKFold

from app.features.lines import LINE_FEATURE_NAMES
from app.models.classifiers import make_model
from app.training.dataset import Document
from app.training.featurize import Job
from app.training.metrics import classification_metrics
from app.training.rows import concat_rows

LINE_PARAMS: dict[str, Any] = {"depth": 6, "learning_rate": 0.05, "iterations": 400}
MIXED_BOUNDS = (0.2, 0.5)


@dataclass
class LineRows:
    """Line feature rows with labels, groups, sources, areas and the page each belongs to."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    areas: np.ndarray
    pages: list[tuple[str, int]]

    def extend(self, other: LineRows, *, page_prefix: str) -> LineRows:
        """These rows followed by ``other``'s, whose page keys get ``page_prefix``."""
        renamed = replace(other, pages=[(page_prefix + k[0], k[1]) for k in other.pages])
        return concat_rows(self, renamed)


def line_rows(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> LineRows:
    """Labelled line rows of the given documents (see the module docstring for the labels)."""
    n = 4 + len(LINE_FEATURE_NAMES)
    x, y, groups, sources, areas, pages = [], [], [], [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            band = page.get("body_band")
            for ln in page.get("lines", []):
                if len(ln) != n:
                    continue
                x0, y0, x1, y1 = ln[:4]
                if doc.source.startswith("iam"):
                    if not band:
                        continue
                    centre = (y0 + y1) / 2
                    if centre > band[1]:
                        continue
                    label = int(centre >= band[0])
                else:
                    label = int(doc.label == "handwritten")
                x.append([np.nan if v is None else float(v) for v in ln[4:]])
                y.append(label)
                groups.append(doc.group)
                sources.append(doc.source)
                areas.append(max(0, x1 - x0) * max(0, y1 - y0))
                pages.append((doc.sha256, int(page["page"])))
    return LineRows(
        x=np.array(x, dtype=np.float64).reshape(-1, len(LINE_FEATURE_NAMES)),
        y=np.array(y, dtype=int),
        groups=np.array(groups),
        sources=np.array(sources),
        areas=np.array(areas, dtype=np.float64),
        pages=pages,
    )


def make_line_model(seed: int, threads: int) -> CatBoostClassifier:
    """CatBoost: it takes the NaN of lines that were not in the OCR sample as missing values."""
    model: CatBoostClassifier = make_model("catboost", LINE_PARAMS, seed=seed, threads=threads)
    return model


def out_of_fold(rows: LineRows, seed: int, threads: int) -> np.ndarray:
    """Probabilities of each training line from a model that did not see its group."""
    p = np.full(rows.y.size, np.nan)
    n_groups = min(len(set(rows.groups[rows.y == k])) for k in (0, 1))
    folds = StratifiedGroupKFold(n_splits=max(2, min(4, n_groups)), shuffle=True, random_state=seed)
    for tr, va in folds.split(rows.x, rows.y, rows.groups):
        model = make_line_model(seed, threads)
        model.fit(rows.x[tr], rows.y[tr])
        p[va] = model.predict_proba(rows.x[va])[:, 1]
    return p


def page_shares(rows: LineRows, p: np.ndarray) -> dict[tuple[str, int], float]:
    """Handwritten share of each page's line area, from line probabilities ``p``."""
    total: dict[tuple[str, int], float] = {}
    hand: dict[tuple[str, int], float] = {}
    for key, area, prob in zip(rows.pages, rows.areas, p, strict=True):
        total[key] = total.get(key, 0.0) + area
        hand[key] = hand.get(key, 0.0) + (area if prob >= 0.5 else 0.0)
    return {k: hand[k] / total[k] if total[k] > 0 else 0.0 for k in total}


def mixed_band(
    shares: dict[tuple[str, int], float], page_labels: dict[tuple[str, int], int]
) -> tuple[float, float]:
    """(L, H): a typed page with share >= L, or a handwritten one with share <= H, is mixed.

    L is the 99th percentile of the share on typed training pages, H the 1st percentile on
    handwritten ones (out-of-fold shares): a page is called mixed only when its share is beyond
    what (almost) every training page of its class showed. Both are clamped to [0.2, 0.5] so that
    neither label can stand beside a share that contradicts it.
    """
    typed = [s for k, s in shares.items() if page_labels.get(k) == 0]
    hand = [s for k, s in shares.items() if page_labels.get(k) == 1]
    lo, hi = MIXED_BOUNDS
    low = float(np.clip(np.percentile(typed, 99), lo, hi)) if typed else hi
    high = float(np.clip(np.percentile(hand, 1), lo, hi)) if hand else lo
    return low, high


def line_report(rows: LineRows, p: np.ndarray, seed: int) -> dict[str, Any]:
    """Line metrics on all test lines and per source."""
    out: dict[str, Any] = {
        "all": classification_metrics(rows.y, p, sources=rows.sources, seed=seed, bootstrap=300)
    }
    for source in sorted(set(rows.sources.tolist())):
        sel = rows.sources == source
        out[source] = classification_metrics(rows.y[sel], p[sel], seed=seed, bootstrap=300)
    return out
