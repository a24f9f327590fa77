"""Normalisation: flatten the background, binarise, and bring text to a canonical size.

After :func:`normalise` every length is measured in units of the page's own text size, so no feature
can see the scan resolution, the page size or the DPI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from app.features.labelling import Labelled

CANON_HEIGHT = 20.0
"""Character height (px) of the line crops that strokes and OCR are measured on."""
LAYOUT_HEIGHT = 13.0
"""Character height (px) of the whole-page copy used for components, lines and regularity."""

RULE_LENGTH = 5.0
"""On ruled paper, a straight ink run this many text heights long is a rule, not writing."""
MIN_DESKEW = 0.5
"""Pages skewed by at least this many degrees are straightened before any feature."""
MAX_SKEW = 10.0
"""The largest skew looked for (a scan or phone photo, not a page turned on its side)."""
MAX_SCALE = 4.0
MIN_SCALE = 0.05
MAX_CANON_PIXELS = 5_000_000
"""Most pixels of the layout copy: a page whose text is tiny next to its size (a dense register,
a fax, a manuscript in small hand) is laid out with smaller text rather than at any cost."""


@dataclass(frozen=True)
class Normalised:
    """A page brought to the layout text size, with what is needed to cut sharper line crops."""

    grey: np.ndarray
    """Background-flattened greyscale at layout scale (uint8, 255 = paper)."""
    ink: np.ndarray
    """Boolean ink mask at layout scale."""
    scale: float
    """Factor from original pixels to layout pixels."""
    text_height: float
    """Character height in the original pixels (0 when no text was found)."""
    original: np.ndarray
    """The page as given (crops are cut from it)."""
    background: np.ndarray
    """Small estimate of the paper (see :func:`estimate_background`)."""
    threshold: float
    """Ink threshold on background-flattened grey."""
    ruled: bool = False
    """Ruled paper was found (and its rules removed from ``ink`` and from crops)."""
    skew: float = 0.0
    """Degrees the page was turned (counter-clockwise) to straighten its lines; 0 if it was not."""
    turned_from: tuple[int, int] | None = None
    """(height, width) of the page brought to the layout scale before it was straightened."""

    @property
    def source_shape(self) -> tuple[int, int]:
        """(height, width) of the page as it was given."""
        return int(self.original.shape[0]), int(self.original.shape[1])

    def _to_page(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layout pixels of a straightened page as pixels of the page as given."""
        assert self.turned_from is not None
        xs, ys = _to_source(x, y, self.skew, self.turned_from, self.grey.shape)
        return xs / self.scale, ys / self.scale

    def page_box(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """A box in layout pixels as a box in the pixels of the page as it was given."""
        return self.page_boxes(np.array([box], dtype=np.float64))[0]

    def page_boxes(self, boxes: np.ndarray) -> list[tuple[int, int, int, int]]:
        """:meth:`page_box` of every row of an (n, 4) array of layout boxes, at once."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        inv = 1.0 / self.scale if self.scale > 0 else 1.0
        x0, y0, x1, y1 = (boxes[:, j] * inv for j in range(4))
        if self.skew and self.turned_from is not None:
            h, w = self.source_shape
            bx0, by0, bx1, by1 = boxes.T
            xs, ys = self._to_page(
                np.stack([bx0, bx1, bx0, bx1], axis=1), np.stack([by0, by0, by1, by1], axis=1)
            )
            x0, x1 = np.clip(xs.min(axis=1), 0, w), np.clip(xs.max(axis=1), 0, w)
            y0, y1 = np.clip(ys.min(axis=1), 0, h), np.clip(ys.max(axis=1), 0, h)
        return list(
            zip(
                x0.astype(np.int64).tolist(),
                y0.astype(np.int64).tolist(),
                np.ceil(x1).astype(np.int64).tolist(),
                np.ceil(y1).astype(np.int64).tolist(),
                strict=True,
            )
        )

    def crop(self, box: tuple[int, int, int, int], height: float = CANON_HEIGHT) -> np.ndarray:
        """Cut ``box`` (layout pixels) from the original and resample it to ``height`` text.

        Returns the background-flattened grey crop; ink is ``crop <= threshold``.
        """
        if self.skew and self.turned_from is not None:
            return self._straight_crop(box, height)
        inv = 1.0 / self.scale
        x0, y0 = max(0, int(box[0] * inv)), max(0, int(box[1] * inv))
        x1, y1 = int(np.ceil(box[2] * inv)), int(np.ceil(box[3] * inv))
        return self._flat_part((x0, y0, x1, y1), height)[0]

    def _flat_part(
        self, part: tuple[int, int, int, int], height: float
    ) -> tuple[np.ndarray, float, float]:
        """``part`` (pixels of the page as given) resampled to ``height`` text and flattened.

        Returns the crop and its horizontal and vertical resampling factors.
        """
        oh, ow = self.original.shape
        x0, y0 = max(0, part[0]), max(0, part[1])
        x1, y1 = min(ow, part[2]), min(oh, part[3])
        if x1 <= x0 or y1 <= y0:
            return np.full((1, 1), 255, np.uint8), 1.0, 1.0
        bh, bw = self.background.shape
        by0, bx0 = int(y0 * bh / oh), int(x0 * bw / ow)
        by1 = max(by0 + 1, int(np.ceil(y1 * bh / oh)))
        bx1 = max(bx0 + 1, int(np.ceil(x1 * bw / ow)))
        cut = self.original[y0:y1, x0:x1]
        factor = height / self.text_height if self.text_height > 0 else 1.0
        if abs(factor - 1.0) > 1e-3:
            cut = _resize(cut, factor)
        flat = divide_background(cut, self.background[by0:by1, bx0:bx1])
        if self.ruled:
            rules = rule_mask(flat <= self.threshold, height, axes=(1,))
            if rules.any():
                flat = flat.copy()
                flat[rules] = 255
        return flat, cut.shape[1] / (x1 - x0), cut.shape[0] / (y1 - y0)

    def _straight_crop(self, box: tuple[int, int, int, int], height: float) -> np.ndarray:
        """A crop of a straightened page, never turning the whole page.

        The part of the page as given under ``box`` is resampled and flattened, then turned
        straight in one interpolation.
        """
        bx0, by0, bx1, by1 = box
        xs, ys = self._to_page(np.array([bx0, bx1, bx0, bx1]), np.array([by0, by0, by1, by1]))
        part = (
            int(np.floor(xs.min())) - 2,
            int(np.floor(ys.min())) - 2,
            int(np.ceil(xs.max())) + 2,
            int(np.ceil(ys.max())) + 2,
        )
        px0, py0 = max(0, part[0]), max(0, part[1])
        flat, fx, fy = self._flat_part(part, height)
        factor = height / self.text_height if self.text_height > 0 else 1.0
        ratio = factor / self.scale  # crop pixels per layout pixel
        out_w, out_h = max(1, round((bx1 - bx0) * ratio)), max(1, round((by1 - by0) * ratio))
        assert self.turned_from is not None
        a, b, c, d, e, f = _rotation(self.skew, self.turned_from, self.grey.shape)
        k = 1.0 / (self.scale * ratio)
        data = (
            fx * a * k,
            fx * b * k,
            fx * ((a * bx0 + b * by0 + c) / self.scale - px0),
            fy * d * k,
            fy * e * k,
            fy * ((d * bx0 + e * by0 + f) / self.scale - py0),
        )
        img = Image.fromarray(flat).transform(
            (out_w, out_h),
            Image.Transform.AFFINE,
            data,
            resample=Image.Resampling.BILINEAR,
            fillcolor=255,
        )
        return np.asarray(img)


def estimate_background(grey: np.ndarray) -> np.ndarray:
    """A small float image of the paper: a grey closing removes strokes, leaving the background.

    It is computed on a copy reduced to about 150 px on its short side; callers resize it to the
    resolution they work at, so stains, shadows and uneven phone-photo light can be divided out.
    """
    factor = max(1, min(grey.shape) // 150)
    img = Image.fromarray(grey)
    small = np.asarray(img.reduce(factor) if factor > 1 else img, dtype=np.float32)
    size = max(3, round(min(small.shape) / 25) | 1)
    bg_small = ndimage.grey_closing(small, size=(size, size))
    return np.asarray(ndimage.uniform_filter(bg_small, size=3), dtype=np.float32)


def divide_background(grey: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``grey`` divided by ``background`` (resized to it), as uint8 with white paper."""
    h, w = grey.shape
    bg = np.array(
        Image.fromarray(background).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    # in place: one full-size float buffer instead of four (this runs on every page and crop)
    np.maximum(bg, 1.0, out=bg)
    np.divide(255.0, bg, out=bg)
    bg *= grey
    np.minimum(bg, 255.0, out=bg)
    return bg.astype(np.uint8)


def flatten_background(grey: np.ndarray) -> np.ndarray:
    """Divide by an estimate of the paper so stains, shadows and uneven light vanish."""
    return divide_background(grey, estimate_background(grey))


def otsu_threshold(grey: np.ndarray) -> float:
    """Otsu's threshold of a uint8 image."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128.0
    levels = np.arange(256, dtype=np.float64)
    weight0 = np.cumsum(hist)
    weight1 = total - weight0
    mean0 = np.cumsum(hist * levels)
    mu_total = mean0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_total * weight0 - mean0 * total) ** 2 / (weight0 * weight1)
    between = np.nan_to_num(between)
    return float(np.argmax(between))


def binarise(flat: np.ndarray) -> np.ndarray:
    """Ink mask of a background-flattened page (robust to near-blank pages)."""
    threshold = min(otsu_threshold(flat), 200.0)
    return flat <= threshold


def rule_mask(ink: np.ndarray, height: float, axes: tuple[int, ...] = (1,)) -> np.ndarray:
    """Pixels of straight runs at least RULE_LENGTH text heights long (a morphological opening)."""
    length = max(3, round(RULE_LENGTH * height))
    mask = np.zeros(ink.shape, dtype=bool)
    for axis in axes:
        if ink.shape[axis] < length:
            continue
        # Filter only the rows (columns) that can hold such a run: the filters work on each row
        # alone, so the others' result is all background (the same mask, a fraction of the
        # work). A run of ``length`` covers ``length // step`` consecutive samples ``step``
        # apart; a run touching an edge counts double (the filters reflect the row there).
        along = ink if axis == 1 else ink.T
        step = max(1, length // 8)
        samples = length // step
        sampled = np.ascontiguousarray(along[:, ::step]).view(np.uint8)
        runs = ndimage.minimum_filter1d(sampled, size=min(samples, sampled.shape[1]), axis=1)
        half = length // 2
        edge = along[:, :half].all(axis=1) | along[:, along.shape[1] - half :].all(axis=1)
        rows = np.flatnonzero(runs.any(axis=1) | edge)
        if rows.size == 0:
            continue
        part = np.ascontiguousarray(along[rows]).view(np.uint8)
        eroded = ndimage.minimum_filter1d(part, size=length, axis=1)
        opened = ndimage.maximum_filter1d(eroded, size=length, axis=1) > 0
        if axis == 1:
            mask[rows] |= opened
        else:
            mask[:, rows] |= opened.T
    return mask


def is_ruled_paper(ink: np.ndarray, *, min_rules: int = 5, max_spacing_cv: float = 0.2) -> bool:
    """Notebook paper: at least five evenly spaced rules running across most of the page.

    Forms (IAM's three separators, most FUNSD layouts) do not qualify, so their text and
    borders are left as they are.
    """
    h, w = ink.shape
    run = max(3, int(0.6 * w))
    if w < run or h < 10:
        return False
    # only rows with at least ``run`` ink pixels can hold such a run: filter just those
    candidates = np.flatnonzero(np.count_nonzero(ink, axis=1) >= run)
    if candidates.size == 0:
        return False
    runs = ndimage.minimum_filter1d(ink[candidates].view(np.uint8), size=run, axis=1)
    rows = candidates[runs.any(axis=1)]
    if rows.size == 0:
        return False
    breaks = np.flatnonzero(np.diff(rows) > 2) + 1
    centres = np.array([r.mean() for r in np.split(rows, breaks)])
    if centres.size < min_rules:
        return False
    spacing = np.diff(centres)
    return bool(spacing.mean() > 0 and spacing.std() / spacing.mean() <= max_spacing_cv)


def component_boxes(ink: np.ndarray) -> np.ndarray:
    """(y0, y1, x0, x1, area) of every 4-connected component of ``ink``, as float64 rows."""
    lab = Labelled.of(ink, connectivity=4)
    x0, y0, x1, y1 = lab.box.T
    return np.column_stack([y0, y1, x0, x1, lab.area]).astype(np.float64)


def estimate_text_height(ink: np.ndarray, boxes: np.ndarray | None = None) -> float:
    """Median height of character-sized connected components, in the mask's pixels.

    ``boxes``: :func:`component_boxes` of ``ink`` when the caller has them already.
    """
    boxes = component_boxes(ink) if boxes is None else boxes
    if boxes.shape[0] == 0:
        return 0.0
    heights = boxes[:, 1] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 2]
    limit = ink.shape[0] / 8.0
    keep = (heights >= 3) & (heights <= limit) & (widths <= 40 * np.maximum(heights, 1))
    if keep.sum() < 3:
        return 0.0
    med = float(np.median(heights[keep]))
    band = heights[keep & (heights >= 0.4 * med) & (heights <= 3.0 * med)]
    if band.size == 0:
        return med
    # interquartile mean: robust like the median, but not rounded to whole pixels
    lo, hi = np.percentile(band, [25, 75])
    core = band[(band >= lo) & (band <= hi)]
    return float(core.mean()) if core.size else med


def estimate_skew(
    ink: np.ndarray,
    text_height: float,
    max_angle: float = MAX_SKEW,
    boxes: np.ndarray | None = None,
) -> float:
    """Degrees to turn the page counter-clockwise (as PIL's rotate) so its lines are horizontal.

    The centres of character-sized components are projected along each candidate direction; text
    lines make the sharpest profile (largest sum of squared bin counts) when the direction is
    theirs. Coarse 0.5° steps over +-``max_angle``, then 0.1° steps around the best. Centres, not
    pixels, so it costs a few milliseconds, and handwriting's uneven baselines average out.
    """
    if text_height <= 0:
        return 0.0
    boxes = component_boxes(ink) if boxes is None else boxes
    if boxes.shape[0] < 10:
        return 0.0
    h = boxes[:, 1] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 2]
    keep = (h >= 0.4 * text_height) & (h <= 3 * text_height) & (w <= 6 * text_height)
    if keep.sum() < 10:
        return 0.0
    cy = (boxes[keep, 0] + boxes[keep, 1]) / 2
    cx = (boxes[keep, 2] + boxes[keep, 3]) / 2
    cx -= cx.mean()
    cy -= cy.mean()
    step = max(1.0, text_height / 3)

    def sharpness(angle: float) -> float:
        r = np.deg2rad(angle)
        y = cy * np.cos(r) - cx * np.sin(r)
        counts = np.bincount(((y - y.min()) / step).astype(np.int64)).astype(np.float64)
        return float((counts**2).sum())

    coarse = np.arange(-max_angle, max_angle + 1e-9, 0.5)
    best = float(coarse[int(np.argmax([sharpness(a) for a in coarse]))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    # the profile direction that is sharpest is the lines' tilt; turning by it straightens them
    return round(float(fine[int(np.argmax([sharpness(a) for a in fine]))]), 2)


def _rotation(angle: float, src: tuple[int, int], dst: tuple[int, int]) -> tuple[float, ...]:
    """Affine map from straightened-page pixels back to source pixels (PIL's AFFINE data)."""
    r = np.deg2rad(angle)
    c, s = float(np.cos(r)), float(np.sin(r))
    scy, scx = src[0] / 2, src[1] / 2
    dcy, dcx = dst[0] / 2, dst[1] / 2
    return (c, -s, scx - c * dcx + s * dcy, s, c, scy - s * dcx - c * dcy)


def _to_source(
    x: np.ndarray, y: np.ndarray, angle: float, src: tuple[int, int], dst: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d, e, f = _rotation(angle, src, dst)
    return a * x + b * y + c, d * x + e * y + f


def rotate_page(grey: np.ndarray, angle: float, fill: int) -> np.ndarray:
    """The page turned by ``angle`` degrees (see :func:`estimate_skew`), corners ``fill``."""
    h, w = grey.shape
    r = np.deg2rad(angle)
    out_w = int(np.ceil(w * abs(np.cos(r)) + h * abs(np.sin(r))))
    out_h = int(np.ceil(w * abs(np.sin(r)) + h * abs(np.cos(r))))
    img = Image.fromarray(grey).transform(
        (out_w, out_h),
        Image.Transform.AFFINE,
        _rotation(angle, (h, w), (out_h, out_w)),
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill,
    )
    return np.asarray(img)


def _resize(grey: np.ndarray, scale: float) -> np.ndarray:
    h, w = grey.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BILINEAR))


def normalise(grey: np.ndarray, height: float = LAYOUT_HEIGHT) -> Normalised:
    """Flatten, binarise and resample a page so its characters are ``height`` pixels tall.

    The text size is estimated on a reduced copy (long side 1100-2200 px), then the original is
    resampled once to the canonical scale and the background is divided out there: no full-size
    floating-point pass over a 300-dpi page. A crooked page's layout copy is then straightened;
    its crops are straightened one by one when they are cut (:meth:`Normalised.crop`).
    """
    background, factor, threshold, probe_ink, probe_height, boxes = _probe(grey)
    skew = estimate_skew(probe_ink, probe_height, boxes=boxes)
    if abs(skew) < MIN_DESKEW:
        skew = 0.0
    text_height = probe_height * factor
    scale = 1.0
    if text_height > 0:
        scale = float(np.clip(height / text_height, MIN_SCALE, MAX_SCALE))
    h, w = grey.shape
    pixels = h * w * scale * scale
    if pixels > MAX_CANON_PIXELS:
        scale *= (MAX_CANON_PIXELS / pixels) ** 0.5
    canon = _resize(grey, scale) if abs(scale - 1.0) > 1e-3 else grey
    canon = divide_background(canon, background)
    turned_from = None
    if skew:
        # Straighten the layout copy only (small): crops are cut from the page as given and
        # turned one by one (see Normalised.crop), so the full page is never turned.
        turned_from = (int(canon.shape[0]), int(canon.shape[1]))
        canon = rotate_page(canon, skew, fill=255)
    ink = canon <= threshold
    ruled = is_ruled_paper(ink)
    # rules, underlines and table borders are not text: left in, a form's row box or an
    # underline joins every word it touches into one component
    ink &= ~rule_mask(ink, height, axes=(0, 1))
    return Normalised(
        grey=canon,
        ink=ink,
        ruled=ruled,
        scale=scale,
        text_height=text_height,
        original=grey,
        background=background,
        threshold=threshold,
        skew=skew,
        turned_from=turned_from,
    )


def _probe(grey: np.ndarray) -> tuple[np.ndarray, int, float, np.ndarray, float, np.ndarray]:
    """Background, reduction factor, ink threshold, ink mask, text height and boxes of a copy.

    The copy is reduced to a long side of 1100-2200 px; the boxes are :func:`component_boxes`.
    """
    background = estimate_background(grey)
    factor = max(1, max(grey.shape) // 1100)
    probe = np.asarray(Image.fromarray(grey).reduce(factor)) if factor > 1 else grey
    probe = divide_background(probe, background)
    threshold = min(otsu_threshold(probe), 200.0)
    ink = probe <= threshold
    boxes = component_boxes(ink)
    return background, factor, threshold, ink, estimate_text_height(ink, boxes), boxes
