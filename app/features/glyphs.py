"""Glyph repetition: print repeats the same glyph image, handwriting never does exactly.

Every character-sized connected component (sized against its own text line, so a printed header
and the handwriting under it are each judged at their own size) is reduced to a small bitmap on a
fixed grid. Its *twin distance* is the distance to the most similar component of about the same
width and height elsewhere on the page. A printed page is full of near-identical twins (every
``e`` of one font at one size), whatever its language, blur or JPEG noise; handwritten letters
have only loose cousins. The statistic needs no OCR and no dictionary.

Cost: one gather of ``GRID`` x ``GRID`` (super-sampled) label values per component and one
matrix product over at most :data:`MAX_GLYPHS` components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.features.layout import Components

GRID = 6
"""Descriptor grid (cells per side); each cell averages SUPER x SUPER samples of the mask.
(6 x 6 separated typed from handwritten pages as well as 8 x 8 on the dev pages, at half the
cost; without super-sampling the ROC AUC of the page median fell from 0.89 to 0.86.)"""
SUPER = 2
MAX_GLYPHS = 800
"""Components compared per page. Past it, every line keeps the same number of them (its first
ones in a seeded shuffle), so each line is still measured and the cost stays bounded."""
SIZE_TOLERANCE = 0.12
"""Twins differ in height and in width by at most this share (and at least one pixel)."""
TWIN_DISTANCE = 0.16
"""A component whose twin distance is under this has a near-identical twin (RMS of cell means)."""
NO_TWIN = 0.5
"""Distance recorded for a component with no candidate of its size on the page."""


@dataclass(frozen=True)
class Glyphs:
    """Twin distance of every component (NaN: not character-sized, or not in the sample)."""

    distance: np.ndarray
    eligible: np.ndarray
    """Character-sized components (against their line's median height)."""


def _line_median_heights(comps: Components) -> np.ndarray:
    """Each component's line's median component height (the lower middle one), vectorised."""
    h = comps.height
    order = np.lexsort((h, comps.line))
    lines = comps.line[order]
    starts = np.flatnonzero(np.r_[True, lines[1:] != lines[:-1]])
    counts = np.diff(np.r_[starts, lines.size])
    middle = h[order[starts + (counts - 1) // 2]]
    return np.asarray(np.repeat(middle, counts)[np.argsort(order)])


def character_sized(comps: Components) -> np.ndarray:
    """Components shaped like one character of their line (not a cursive word, not a dot)."""
    med = np.maximum(_line_median_heights(comps), 1.0)
    h, w = comps.height, comps.width
    return np.asarray(
        (h >= 0.55 * med) & (h <= 1.6 * med) & (w >= 0.2 * h) & (w <= 1.6 * med) & (h >= 5)
    )


def descriptors(labels: np.ndarray, comps: Components, idx: np.ndarray) -> np.ndarray:
    """GRID x GRID cell means of each component's own mask (``labels``: the label image)."""
    n = idx.size
    k = GRID * SUPER
    t = (np.arange(k) + 0.5) / k
    x0 = comps.x0[idx][:, None].astype(np.float64)
    y0 = comps.y0[idx][:, None].astype(np.float64)
    xs = np.floor(x0 + t[None, :] * comps.width[idx][:, None]).astype(np.intp)
    ys = np.floor(y0 + t[None, :] * comps.height[idx][:, None]).astype(np.intp)
    samples = labels[ys[:, :, None], xs[:, None, :]] == comps.label[idx][:, None, None]
    cells = samples.reshape(n, GRID, SUPER, GRID, SUPER).mean(axis=(2, 4))
    return np.asarray(cells.reshape(n, GRID * GRID), dtype=np.float32)


def _per_line_sample(idx: np.ndarray, line: np.ndarray, seed: int) -> np.ndarray:
    """At most MAX_GLYPHS of ``idx``: the first k of every line in a seeded shuffle.

    k is as large as the cap allows (one a line, drawn at random, when there are more lines
    than the cap).
    """
    shuffle = np.random.default_rng(seed).permutation(idx.size)
    order = shuffle[np.argsort(line[shuffle], kind="stable")]
    sorted_lines = line[order]
    starts = np.flatnonzero(np.r_[True, sorted_lines[1:] != sorted_lines[:-1]])
    counts = np.diff(np.r_[starts, order.size])
    rank = np.empty(idx.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - np.repeat(starts, counts)
    k = int(np.sort(rank)[MAX_GLYPHS])
    if k == 0:
        firsts = np.flatnonzero(rank == 0)
        return np.sort(idx[np.random.default_rng(seed).choice(firsts, MAX_GLYPHS, replace=False)])
    return np.sort(idx[rank < k])


def twin_distances(labels: np.ndarray, comps: Components, *, seed: int = 0) -> Glyphs:
    """Twin distance of the character-sized components of a page (see the module doc)."""
    n = len(comps)
    distance = np.full(n, np.nan)
    eligible = character_sized(comps) if n else np.zeros(0, dtype=bool)
    idx = np.flatnonzero(eligible)
    if idx.size > MAX_GLYPHS:
        idx = _per_line_sample(idx, comps.line[idx], seed)
    if idx.size < 2:
        distance[idx] = NO_TWIN
        return Glyphs(distance=distance, eligible=eligible)
    h = comps.height[idx].astype(np.float32)
    order = np.argsort(h, kind="stable")
    idx, h = idx[order], h[order]
    w = comps.width[idx].astype(np.float32)
    d = descriptors(labels, comps, idx)
    sq = (d * d).sum(axis=1)
    best = np.full(idx.size, np.inf, dtype=np.float32)
    # components of one height at a time, against the contiguous run of compatible heights
    values, starts = np.unique(h, return_index=True)
    ends = np.r_[starts[1:], h.size]
    for value, a, b in zip(values, starts, ends, strict=True):
        tol = max(1.0, SIZE_TOLERANCE * float(value))
        lo = int(np.searchsorted(h, value - tol, side="left"))
        hi = int(np.searchsorted(h, value + tol, side="right"))
        d2 = sq[a:b, None] + sq[None, lo:hi] - 2.0 * (d[a:b] @ d[lo:hi].T)
        wa, wc = w[a:b, None], w[None, lo:hi]
        ok = np.abs(wa - wc) <= np.maximum(1.0, SIZE_TOLERANCE * wa)
        ok[np.arange(b - a), np.arange(a, b) - lo] = False  # not its own twin
        best[a:b] = np.where(ok, np.maximum(d2, 0.0), np.inf).min(axis=1)
    best = np.sqrt(best / (GRID * GRID))
    distance[idx] = np.where(np.isfinite(best), best, NO_TWIN)
    return Glyphs(distance=distance, eligible=eligible)


def twin_summary(distance: np.ndarray) -> tuple[float, float]:
    """(share of components with a near-identical twin, median twin distance) of some components.

    NaN values (components not measured) are ignored; (NaN, NaN) when none is left.
    """
    d = distance[~np.isnan(distance)]
    if d.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(d < TWIN_DISTANCE)), float(np.median(d))
