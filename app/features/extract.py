"""Page -> named features: OCR confidences, character regularity and stroke statistics.

All features are computed after :func:`~app.features.normalise.normalise`, so every length is in
units of the page's own text height: none of them sees DPI, page size or absolute pixel sizes.
``FEATURE_NAMES`` fixes the column order once; ``FEATURE_VERSION`` changes whenever a feature does.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from app.features.glyphs import NO_TWIN, Glyphs, twin_distances, twin_summary
from app.features.labelling import Labelled
from app.features.layout import (
    Components,
    Line,
    find_components,
    group_lines,
    join_vertical,
    line_fit_rms,
)
from app.features.lines import LineInfo, line_infos
from app.features.normalise import CANON_HEIGHT, LAYOUT_HEIGHT, Normalised, normalise
from app.ocr import OcrWord, image_to_words
from app.processes import one_blas_thread

log = logging.getLogger(__name__)

FEATURE_VERSION = "3.5"
"""2.2: word confidences keep tesseract's decimals (pytesseract's dict output truncated them).
2.3: pages skewed by 0.5° or more are straightened first.
2.4: they are turned where text is 30 px tall, not 40 (half the pixels, same stroke widths).
2.5: pages fed sideways or upside down are read the right way up.
3.0: glyph repetition (page and line); line verdicts on the fragments of a row, not merged rows.
3.1: rules and table borders removed from every page, not only ruled paper; punch holes and
     blots are not characters; a column of one-glyph fragments (a number printed up the
     margin) is one fragment.
