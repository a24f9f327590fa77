"""Normalisation: flatten the background, binarise, and bring text to a canonical size.

After :func:`normalise` every length is measured in units of the page's own text size, so no feature
can see the scan resolution, the page size or the DPI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

CANON_HEIGHT = 20.0
"""Median height (px) of character components after normalisation."""

MAX_SCALE = 4.0
MIN_SCALE = 0.05
MAX_CANON_PIXELS = 12_000_000


@dataclass(frozen=True)
class Normalised:
    """A page brought to canonical text size."""

    grey: np.ndarray
    """Background-flattened greyscale (uint8, 255 = paper)."""
    ink: np.ndarray
    """Boolean ink mask."""
    scale: float
    """Factor from original pixels to canonical pixels."""
    text_height: float
    """Median character height in the original pixels (0 when no text was found)."""


def flatten_background(grey: np.ndarray) -> np.ndarray:
    """Divide by an estimate of the paper so stains, shadows and uneven light vanish."""
    h, w = grey.shape
    factor = max(1, min(h, w) // 150)
    img = Image.fromarray(grey)
    small = np.asarray(img.reduce(factor) if factor > 1 else img, dtype=np.float32)
    # paper is the local maximum once strokes (thinner than the window) are closed over
    size = max(3, round(min(small.shape) / 25) | 1)
    bg_small = ndimage.grey_closing(small, size=(size, size))
    bg_small = ndimage.uniform_filter(bg_small, size=3)
    bg = np.asarray(
        Image.fromarray(bg_small).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    flat = grey.astype(np.float32) * (255.0 / np.maximum(bg, 1.0))
    return np.clip(flat, 0, 255).astype(np.uint8)


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


def estimate_text_height(ink: np.ndarray) -> float:
    """Median height of character-sized connected components, in the mask's pixels."""
    labels, n = ndimage.label(ink)
    if n == 0:
        return 0.0
    slices = ndimage.find_objects(labels)
    heights = np.array([s[0].stop - s[0].start for s in slices], dtype=np.float64)
    widths = np.array([s[1].stop - s[1].start for s in slices], dtype=np.float64)
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


def normalise(grey: np.ndarray) -> Normalised:
    """Flatten, binarise and resample a page so the median character is CANON_HEIGHT tall."""
    flat = flatten_background(grey)
    threshold = min(otsu_threshold(flat), 200.0)
    # estimate the scale on a half-size copy of big pages: it is 4x cheaper and precise enough
    factor = 2 if max(flat.shape) > 2000 else 1
    probe = np.asarray(Image.fromarray(flat).reduce(factor)) if factor > 1 else flat
    text_height = estimate_text_height(probe <= threshold) * factor
    if text_height <= 0:
        scale = 1.0
    else:
        scale = float(np.clip(CANON_HEIGHT / text_height, MIN_SCALE, MAX_SCALE))
    h, w = flat.shape
    pixels = h * w * scale * scale
    if pixels > MAX_CANON_PIXELS:
        scale *= (MAX_CANON_PIXELS / pixels) ** 0.5
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if abs(scale - 1.0) > 1e-3:
        canon = np.asarray(Image.fromarray(flat).resize(size, Image.Resampling.BILINEAR))
    else:
        canon = flat
    return Normalised(grey=canon, ink=canon <= threshold, scale=scale, text_height=text_height)
