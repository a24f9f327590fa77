"""Per-line features: one vector for every text line the layout stage finds.

They are computed from the whole-page layout components (cheap: no extra image pass), plus the
tesseract confidence of the lines that were in the OCR sample (NaN for the others; CatBoost treats
NaN as missing). Boxes are returned in the original page's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.features.layout import Components, Line

LINE_FEATURE_NAMES: tuple[str, ...] = (
    "line_height_cv",
    "line_width_cv",
    "line_aspect_spread",
    "line_baseline_dev",
    "line_gap_cv",
    "line_density",
    "line_height_ratio",
    "line_log_comps",
    "line_fill",
    "line_ink_density",
    "line_width_ratio",
    "line_ocr_conf",
    "line_ocr_wordlike",
)


@dataclass(frozen=True)
class LineInfo:
    """One text line: its box in original pixels and its features (LINE_FEATURE_NAMES order)."""

    bbox: tuple[int, int, int, int]
    features: tuple[float, ...]

    @property
    def area(self) -> int:
        """Box area in original pixels."""
        return max(0, self.bbox[2] - self.bbox[0]) * max(0, self.bbox[3] - self.bbox[1])


def _cv(values: np.ndarray) -> float:
    if values.size < 2 or values.mean() <= 0:
        return 0.0
    return float(values.std() / values.mean())


def line_vector(comps: Components, line: Line, ocr: tuple[float, float] | None) -> list[float]:
    """The feature vector of one line (lengths relative to its median component height)."""
    m = line.members[np.argsort(comps.x0[line.members], kind="stable")]
    h = comps.height[m]
    w = comps.width[m]
    med_h = float(np.median(h)) if h.size else 1.0
    med_h = max(med_h, 1.0)
    bottoms = comps.y1[m].astype(np.float64)
    centres = (comps.x0[m] + comps.x1[m]) / 2.0
    core = (h >= 0.5 * med_h) & (h <= 1.5 * med_h)
    baseline = 0.0
    if core.sum() >= 3 and np.ptp(centres[core]) > 0:
        x = centres[core] - centres[core].mean()
        coef = np.polyfit(x, bottoms[core], 1)
        baseline = float(np.sqrt(np.mean((bottoms[core] - np.polyval(coef, x)) ** 2)) / med_h)
    gaps = comps.x0[m][1:] - np.maximum.accumulate(comps.x1[m])[:-1]
    gaps = gaps[gaps > 0].astype(np.float64)
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1))
    q75, q25 = np.percentile(aspect, [75, 25]) if aspect.size > 1 else (0.0, 0.0)
    area = comps.area[m].astype(np.float64)
    box_area = max(1, line.width * line.height)
    conf, wordlike = ocr if ocr is not None else (np.nan, np.nan)
    return [
        _cv(h),
        _cv(w),
        float(q75 - q25),
        baseline,
        _cv(gaps),
        float(m.size) * med_h / max(line.width, 1),
        line.height / med_h,
        float(np.log1p(m.size)),
        float(np.median(area / np.maximum(w * h, 1))),
        float(area.sum() / box_area),
        float(np.median(w) / med_h),
        float(conf),
        float(wordlike),
    ]


def _ocr_for(
    line: Line, ocr_segments: list[tuple[Line, tuple[float, float]]]
) -> tuple[float, float] | None:
    """Mean OCR figures of the OCR-sampled segments whose centre lies inside ``line``."""
    inside = [
        v
        for seg, v in ocr_segments
        if line.x0 <= (seg.x0 + seg.x1) / 2 <= line.x1
        and line.y0 <= (seg.y0 + seg.y1) / 2 <= line.y1
    ]
    if not inside:
        return None
    return float(np.mean([v[0] for v in inside])), float(np.mean([v[1] for v in inside]))


def line_infos(
    comps: Components,
    lines: list[Line],
    page_box: Callable[[tuple[float, float, float, float]], tuple[int, int, int, int]],
    ocr_segments: list[tuple[Line, tuple[float, float]]],
) -> list[LineInfo]:
    """A LineInfo for every text line; ``ocr_segments`` are the OCR-sampled segments' figures.

    ``page_box`` maps a layout box to the page's own pixels (undoing scale and deskew).
    """
    out = []
    for ln in lines:
        bbox = page_box((ln.x0, ln.y0, ln.x1, ln.y1))
        vector = line_vector(comps, ln, _ocr_for(ln, ocr_segments))
        out.append(LineInfo(bbox=bbox, features=tuple(vector)))
    return out