3.2: slivers (a scan's dark edge, cut up) no longer make an upright page look sideways: with
     3.1 eight dev pages were read a second time turned, and three of them kept turned.
3.3: bounded work (issue 19): a crooked page's layout copy is straightened, not the full page
     resampled to 30-px text and turned (its crops are cut from the page as given and turned
     one by one); the layout copy holds at most 5 Mpx, not 12; a suspect orientation is
     decided on the normalised page turned by quarter turns, the page read in full again only
     when the turn wins.
3.5: bounded work (issue 19): stroke statistics on 12 sampled lines, not 24; the OCR sample is
     read once (tesseract's inverted second reading of low-confidence lines is off: the crops
     are dark on white by construction); a sideways suspect is read turned only when turning
     its layout sets at least SIDEWAYS_GATE times the share of its components in text lines."""

OCR_FEATURES = (
    "ocr_conf_mean",
    "ocr_conf_median",
    "ocr_conf_std",
    "ocr_conf_p10",
    "ocr_conf_p90",
    "ocr_share_conf_ge90",
    "ocr_share_conf_lt50",
    "ocr_words_per_line",
    "ocr_wordlike_share",
    "ocr_chars_per_word",
    "ocr_area_share",
    "ocr_lowconf_line_share",
    "ocr_line_conf_p25",
)
REGULARITY_FEATURES = (
    "reg_height_cv",
    "reg_width_cv",
    "reg_aspect_spread",
    "reg_height_mode_share",
    "reg_baseline_dev",
    "reg_gap_cv",
    "reg_line_spacing_cv",
    "reg_comps_per_line",
    "reg_comp_density",
    "reg_line_height_ratio",
    "reg_line_height_cv",
    "reg_baseline_dev_p75",
    "reg_comp_density_p25",
)
GLYPH_FEATURES = (
    "reg_glyph_twin_share",
    "reg_glyph_twin_dist",
    "reg_glyph_line_twin_median",
    "reg_glyph_line_twin_p25",
)
"""Glyph repetition (:mod:`app.features.glyphs`), part of character regularity."""
STROKE_FEATURES = (
    "stroke_width_mean",
    "stroke_width_cv",
    "stroke_straightness",
    "stroke_curvature",
    "stroke_orient_entropy",
    "stroke_axis_share",
    "stroke_slant_abs",
    "stroke_slant_std",
    "stroke_ink_density",
)
FLAG_FEATURES = ("empty",)
FEATURE_NAMES: tuple[str, ...] = (
    OCR_FEATURES + REGULARITY_FEATURES + GLYPH_FEATURES + STROKE_FEATURES + FLAG_FEATURES
)

OCR_SAMPLE_LINES = 8
LOW_LINE_CONF = 60.0
STROKE_SAMPLE_LINES = 12
SIDEWAYS_GATE = 1.5
"""A sideways suspect is read turned only when turning it sets this many times the share of its
components in text lines (a page of columns or squared paper is not a page on its side)."""
OCR_MAX_LINE_WIDTH = 520
_WORDLIKE = re.compile(
    r"^[\"'(\[]?([A-Za-zÀ-ÖØ-öø-ÿ]+(['’-][A-Za-zÀ-ÖØ-öø-ÿ]+)?|\d+([.,:/-]\d+)*)[\"')\].,;:!?]*$"
)
_VOWELS = set("aeiouyAEIOUYàâäéèêëîïôöùûüÿÀÂÄÉÈÊËÎÏÔÖÙÛÜ")


@dataclass
class OcrSettings:
    """How the OCR stage runs."""

    lang: str = "eng"
    timeout: float = 30.0
    enabled: bool = True
    engine: str | None = None
    """``library``/``cli``/``auto``; None: ``INKWELL_OCR_ENGINE``. Not in :meth:`key`: both
    engines give the same words (tests/test_ocr.py)."""

    def key(self) -> str:
        """A string that identifies settings which change feature values."""
        return f"{self.lang}|{OCR_SAMPLE_LINES}|{int(self.enabled)}"


@dataclass
class PageAnalysis:
    """Everything the feature stage learned about one page."""

    features: dict[str, float]
    lines: list[Line]
    scale: float
    timings: dict[str, float] = field(default_factory=dict)
    line_infos: list[LineInfo] = field(default_factory=list)
    orientation: int = 0
    """Degrees (counter-clockwise, 0/90/180/270) the page was turned to be read upright."""
    skew: float = 0.0
    """Degrees (counter-clockwise) the upright page was then turned to straighten its lines."""


def _safe_cv(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    mean = float(values.mean())
    return float(values.std() / mean) if mean > 0 else 0.0


def _iqr(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _quantile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def is_wordlike(token: str) -> bool:
    """Whether an OCR token looks like a dictionary word or a number (English or French)."""
    if not _WORDLIKE.match(token):
        return False
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return True
    core = "".join(letters)
    if len(core) > 1 and not any(c in _VOWELS for c in core):
        return False
    # mixed case inside a word ("tHe", "wOrD") is an OCR artefact, not a word
    return core.islower() or core.isupper() or (core[0].isupper() and core[1:].islower())


# ---------------------------------------------------------------------------- regularity
def line_regularity(comps: Components, line: Line) -> dict[str, float]:
    """Regularity statistics of one line (all lengths relative to its median component)."""
    m = line.members
    h = comps.height[m]
    w = comps.width[m]
    med_h = float(np.median(h)) if h.size else 1.0
    bottoms = comps.y1[m].astype(np.float64)
    centres = (comps.x0[m] + comps.x1[m]) / 2.0
    core = (h >= 0.5 * med_h) & (h <= 1.5 * med_h)
    baseline_dev = 0.0
    if core.sum() >= 3 and np.ptp(centres[core]) > 0:
        baseline_dev = line_fit_rms(centres[core], bottoms[core]) / max(med_h, 1.0)
    gaps = comps.x0[m][1:] - np.maximum.accumulate(comps.x1[m])[:-1]
    gaps = gaps[gaps > 0].astype(np.float64)
    return {
        "height_cv": _safe_cv(h),
        "width_cv": _safe_cv(w),
        "baseline_dev": baseline_dev,
        "gap_cv": _safe_cv(gaps),
        "comps": float(m.size),
        "density": float(m.size) * med_h / max(line.width, 1),
        "height_ratio": line.height / max(med_h, 1.0),
    }


def _line_spacing_cv(lines: list[Line]) -> float:
    if len(lines) < 3:
        return 0.0
    centres = np.array([(ln.y0 + ln.y1) / 2 for ln in lines])
    x0 = np.array([ln.x0 for ln in lines])
    x1 = np.array([ln.x1 for ln in lines])
    heights = np.array([ln.height for ln in lines], dtype=np.float64)
    steps: list[float] = []
    for i in range(len(lines)):
        overlap = np.minimum(x1, x1[i]) - np.maximum(x0, x0[i])
        below = (centres > centres[i] + 0.5 * heights[i]) & (overlap > 0.3 * (x1[i] - x0[i]))
        if below.any():
            steps.append(float((centres[below].min() - centres[i]) / max(heights[i], 1.0)))
    return _safe_cv(np.array(steps)) if len(steps) >= 2 else 0.0


def crop_components(flat: np.ndarray, threshold: float) -> tuple[Components, Line]:
    """Components of one line crop (at CANON_HEIGHT) as a single line, sorted left to right."""
    comps, _ = find_components(flat <= threshold, height=CANON_HEIGHT, assign_lines=False)
    order = np.argsort(comps.x0, kind="stable")
    if comps.x0.size == 0:
        return comps, Line(0, 0, 0, 0, order)
    line = Line(
        x0=int(comps.x0.min()),
        y0=int(comps.y0.min()),
        x1=int(comps.x1.max()),
        y1=int(comps.y1.max()),
        members=order,
    )
    return comps, line


def regularity_features(
    lines: list[Line], crops: list[tuple[Components, Line]]
) -> dict[str, float]:
    """Character regularity: size, alignment and spacing of connected components.

    Shapes and per-line statistics come from the sharp line crops; line spacing and components
    per line from the whole-page layout.
    """
    h = np.concatenate([c.height[ln.members] for c, ln in crops]) if crops else np.zeros(0)
    w = np.concatenate([c.width[ln.members] for c, ln in crops]) if crops else np.zeros(0)
    med_h = float(np.median(h)) if h.size else 0.0
    per_line = [line_regularity(c, ln) for c, ln in crops if ln.members.size >= 3]
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1)) if h.size else np.zeros(0)
    mode_share = float(np.mean(np.abs(h - med_h) <= 0.15 * med_h)) if med_h > 0 else 0.0
    return {
        "reg_height_cv": _safe_cv(h),
        "reg_width_cv": _safe_cv(w),
        "reg_aspect_spread": _iqr(aspect),
        "reg_height_mode_share": mode_share,
        "reg_baseline_dev": _median([r["baseline_dev"] for r in per_line]),
        "reg_gap_cv": _median([r["gap_cv"] for r in per_line]),
        "reg_line_spacing_cv": _line_spacing_cv(lines),
        "reg_comps_per_line": _median([float(ln.members.size) for ln in lines]),
        "reg_comp_density": _median([r["density"] for r in per_line]),
        "reg_line_height_ratio": _median([r["height_ratio"] for r in per_line]),
        "reg_line_height_cv": _median([r["height_cv"] for r in per_line]),
        "reg_baseline_dev_p75": _quantile([r["baseline_dev"] for r in per_line], 75),
        "reg_comp_density_p25": _quantile([r["density"] for r in per_line], 25),
    }


def glyph_features(glyphs: Glyphs, lines: list[Line]) -> dict[str, float]:
    """Glyph repetition of the page and of its lines.

    A line's figure is the share of its glyphs with a near-identical twin on the page; lines
    with fewer than three measured glyphs are left out.
    """
    share, dist = twin_summary(glyphs.distance)
    per_line = []
    for ln in lines:
        d = glyphs.distance[ln.members]
        if np.count_nonzero(~np.isnan(d)) >= 3:
            per_line.append(twin_summary(d)[0])
    return {
        "reg_glyph_twin_share": 0.0 if np.isnan(share) else share,
        "reg_glyph_twin_dist": NO_TWIN if np.isnan(dist) else dist,
        "reg_glyph_line_twin_median": _median(per_line),
        "reg_glyph_line_twin_p25": _quantile(per_line, 25),
    }


# -------------------------------------------------------------------------------- strokes
def _sample(lines: list[Line], k: int) -> list[Line]:
    if len(lines) <= k:
        return list(lines)
    idx = np.unique(np.linspace(0, len(lines) - 1, k).round().astype(int))
    return [lines[i] for i in idx]


def line_crops(norm: Normalised, lines: list[Line], *, pad: int = 2) -> list[np.ndarray]:
    """Sharp, background-flattened crops of a sample of lines at CANON_HEIGHT."""
    crops = []
    for ln in _sample(lines, STROKE_SAMPLE_LINES):
        x1 = min(ln.x1 + pad, ln.x0 + int(30 * LAYOUT_HEIGHT))
        crops.append(norm.crop((ln.x0 - pad, ln.y0 - pad, x1, ln.y1 + pad)))
    return crops


def stroke_features(crops: list[np.ndarray], threshold: float) -> dict[str, float]:
    """Stroke width, straightness/curvature, orientation and slant on line crops."""
    widths: list[np.ndarray] = []
    coherence: list[np.ndarray] = []
    angles: list[np.ndarray] = []
    mags: list[np.ndarray] = []
    ink_px = 0
    box_px = 0
    for flat in crops:
        ink = flat <= threshold
        grey = flat.astype(np.float32)
        ink_px += int(ink.sum())
        box_px += ink.size
        edt = ndimage.distance_transform_edt(ink)
        ridge = ink & (edt >= ndimage.maximum_filter(edt, size=3)) & (edt > 0)
        widths.append(2.0 * edt[ridge] - 1.0)
        gx = ndimage.sobel(grey, axis=1)
        gy = ndimage.sobel(grey, axis=0)
        mag = np.hypot(gx, gy)
        edge = mag > max(float(mag.max()) * 0.2, 1e-3)
        jxx = ndimage.gaussian_filter(gx * gx, 1.5)
        jyy = ndimage.gaussian_filter(gy * gy, 1.5)
        jxy = ndimage.gaussian_filter(gx * gy, 1.5)
        num = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
        coh = num / np.maximum(jxx + jyy, 1e-6)
        coherence.append(coh[edge])
        angles.append(np.arctan2(gy[edge], gx[edge]))
        mags.append(mag[edge])
    if not widths or box_px == 0:
        return dict.fromkeys(STROKE_FEATURES, 0.0)
    sw = np.concatenate(widths) / CANON_HEIGHT
    coh_all = np.concatenate(coherence)
    theta = np.mod(np.concatenate(angles), np.pi)  # gradient direction, 0..pi
    weight = np.concatenate(mags)
    hist, _ = np.histogram(theta, bins=12, range=(0, np.pi), weights=weight)
    total = hist.sum()
    p = hist / total if total > 0 else np.full(12, 1 / 12)
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum() / np.log(12))
    # gradient near 0 or pi means a near-vertical stroke edge; its deviation is the slant
    dev = np.where(theta > np.pi / 2, theta - np.pi, theta)
    vertical = np.abs(dev) < np.deg2rad(40)
    axis = (np.abs(dev) < np.deg2rad(7.5)) | (np.abs(np.abs(dev) - np.pi / 2) < np.deg2rad(7.5))
    if vertical.any() and weight[vertical].sum() > 0:
        wv = weight[vertical]
        slant = float(np.average(dev[vertical], weights=wv))
        slant_std = float(np.sqrt(np.average((dev[vertical] - slant) ** 2, weights=wv)))
    else:
        slant, slant_std = 0.0, 0.0
    return {
        "stroke_width_mean": float(sw.mean()) if sw.size else 0.0,
        "stroke_width_cv": _safe_cv(sw),
        "stroke_straightness": float(coh_all.mean()) if coh_all.size else 0.0,
        "stroke_curvature": float(np.mean(coh_all < 0.5)) if coh_all.size else 0.0,
        "stroke_orient_entropy": entropy,
        "stroke_axis_share": float(weight[axis].sum() / total) if total > 0 else 0.0,
        "stroke_slant_abs": float(np.degrees(abs(slant))),
        "stroke_slant_std": float(np.degrees(slant_std)),
        "stroke_ink_density": ink_px / box_px,
    }


# ------------------------------------------------------------------------------------ OCR
def build_montage(
    norm: Normalised | None, lines: list[Line], *, gap: int = 12
) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Stack line crops into one image for a single tesseract call.

    Returns:
        The montage, the total area of the crops, and each crop's (top, bottom) in the montage.
    """
    crops = []
    area = 0
    pad = 4
    max_width = int(OCR_MAX_LINE_WIDTH * LAYOUT_HEIGHT / CANON_HEIGHT)
    if norm is None:
        return np.zeros((0, 0), dtype=np.uint8), 0, []
    for ln in lines:
        x1 = min(ln.x1 + pad, ln.x0 + max_width)
        crop = norm.crop((ln.x0 - pad, ln.y0 - pad, x1, ln.y1 + pad))
        crops.append(crop)
        area += crop.shape[0] * crop.shape[1]
    if not crops:
        return np.zeros((0, 0), dtype=np.uint8), 0, []
    width = max(c.shape[1] for c in crops) + 2 * gap
    height = sum(c.shape[0] for c in crops) + gap * (len(crops) + 1)
    montage = np.full((height, width), 255, dtype=np.uint8)
    y = gap
    spans = []
    for c in crops:
        montage[y : y + c.shape[0], gap : gap + c.shape[1]] = c
        spans.append((y, y + c.shape[0]))
        y += c.shape[0] + gap
    return montage, area, spans


def ocr_features(
    norm: Normalised,
    lines: list[Line],
    settings: OcrSettings,
    per_line: dict[int, tuple[float, float]] | None = None,
) -> dict[str, float]:
    """Tesseract word confidences and word shapes on a bounded sample of lines.

    When ``per_line`` is given it is filled with (mean confidence, wordlike share) of each
    sampled line, keyed by the line's index in ``lines``.
    """
    candidates = [ln for ln in lines if ln.members.size >= 3] or lines
    sample = _sample(candidates, OCR_SAMPLE_LINES)
    montage, area, spans = build_montage(norm, sample)
    if not settings.enabled or area == 0:
        return dict.fromkeys(OCR_FEATURES, 0.0)
    words = image_to_words(
        montage,
        lang=settings.lang,
        timeout=settings.timeout,
        engine=settings.engine,
        retry_inverted=False,
    )
    if per_line is not None:
        index = {id(ln): i for i, ln in enumerate(lines)}
        conf_by, wordlike_by = _per_span(words, spans)
        for k, ln in enumerate(sample):
            per_line[index[id(ln)]] = (conf_by[k], wordlike_by[k])
    if not words:
        return dict.fromkeys(OCR_FEATURES, 0.0)
    conf = np.array([w.conf for w in words], dtype=np.float64)
    p10, p90 = np.percentile(conf, [10, 90])
    n_lines = len({w.line_key for w in words})
    word_area = sum(w.width * w.height for w in words)
    line_conf = _line_confidences(words, spans)
    return {
        "ocr_conf_mean": float(conf.mean()),
        "ocr_conf_median": float(np.median(conf)),
        "ocr_conf_std": float(conf.std()),
        "ocr_conf_p10": float(p10),
        "ocr_conf_p90": float(p90),
        "ocr_share_conf_ge90": float(np.mean(conf >= 90)),
        "ocr_share_conf_lt50": float(np.mean(conf < 50)),
        "ocr_words_per_line": len(words) / max(n_lines, 1),
        "ocr_wordlike_share": float(np.mean([is_wordlike(w.text) for w in words])),
        "ocr_chars_per_word": float(np.mean([len(w.text) for w in words])),
        "ocr_area_share": min(1.0, word_area / area),
        "ocr_lowconf_line_share": float(np.mean(line_conf < LOW_LINE_CONF)),
        "ocr_line_conf_p25": float(np.percentile(line_conf, 25)),
    }


def _span_of(word: OcrWord, tops: np.ndarray) -> int:
    centre = word.top + word.height / 2
    return int(np.clip(np.searchsorted(tops, centre, side="right") - 1, 0, len(tops) - 1))


def _per_span(
    words: list[OcrWord], spans: list[tuple[int, int]]
) -> tuple[list[float], list[float]]:
    """Mean confidence and wordlike share of each montage line (0 where nothing was read)."""
    tops = np.array([s[0] for s in spans])
    confs: list[list[float]] = [[] for _ in spans]
    likes: list[list[float]] = [[] for _ in spans]
    for w in words:
        i = _span_of(w, tops)
        confs[i].append(w.conf)
        likes[i].append(float(is_wordlike(w.text)))
    return (
        [float(np.mean(c)) if c else 0.0 for c in confs],
        [float(np.mean(v)) if v else 0.0 for v in likes],
    )


def _line_confidences(words: list[OcrWord], spans: list[tuple[int, int]]) -> np.ndarray:
    """Mean word confidence of each montage line (0 for a line where nothing was read)."""
    return np.array(_per_span(words, spans)[0])


# --------------------------------------------------------------------------- orientation
ORIENT_MARGIN = 15.0
"""A turned reading must beat the page as given by this many median-confidence points."""
UPSIDE_DOWN_SUSPECT = 0.8
"""Ink above the x-height band over ink below it; upright Latin text has more above (ascenders,
capitals, digits): IAM 1.9-3, FUNSD mostly 1-4. Below this the page may be upside down."""


def ascender_ratio(ink: np.ndarray, lines: list[Line]) -> float:
    """Ink above each line's core (x-height) band over ink below it, summed over the lines."""
    above = below = 0.0
    for ln in lines:
        profile = ink[ln.y0 : ln.y1, ln.x0 : ln.x1].sum(axis=1).astype(np.float64)
        if profile.size < 3 or profile.max() <= 0:
            continue
        core = np.flatnonzero(profile >= 0.5 * profile.max())
        above += float(profile[: core.min()].sum())
        below += float(profile[core.max() + 1 :].sum())
    return above / max(below, 1.0)


def looks_sideways(comps: Components) -> bool:
    """Component centres line up more sharply in columns than in rows: text runs vertically.

    Slivers (four times taller than wide: the pieces a scan's dark edge leaves once long rules
    are taken out of the mask) are not counted: stacked in one column they looked like text
    turned on its side, and the page was read a second time, turned, for nothing.
    """
    slim = comps.width * 4 < comps.height
    if int((~slim).sum()) < 10:
        return False
    cx = ((comps.x0 + comps.x1) / 2.0)[~slim]
    cy = ((comps.y0 + comps.y1) / 2.0)[~slim]
    step = LAYOUT_HEIGHT / 3

    def sharpness(v: np.ndarray) -> float:
        counts = np.bincount(((v - v.min()) / step).astype(np.int64)).astype(np.float64)
        return float((counts**2).sum())

    return sharpness(cx) > 1.2 * sharpness(cy)


def _turn_box(
    box: tuple[int, int, int, int], k: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A box on ``np.rot90(page, k)`` as a box on ``page`` (``shape``: the page's height, width)."""
    x0, y0, x1, y1 = box
    h, w = shape
    if k % 4 == 1:
        return (w - y1, x0, w - y0, x1)
    if k % 4 == 2:
        return (w - x1, h - y1, w - x0, h - y0)
    if k % 4 == 3:
        return (y0, h - x1, y1, h - x0)
    return box


def upright_box(
    box: tuple[int, int, int, int], orientation: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A box on the page as given, as a box on the page turned upright.

    ``orientation``: :attr:`PageAnalysis.orientation`; ``shape``: the given page's (height,
    width). Models read a fragment's box (its height, its row) the right way up.
    """
    k = (orientation // 90) % 4
    if k == 0:
        return box
    h, w = shape
    return _turn_box(box, 4 - k, (w, h) if k % 2 else (h, w))


def given_box(
    box: tuple[int, int, int, int], orientation: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The inverse of :func:`upright_box`: a box on the upright page on the page as given."""
    return _turn_box(box, (orientation // 90) % 4, shape)


# ---------------------------------------------------------------------------------- page
def analyse_page(grey: np.ndarray, ocr: OcrSettings | None = None) -> PageAnalysis:
    """Compute every feature of one greyscale page (uint8, 255 = paper).

    A page that looks upside down (more ink below its lines' x-height band than above) or
    sideways (text in columns) is also read turned; the turn whose OCR is clearly more confident
    (by ORIENT_MARGIN median points) wins, and line boxes are mapped back to the page as given.
    Only the OCR of a turn is read to decide: the other features are computed once, for the
    orientation that wins (the same numbers as computing them for every turn, for less work).
    """
    one_blas_thread()
    ocr = ocr or OcrSettings()
    first = _Reading.of(grey, ocr)
    if not first.turns or not ocr.enabled:
        return first.finish()
    t0 = time.perf_counter()
    best_k, _ = decide_turn(first, ocr)
    if best_k == 0:
        result = first.finish()
        result.timings["orientation"] = time.perf_counter() - t0
        return result
    best = _Reading.of(np.ascontiguousarray(np.rot90(grey, best_k)), ocr, decide=False)
    turning = time.perf_counter() - t0
    result = best.finish()
    result.timings["orientation"] = turning
    shape = (int(grey.shape[0]), int(grey.shape[1]))
    result.orientation = 90 * best_k
    result.line_infos = [
        LineInfo(bbox=given_box(i.bbox, result.orientation, shape), features=i.features)
        for i in result.line_infos
    ]
    for key, value in first.timings.items():
        result.timings[key] = result.timings.get(key, 0.0) + value
    return result


def decide_turn(first: _Reading, ocr: OcrSettings) -> tuple[int, dict[int, _Reading]]:
    """The quarter turn that reads the page upright (0: as given), and the readings tried.

    Only the OCR of a turn is read to decide. A half turn keeps the layout itself: the page
    upside down is the page as read, and the two sides of a sideways page are one layout, so
    each of those costs its OCR alone; a quarter turn takes the first reading's labelling turned.
    A sideways suspect's turned layout is read (OCR) only when it puts at least SIDEWAYS_GATE
    times the page's own share of components into text lines: text on its side, turned upright,
    falls into lines; columns, tables and squared paper turned do not.
    """
    best_k, best_median = 0, first.ocr_median
    read = {0: first}
    for k in first.turns:
        other = read.get((k + 2) % 4)
        if other is not None:
            alt = other.half_turned(ocr)  # a half turn, or the other side of a sideways page
        else:
            # the first side of a sideways suspect (a half turn always has the page as read)
            alt = first.turned(k, ocr, read_ocr=False)
            if not passes_sideways_gate(line_share(first), line_share(alt)):
                # the page turned sets no more of its ink in lines: it is not on its side
                # (and the other side, the same layout, would not either)
                break
            alt.read_ocr(ocr)
        read[k] = alt
        margin = alt.ocr_median - best_median
        if not alt.empty and margin >= (ORIENT_MARGIN if best_k == 0 else 0.0):
            best_k, best_median = k, alt.ocr_median
    return best_k, read


def passes_sideways_gate(share: float, turned_share: float, factor: float | None = None) -> bool:
    """Whether a sideways suspect's turns are worth reading (the layout test before their OCR).

    They are when the turned layout's line share (``turned_share``) is at least ``factor``
    (default SIDEWAYS_GATE) times the page's own (``share``).
    """
    return turned_share >= (SIDEWAYS_GATE if factor is None else factor) * share


def line_share(reading: _Reading) -> float:
    """Share of a reading's components that belong to one of its text lines."""
    members = sum(int(ln.members.size) for ln in reading.lines)
    return members / max(len(reading.comps), 1)


def _turns_to_try(norm: Normalised, comps: Components, lines: list[Line]) -> list[int]:
    """Quarter turns worth reading (sideways: both sides; upside down: a half turn; or none)."""
    if looks_sideways(comps):
        return [1, 3]
    if len(lines) >= 3 and ascender_ratio(norm.ink, lines) < UPSIDE_DOWN_SUSPECT:
        return [2]
    return []


def _turned_view(norm: Normalised, k: int) -> Normalised:
    """``norm`` turned by ``k`` quarter turns (counter-clockwise): views, nothing copied."""
    shape = norm.turned_from
    if shape is not None and k % 2:
        shape = (shape[1], shape[0])
    return Normalised(
        grey=np.rot90(norm.grey, k),
        ink=np.rot90(norm.ink, k),
        scale=norm.scale,
        text_height=norm.text_height,
        original=np.rot90(norm.original, k),
        background=np.rot90(norm.background, k),
        threshold=norm.threshold,
        ruled=norm.ruled,
        skew=norm.skew,
        turned_from=shape,
    )


@dataclass
class _Reading:
    """A page read as far as deciding its orientation: layout, turns worth trying and OCR."""

    norm: Normalised
    comps: Components
    labels: np.ndarray
    lines: list[Line]
    turns: list[int]
    """The quarter turns worth trying (maybe none)."""
    timings: dict[str, float]
    ocr: dict[str, float] = field(default_factory=dict)
    per_line: dict[int, tuple[float, float]] = field(default_factory=dict)
    labelled: Labelled | None = None
    """Every component of ``norm.ink`` (a turned reading takes it turned, not labelled again)."""

    @property
    def empty(self) -> bool:
        """Too little ink or no text line: nothing to read."""
        return len(self.comps) < 5 or not self.lines

    @property
    def ocr_median(self) -> float:
        """The median OCR confidence (what decides between orientations)."""
        return self.ocr.get("ocr_conf_median", 0.0)

    @classmethod
    def of(cls, grey: np.ndarray, ocr: OcrSettings, *, decide: bool = True) -> _Reading:
        """Normalise, find components and lines, decide the turns to try, read the OCR sample.

        ``decide=False``: the page is known to be upright (no turn is looked for).
        """
        t0 = time.perf_counter()
        return cls._read(normalise(grey), ocr, decide=decide, t0=t0)

    @classmethod
    def _read(
        cls,
        norm: Normalised,
        ocr: OcrSettings,
        *,
        decide: bool,
        t0: float,
        labelled: Labelled | None = None,
        read_ocr: bool = True,
    ) -> _Reading:
        labelled = Labelled.of(norm.ink) if labelled is None else labelled
        comps, labels = find_components(norm.ink, labelled=labelled)
        lines = group_lines(comps)
        t1 = time.perf_counter()
        turns = _turns_to_try(norm, comps, lines) if decide else []
        reading = cls(norm, comps, labels, lines, turns, {"normalise": t1 - t0}, labelled=labelled)
        if read_ocr:
            reading.read_ocr(ocr)
        return reading

    def read_ocr(self, ocr: OcrSettings) -> None:
        """Read this reading's OCR sample (nothing when it is empty)."""
        if not self.empty:
            t1 = time.perf_counter()
            self.ocr = ocr_features(self.norm, self.lines, ocr, self.per_line)
            self.timings["ocr"] = time.perf_counter() - t1

    def turned(self, k: int, ocr: OcrSettings, *, read_ocr: bool = True) -> _Reading:
        """This page's reading turned by ``k`` quarter turns (counter-clockwise), up to its OCR.

        The normalised page is turned, not normalised again (its text height is kept), and its
        ink is not labelled again: a quarter turn maps components onto components, so the
        labelling is turned (:meth:`Labelled.quarter_turned`). Everything is a turned view;
        crops cut from it are small copies with the same pixels. The components keep this
        reading's order; the lines (and so the OCR) are those of labelling the turned page.
        """
        norm = self.norm
        view = _turned_view(norm, k)
        labelled = self.labelled or Labelled.of(norm.ink)
        return _Reading._read(
            view,
            ocr,
            decide=False,
            t0=time.perf_counter(),
            labelled=labelled.quarter_turned(k),
            read_ocr=read_ocr,
        )

    def half_turned(self, ocr: OcrSettings) -> _Reading:
        """This reading turned by a half turn, its layout turned rather than found again.

        A half turn maps the ink onto itself: the same components (their boxes turned), the
        same smeared rows (the smearing is symmetric), so the same lines, only sorted from the
        other corner. A page suspected to be upside down is read this way, and a page suspected
        to lie on its side is read at a quarter turn each way, the second being this: each for
        the price of its OCR alone. Only its OCR and :attr:`empty` are meant to be read (the
        orientation decision): its components keep this reading's order, not the order a
        labelling of the turned page would give them.
        """
        norm, comps = self.norm, self.comps
        h, w = norm.ink.shape
        view = _turned_view(norm, 2)
        turned = Components(
            x0=w - comps.x1,
            y0=h - comps.y1,
            x1=w - comps.x0,
            y1=h - comps.y0,
            area=comps.area,
            line=comps.line,
            label=comps.label,
        )
        lines = [
            Line(w - ln.x1, h - ln.y1, w - ln.x0, h - ln.y0, ln.members[::-1])
            for ln in reversed(self.lines)
        ]
        lines.sort(key=lambda ln: (ln.y0, ln.x0))
        t0 = time.perf_counter()
        reading = _Reading(view, turned, np.rot90(self.labels, 2), lines, [], {})
        if not reading.empty:
            reading.ocr = ocr_features(view, lines, ocr, reading.per_line)
        reading.timings["ocr"] = time.perf_counter() - t0
        return reading

    def finish(self) -> PageAnalysis:
        """Every other feature, and the line verdicts' inputs."""
        norm, comps, lines, timings = self.norm, self.comps, self.lines, self.timings
        if self.empty:
            features = dict.fromkeys(FEATURE_NAMES, 0.0)
            features["empty"] = 1.0
            return PageAnalysis(features=features, lines=lines, scale=norm.scale, timings=timings)
        t1 = time.perf_counter()
        crops = line_crops(norm, lines)
        features = regularity_features(lines, [crop_components(c, norm.threshold) for c in crops])
        fragments = join_vertical(group_lines(comps, min_members=1))
        glyphs = twin_distances(self.labels, comps)
        features.update(glyph_features(glyphs, fragments))
        t2 = time.perf_counter()
        timings["regularity"] = t2 - t1
        features.update(stroke_features(crops, norm.threshold))
        t3 = time.perf_counter()
        timings["strokes"] = t3 - t2
        features.update(self.ocr)
        ocr_segments = [(lines[i], v) for i, v in self.per_line.items()]
        infos = line_infos(comps, fragments, norm.page_boxes, ocr_segments, glyphs)
        timings["lines"] = time.perf_counter() - t3
        features["empty"] = 0.0
        ordered = {name: float(np.nan_to_num(features[name])) for name in FEATURE_NAMES}
        return PageAnalysis(
            features=ordered,
            lines=lines,
            scale=norm.scale,
            timings=timings,
            line_infos=infos,
            skew=norm.skew,
        )


def page_features(grey: np.ndarray, ocr: OcrSettings | None = None) -> dict[str, float]:
    """The named features of one page, in FEATURE_NAMES order."""
    return analyse_page(grey, ocr).features


@dataclass(frozen=True)
class PageRow:
    """What a worker sends back for one page: features, line infos, timing, orientation."""

    features: list[float]
    lines: list[LineInfo]
    elapsed_ms: float
    orientation: int
    skew: float


def featurise_page(image: np.ndarray, ocr: OcrSettings) -> PageRow:
    """Features of one page (runs in a worker process)."""
    t0 = time.perf_counter()
    analysis = analyse_page(image, ocr)
    return PageRow(
        features=[analysis.features[n] for n in FEATURE_NAMES],
        lines=analysis.line_infos,
        elapsed_ms=1000 * (time.perf_counter() - t0),
        orientation=analysis.orientation,
        skew=analysis.skew,
    )
