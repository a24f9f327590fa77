"""Bounded work per page (issue 19): the shortcuts give the results of the plain computation.

The rule mask and the line assignment are exact rewrites: they are checked against the plain
computation they replaced, on random masks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from app.features.layout import find_components
from app.features.normalise import RULE_LENGTH, rule_mask


def _plain_rule_mask(ink: np.ndarray, height: float, axes: tuple[int, ...]) -> np.ndarray:
    """The opening by a straight line, on every row and column (the computation replaced)."""
    length = max(3, round(RULE_LENGTH * height))
    mask = np.zeros(ink.shape, dtype=bool)
    for axis in axes:
        if ink.shape[axis] >= length:
            eroded = ndimage.minimum_filter1d(ink.view(np.uint8), size=length, axis=axis)
            mask |= ndimage.maximum_filter1d(eroded, size=length, axis=axis) > 0
    return mask


def test_rule_mask_equals_the_plain_opening_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(4, 160, 2))
        ink = rng.random((h, w)) < rng.uniform(0.3, 0.99)
        # a few long rules, some touching the edges, where the filters reflect the row
        for _ in range(int(rng.integers(0, 4))):
            r = int(rng.integers(0, h))
            a, b = sorted(int(v) for v in rng.integers(0, w, 2))
            ink[r, a : b + 1] = True
        for height in (0.5, 2.0, 3.3, 13.0, 20.0):
            for axes in ((1,), (0,), (0, 1)):
                expected = _plain_rule_mask(ink, height, axes)
                assert np.array_equal(rule_mask(ink, height, axes=axes), expected)


def _plain_lines(ink: np.ndarray, keep_label: np.ndarray) -> np.ndarray:
    """Each kept component's smeared-line id, from every pixel (the computation replaced)."""
    labels, n = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
    lut = np.zeros(n + 1, dtype=bool)
    lut[keep_label] = True
    mask = lut[labels]
    smeared = ndimage.maximum_filter1d(mask.view(np.uint8), size=17, axis=1) > 0
    line_labels, _ = ndimage.label(smeared, structure=np.ones((3, 3), dtype=bool))
    ys, xs = np.nonzero(mask)
    comp_to_line = np.zeros(n + 1, dtype=np.int64)
    comp_to_line[labels[ys, xs]] = line_labels[ys, xs]
    return comp_to_line[keep_label]


def test_line_ids_equal_the_plain_assignment_on_random_masks() -> None:
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(20, 300, 2))
        ink = ndimage.binary_dilation(rng.random((h, w)) < rng.uniform(0.005, 0.05), iterations=2)
        comps, _ = find_components(ink)
        assert np.array_equal(comps.line, _plain_lines(ink, comps.label))
