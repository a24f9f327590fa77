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
    """The feature vector of one line (lengths relative to its median component height).

    The definition, one fragment at a time; the feature stage computes all of a page's at once
    with :func:`line_vectors`, which a test holds to the same numbers.
    """
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


def _group_starts(seg: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal values in a sorted group-id array."""
    return np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])


def _sorted_within(values: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """``values`` sorted inside each group of ``seg`` (groups contiguous and in order)."""
    return values[np.lexsort((values, seg))]


def _group_quantile(
    ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float
) -> np.ndarray:
    """``np.percentile(group, q)`` of every group of ``ordered`` (each group sorted), exactly.

    numpy's default (linear) method, with its interpolation written the same way (from the
    nearer end), so the values are numpy's to the last bit.
    """
    pos = q / 100.0 * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    t = pos - lo
    a = ordered[starts + lo]
    b = ordered[starts + hi]
    diff = b - a
    return np.asarray(np.where(t >= 0.5, b - diff * (1 - t), a + diff * t))


def _group_median(ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.median`` of every group of ``ordered`` (each group sorted)."""
    lo = ordered[starts + (counts - 1) // 2]
    hi = ordered[starts + counts // 2]
    return np.asarray(np.where(counts % 2 == 1, lo, (lo + hi) / 2.0))


def _group_mean(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.asarray(np.add.reduceat(values, starts) / counts)


def _group_cv(values: np.ndarray, seg: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """:func:`_cv` of each of ``n`` groups (0 for fewer than two values or a mean <= 0).

    Groups may be empty: ``seg`` gives each value's group and ``starts`` the first value of each
    non-empty one.
    """
    out = np.zeros(n)
    if values.size == 0:
        return out
    counts = np.diff(np.r_[starts, values.size])
    ids = seg[starts]
    mean = _group_mean(values, starts, counts)
    dev = values - np.repeat(mean, counts)
    std = np.sqrt(_group_mean(dev * dev, starts, counts))
    ok = (counts >= 2) & (mean > 0)
    out[ids[ok]] = std[ok] / mean[ok]
    return out


def line_vectors(
    comps: Components,
    lines: list[Line],
    ocr: list[tuple[float, float] | None],
    glyphs: Glyphs | None = None,
) -> np.ndarray:
    """:func:`line_vector` of every fragment at once, as an (n, 16) array.

    The same numbers (to floating-point rounding in the sums) computed with array operations over
    all fragments instead of a few dozen numpy calls per fragment: a page has a hundred or more
    fragments and the calls' overhead was most of the line stage's time.
    """
    n = len(lines)
    out = np.zeros((n, len(LINE_FEATURE_NAMES)))
    if n == 0:
        return out
    sizes = np.array([ln.members.size for ln in lines], dtype=np.int64)
    multi = np.flatnonzero(sizes > 1)
    for i in np.flatnonzero(sizes == 1):
        out[i] = _single_vector(comps, lines[i], ocr[i], glyphs)
    if multi.size == 0:
        return out
    # members of the multi-component fragments, each fragment's sorted left to right
    seg = np.repeat(np.arange(multi.size), sizes[multi])
    members = np.concatenate([lines[i].members for i in multi])
    order = np.lexsort((comps.x0[members], seg))
    m = members[order]
    counts = sizes[multi]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    h = comps.height[m]
    w = comps.width[m]
    med_h = np.maximum(_group_median(_sorted_within(h, seg), starts, counts), 1.0)
    med_rep = np.repeat(med_h, counts)
    x0 = comps.x0[m]
    x1 = comps.x1[m]
    bottoms = comps.y1[m].astype(np.float64)
    centres = (x0 + x1) / 2.0
    box_w = np.array([lines[i].width for i in multi], dtype=np.float64)
    box_h = np.array([lines[i].height for i in multi], dtype=np.float64)
    k = multi.size
    res = np.zeros((k, len(LINE_FEATURE_NAMES)))
    res[:, 0] = _group_cv(h, seg, starts, k)
    res[:, 1] = _group_cv(w, seg, starts, k)
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1))
    ordered = _sorted_within(aspect, seg)
    res[:, 2] = _group_quantile(ordered, starts, counts, 75) - _group_quantile(
        ordered, starts, counts, 25
    )
    # baseline: the straight line through the bottoms of the letter-sized components
    core = (h >= 0.5 * med_rep) & (h <= 1.5 * med_rep)
    cseg = seg[core]
    if cseg.size:
        cstarts = _group_starts(cseg)
        ccounts = np.diff(np.r_[cstarts, cseg.size])
        ids = cseg[cstarts]
        cx = centres[core]
        cy = bottoms[core]
        spread = np.maximum.reduceat(cx, cstarts) - np.minimum.reduceat(cx, cstarts)
        xc = cx - np.repeat(_group_mean(cx, cstarts, ccounts), ccounts)
        yc = cy - np.repeat(_group_mean(cy, cstarts, ccounts), ccounts)
        sxx = np.add.reduceat(xc * xc, cstarts)
        sxy = np.add.reduceat(xc * yc, cstarts)
        slope = np.divide(sxy, sxx, out=np.zeros_like(sxx), where=sxx > 0)
        resid = yc - np.repeat(slope, ccounts) * xc
        rms = np.sqrt(np.add.reduceat(resid * resid, cstarts) / ccounts)
        fit = (ccounts >= 3) & (spread > 0)
        res[ids[fit], 3] = rms[fit] / med_h[ids[fit]]
    # gaps: from each component to the right edge of everything before it on the fragment
    shift = np.repeat(np.arange(k, dtype=np.int64) * (int(x1.max()) + 1), counts)
    reach = np.maximum.accumulate(x1 + shift) - shift
    first = np.zeros(m.size, dtype=bool)
    first[starts] = True
    gaps = (x0[1:] - reach[:-1])[~first[1:]]
    gseg = seg[1:][~first[1:]]
    positive = gaps > 0
    gaps, gseg = gaps[positive].astype(np.float64), gseg[positive]
    res[:, 4] = _group_cv(gaps, gseg, _group_starts(gseg) if gseg.size else gseg, k)
    res[:, 5] = counts * med_h / np.maximum(box_w, 1)
    res[:, 6] = box_h / med_h
    res[:, 7] = np.log1p(counts)
    area = comps.area[m].astype(np.float64)
    res[:, 8] = _group_median(_sorted_within(area / np.maximum(w * h, 1), seg), starts, counts)
    res[:, 9] = np.add.reduceat(area, starts) / np.maximum(1, box_w * box_h)
    res[:, 10] = _group_median(_sorted_within(w, seg), starts, counts) / med_h
    res[:, 11:13] = [(np.nan, np.nan) if ocr[i] is None else ocr[i] for i in multi]
    if glyphs is None:
        res[:, 13:16] = np.nan
    else:
        d = glyphs.distance[m]
        known = ~np.isnan(d)
        res[:, 13:15] = np.nan
        if known.any():
            dseg, dk = seg[known], d[known]
            dstarts = _group_starts(dseg)
            dcounts = np.diff(np.r_[dstarts, dseg.size])
            ids = dseg[dstarts]
            res[ids, 13] = _group_mean((dk < TWIN_DISTANCE).astype(np.float64), dstarts, dcounts)
            res[ids, 14] = _group_median(_sorted_within(dk, dseg), dstarts, dcounts)
        res[:, 15] = _group_mean(glyphs.eligible[m].astype(np.float64), starts, counts)
    out[multi] = res
    return out


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
    page_boxes: Callable[[np.ndarray], list[tuple[int, int, int, int]]],
    ocr_segments: list[tuple[Line, tuple[float, float]]],
    glyphs: Glyphs | None = None,
) -> list[LineInfo]:
    """A LineInfo for every text line; ``ocr_segments`` are the OCR-sampled segments' figures.

    ``page_boxes`` maps an (n, 4) array of layout boxes to boxes in the page's own pixels
    (undoing scale and deskew).
    """
    vectors = line_vectors(comps, lines, [_ocr_for(ln, ocr_segments) for ln in lines], glyphs)
    boxes = page_boxes(np.array([(ln.x0, ln.y0, ln.x1, ln.y1) for ln in lines], dtype=np.float64))
    return [
        LineInfo(bbox=box, features=tuple(row))
        for box, row in zip(boxes, vectors.tolist(), strict=True)
    ]
