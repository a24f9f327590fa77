"""Per-line features: one vector for every text fragment the layout stage finds.

A fragment is a run of ink on one row with no gap wider than the smearing step (about a text
height): a printed line, a handwritten word group, or a handwritten entry written beside a
printed label on the same row, which stays a fragment of its own so that each gets its own
verdict. The features come from the whole-page layout components (cheap: no extra image pass),
the glyph repetition of the page (:mod:`app.features.glyphs`), and the tesseract confidence of
the fragments that were in the OCR sample (NaN for the others; CatBoost treats NaN as missing).
Boxes are returned in the original page's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.features.glyphs import TWIN_DISTANCE, Glyphs, twin_summary
from app.features.layout import Components, Line, line_fit_rms

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
    "line_glyph_twin_share",
    "line_glyph_twin_dist",
    "line_glyph_eligible",
)


CONTEXT_SOURCES = (
    ("ctx_glyph_twin_share", "line_glyph_twin_share"),
    ("ctx_glyph_twin_dist", "line_glyph_twin_dist"),
    ("ctx_ink_density", "line_ink_density"),
    ("ctx_density", "line_density"),
    ("ctx_baseline_dev", "line_baseline_dev"),
    ("ctx_width_ratio", "line_width_ratio"),
    ("ctx_fill", "line_fill"),
)
CONTEXT_FEATURE_NAMES: tuple[str, ...] = ("ctx_log_height", *(c for c, _ in CONTEXT_SOURCES))
"""Each fragment against the page's median fragment (see :func:`with_page_context`)."""
LINE_MODEL_FEATURES: tuple[str, ...] = LINE_FEATURE_NAMES + CONTEXT_FEATURE_NAMES
"""What the line model reads: a fragment's own features, then its page context."""


def with_page_context(x: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The fragments of ONE page with their page context appended (LINE_MODEL_FEATURES order).

    A fragment's own features say what it looks like; the context says how it differs from the
    page's median fragment: its height (log ratio) and the difference of a few features. An
    entry written beside print is larger, inkier and has no glyph twins where the print around
    it has them, on a page where most fragments are print.

    Args:
        x: (n, len(LINE_FEATURE_NAMES)) features of every fragment of the page.
        boxes: (n, 4) their boxes (x0, y0, x1, y1).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, len(LINE_FEATURE_NAMES))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.full((x.shape[0], len(CONTEXT_FEATURE_NAMES)), np.nan)
    if x.shape[0] == 0:
        return np.hstack([x, out])
    heights = np.log(np.maximum(boxes[:, 3] - boxes[:, 1], 1.0))
    out[:, 0] = heights - np.median(heights)
    for k, (_, name) in enumerate(CONTEXT_SOURCES, 1):
        col = x[:, LINE_FEATURE_NAMES.index(name)]
        known = ~np.isnan(col)
        if known.any():
            out[:, k] = col - np.median(col[known])
    return np.hstack([x, out])


@dataclass(frozen=True)
class LineInfo:
    """One text line: its box in original pixels and its features (LINE_FEATURE_NAMES order)."""

    bbox: tuple[int, int, int, int]
    features: tuple[float, ...]


def _cv(values: np.ndarray) -> float:
    if values.size < 2 or values.mean() <= 0:
        return 0.0
    return float(values.std() / values.mean())


def line_vector(
    comps: Components,
    line: Line,
    ocr: tuple[float, float] | None,
    glyphs: Glyphs | None = None,
) -> list[float]:
    """The feature vector of one line (lengths relative to its median component height)."""
    if line.members.size == 1:
        return _single_vector(comps, line, ocr, glyphs)
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
        baseline = line_fit_rms(centres[core], bottoms[core]) / med_h
    gaps = comps.x0[m][1:] - np.maximum.accumulate(comps.x1[m])[:-1]
    gaps = gaps[gaps > 0].astype(np.float64)
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1))
    q75, q25 = np.percentile(aspect, [75, 25]) if aspect.size > 1 else (0.0, 0.0)
    area = comps.area[m].astype(np.float64)
    box_area = max(1, line.width * line.height)
    conf, wordlike = ocr if ocr is not None else (np.nan, np.nan)
    twin_share, twin_dist, eligible = np.nan, np.nan, np.nan
    if glyphs is not None:
        twin_share, twin_dist = twin_summary(glyphs.distance[m])
        eligible = float(np.mean(glyphs.eligible[m]))
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
        twin_share,
        twin_dist,
        eligible,
    ]


def _single_vector(
    comps: Components,
    line: Line,
    ocr: tuple[float, float] | None,
    glyphs: Glyphs | None,
) -> list[float]:
    """:func:`line_vector` of a one-component fragment (half of a page's fragments).

    The same numbers, without the array statistics that are zero or the value itself for one item.
    """
    i = int(line.members[0])
    h = float(comps.y1[i] - comps.y0[i])
    w = float(comps.x1[i] - comps.x0[i])
    med_h = max(h, 1.0)
    area = float(comps.area[i])
    conf, wordlike = ocr if ocr is not None else (np.nan, np.nan)
    twin_share, twin_dist, eligible = np.nan, np.nan, np.nan
    if glyphs is not None:
        d = float(glyphs.distance[i])
        if not np.isnan(d):
            twin_share, twin_dist = float(d < TWIN_DISTANCE), d
        eligible = float(glyphs.eligible[i])
    return [
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        med_h / max(line.width, 1),
        line.height / med_h,
        float(np.log1p(1)),
        area / max(w * h, 1.0),
        area / max(1, line.width * line.height),
        w / med_h,
        float(conf),
        float(wordlike),
        twin_share,
        twin_dist,
        eligible,
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
    glyphs: Glyphs | None = None,
) -> list[LineInfo]:
    """A LineInfo for every text line; ``ocr_segments`` are the OCR-sampled segments' figures.

    ``page_box`` maps a layout box to the page's own pixels (undoing scale and deskew).
    """
    out = []
    for ln in lines:
        bbox = page_box((ln.x0, ln.y0, ln.x1, ln.y1))
        vector = line_vector(comps, ln, _ocr_for(ln, ocr_segments), glyphs)
        out.append(LineInfo(bbox=bbox, features=tuple(vector)))
    return out
