"""Pages -> verdicts with a loaded model version."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from app.documents import Page
from app.features import FEATURE_NAMES, OcrSettings, page_features
from app.models.registry import ModelVersion

LABEL_HANDWRITTEN = "handwritten"
LABEL_TYPED = "typed"
LABEL_MIXED = "mixed"
LABEL_EMPTY = "empty"


@dataclass(frozen=True)
class PageVerdict:
    """The verdict on one page."""

    page: int
    label: str
    confidence: float
    p_handwritten: float
    width: int
    height: int
    dpi: float | None
    elapsed_ms: float
    empty: bool


def _featurise(args: tuple[np.ndarray, OcrSettings]) -> tuple[list[float], float]:
    image, ocr = args
    t0 = time.perf_counter()
    feats = page_features(image, ocr)
    return [feats[n] for n in FEATURE_NAMES], 1000 * (time.perf_counter() - t0)


def classify_pages(
    pages: Sequence[Page],
    version: ModelVersion,
    *,
    algorithm: str | None = None,
    ocr: OcrSettings | None = None,
    executor: Executor | None = None,
) -> list[PageVerdict]:
    """Classify pages (in parallel when an executor is given), order preserved."""
    ocr = ocr or OcrSettings()
    args = [(p.image, ocr) for p in pages]
    rows = list(executor.map(_featurise, args)) if executor else [_featurise(a) for a in args]
    if not rows:
        return []
    x = np.array([r[0] for r in rows], dtype=np.float64)
    proba = version.predict(x, algorithm)
    empty_col = FEATURE_NAMES.index("empty")
    verdicts = []
    for page, (feats, ms), p in zip(pages, rows, proba, strict=True):
        empty = feats[empty_col] > 0.5
        label = LABEL_HANDWRITTEN if p >= 0.5 else LABEL_TYPED
        verdicts.append(
            PageVerdict(
                page=page.number,
                label=LABEL_EMPTY if empty else label,
                confidence=float(max(p, 1 - p)),
                p_handwritten=float(p),
                width=page.width,
                height=page.height,
                dpi=page.dpi,
                elapsed_ms=ms,
                empty=bool(empty),
            )
        )
    return verdicts


def document_label(verdicts: Sequence[PageVerdict]) -> str:
    """``handwritten`` or ``typed`` when every non-empty page agrees, else ``mixed``."""
    labels = {v.label for v in verdicts if not v.empty}
    if not labels:
        return LABEL_EMPTY
    if len(labels) == 1:
        return labels.pop()
    return LABEL_MIXED
