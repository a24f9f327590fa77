"""Pages -> verdicts with a loaded model version: page label, line verdicts, handwritten share.

The page label comes from the version's verdict rule (:mod:`app.models.verdict`): ``mixed`` when
typed and handwritten lines each hold a substantial share of the text-line area, otherwise
handwritten or typed from the page probability and the handwritten share together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from app.documents import Page
from app.errors import WorkerCrashedError
from app.features import FEATURE_NAMES, OcrSettings, analyse_page
from app.features.lines import LineInfo
from app.models.registry import ModelVersion
from app.models.verdict import LABEL_HANDWRITTEN, LABEL_MIXED, LABEL_TYPED, VerdictRule

LABEL_EMPTY = "empty"


@dataclass(frozen=True)
class LineVerdict:
    """One text line: its box in the original page's pixels, label and probability."""

    bbox: tuple[int, int, int, int]
    label: str
    p_handwritten: float


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
    handwritten_share: float | None = None
    lines: list[LineVerdict] = field(default_factory=list)
    orientation: int = 0
    skew: float = 0.0


def _featurise(
    args: tuple[np.ndarray, OcrSettings],
) -> tuple[list[float], list[LineInfo], float, tuple[int, float]]:
    image, ocr = args
    t0 = time.perf_counter()
    analysis = analyse_page(image, ocr)
    feats = [analysis.features[n] for n in FEATURE_NAMES]
    turned = (analysis.orientation, analysis.skew)
    return feats, analysis.line_infos, 1000 * (time.perf_counter() - t0), turned


def final_label(p_page: float, share: float | None, rule: VerdictRule) -> str:
    """The page label from the page probability and the handwritten share (see module doc)."""
    return rule.label(p_page, share)


def _lines(
    version: ModelVersion, infos: list[LineInfo]
) -> tuple[list[LineVerdict], float | None]:
    if not infos:
        return [], None
    x = np.array([i.features for i in infos], dtype=np.float64)
    p = version.predict_lines(x)
    if p is None:
        return [], None
    verdicts = [
        LineVerdict(
            bbox=i.bbox,
            label=LABEL_HANDWRITTEN if q >= 0.5 else LABEL_TYPED,
            p_handwritten=float(q),
        )
        for i, q in zip(infos, p, strict=True)
    ]
    areas = np.array([i.area for i in infos], dtype=np.float64)
    total = float(areas.sum())
    share = float(areas[p >= 0.5].sum() / total) if total > 0 else 0.0
    return verdicts, share


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
    try:
        rows = list(executor.map(_featurise, args)) if executor else [_featurise(a) for a in args]
    except BrokenProcessPool as e:
        raise WorkerCrashedError(
            "a worker process died while reading this document (killed, out of memory, or a "
            "crash in the OCR engine); the workers are restarted: retry the request"
        ) from e
    if not rows:
        return []
    x = np.array([r[0] for r in rows], dtype=np.float64)
    proba = version.predict(x, algorithm)
    rule = version.verdict_rule(algorithm)
    empty_col = FEATURE_NAMES.index("empty")
    verdicts = []
    for page, (feats, infos, ms, (orientation, skew)), p in zip(pages, rows, proba, strict=True):
        empty = feats[empty_col] > 0.5
        lines, share = ([], None) if empty else _lines(version, infos)
        label = LABEL_EMPTY if empty else final_label(float(p), share, rule)
        q = rule.score(float(p), share)
        verdicts.append(
            PageVerdict(
                page=page.number,
                label=label,
                confidence=float(max(q, 1 - q)),
                p_handwritten=float(q),
                width=page.width,
                height=page.height,
                dpi=page.dpi,
                elapsed_ms=ms,
                empty=bool(empty),
                handwritten_share=share,
                lines=lines,
                orientation=orientation,
                skew=skew,
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
