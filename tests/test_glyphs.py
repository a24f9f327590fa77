"""Glyph repetition: print repeats its glyph images, a hand does not (app/features/glyphs.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage

from app.features import glyphs
from app.features.glyphs import twin_distances, twin_summary
from app.features.layout import find_components
from app.features.normalise import normalise
from app.training.augment import jpeg
from tests.conftest import needs_fonts
from tests.helpers import typed_page


def _twins(grey: np.ndarray) -> tuple[float, float]:
    norm = normalise(grey)
    comps, labels = find_components(norm.ink)
    return twin_summary(twin_distances(labels, comps).distance)


def _hand_drawn(grey: np.ndarray, seed: int) -> np.ndarray:
    """Every glyph of a printed page bent by its own smooth random warp: no two alike any more."""
    rng = np.random.default_rng(seed)
    ink = grey < 128
    labels, _ = ndimage.label(ink)
    out = np.full_like(grey, 255)
    for i, sl in enumerate(ndimage.find_objects(labels), 1):
        patch = (labels[sl] == i).astype(np.float64)
        h, w = patch.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        amp = 0.12 * max(h, w)
        dy = amp * np.sin(xx / max(w, 1) * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))
        dx = amp * np.sin(yy / max(h, 1) * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))
        warped = ndimage.map_coordinates(patch, [yy + dy, xx + dx], order=1) > 0.5
        region = out[sl]
        region[warped] = 0
    return out


@needs_fonts
def test_print_has_near_identical_twins_and_a_warped_copy_does_not() -> None:
    page = typed_page(200)
    share, dist = _twins(page)
    hand_share, hand_dist = _twins(_hand_drawn(page, seed=3))
    assert share > 0.7
    assert hand_share < share - 0.3
    assert hand_dist > dist + 0.05


@needs_fonts
@pytest.mark.parametrize(
    "degrade",
    [
        lambda g: jpeg(g, 30),
        lambda g: np.asarray(Image.fromarray(g).filter(ImageFilter.GaussianBlur(1.0))),
        lambda g: np.clip(g + np.random.default_rng(0).normal(0, 12, g.shape), 0, 255).astype(
            np.uint8
        ),
    ],
    ids=["jpeg30", "blur", "noise"],
)
def test_degraded_print_keeps_more_twins_than_a_hand(degrade: object) -> None:
    page = typed_page(200)
    share, dist = _twins(degrade(page))  # type: ignore[operator]
    hand_share, hand_dist = _twins(_hand_drawn(page, seed=3))
    assert share > hand_share + 0.2
    assert dist < hand_dist


def test_every_line_keeps_glyphs_when_the_page_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    # 40 lines of 30 identical rings (an "o"): 1200 candidates, a cap of 200
    grey = np.full((40 * 30, 30 * 20), 255, np.uint8)
    for row in range(40):
        for col in range(30):
            grey[row * 30 + 5 : row * 30 + 18, col * 20 + 3 : col * 20 + 13] = 0
            grey[row * 30 + 7 : row * 30 + 16, col * 20 + 5 : col * 20 + 11] = 255
    ink = grey < 128
    comps, labels = find_components(ink, height=13)
    monkeypatch.setattr(glyphs, "MAX_GLYPHS", 200)
    result = twin_distances(labels, comps)
    measured = ~np.isnan(result.distance)
    assert measured.sum() <= 200
    per_line = np.bincount(comps.line[measured], minlength=comps.line.max() + 1)
    assert (per_line[np.unique(comps.line)] >= 4).all()  # each of the 40 lines measured
    assert np.nanmax(result.distance) < glyphs.TWIN_DISTANCE  # rings are twins of rings


def test_no_glyph_no_twin() -> None:
    comps, labels = find_components(np.zeros((50, 50), dtype=bool), height=13)
    result = twin_distances(labels, comps)
    assert result.distance.size == 0
    assert np.isnan(twin_summary(result.distance)[0])


def test_page_context_sets_each_fragment_against_the_page_median() -> None:
    from app.features.lines import (
        CONTEXT_FEATURE_NAMES,
        LINE_FEATURE_NAMES,
        LINE_MODEL_FEATURES,
        with_page_context,
    )

    twin = LINE_FEATURE_NAMES.index("line_glyph_twin_share")
    x = np.zeros((5, len(LINE_FEATURE_NAMES)))
    x[:, twin] = [0.8, 0.8, 0.7, 0.9, 0.0]  # four printed fragments, one handwritten entry
    boxes = np.array([[0, 0, 100, 10]] * 4 + [[120, 0, 160, 20]], dtype=float)
    out = with_page_context(x, boxes)
    assert out.shape == (5, len(LINE_MODEL_FEATURES))
    ctx = dict(zip(CONTEXT_FEATURE_NAMES, out[4, len(LINE_FEATURE_NAMES) :], strict=True))
    assert ctx["ctx_log_height"] == pytest.approx(np.log(2.0))
    assert ctx["ctx_glyph_twin_share"] == pytest.approx(-0.8)
    assert np.allclose(out[:, : len(LINE_FEATURE_NAMES)], x)  # the fragment's own features kept
    assert with_page_context(np.zeros((0, len(LINE_FEATURE_NAMES))), np.zeros((0, 4))).shape == (
        0,
        len(LINE_MODEL_FEATURES),
    )


def test_generated_fragments_are_labelled_by_where_the_handwriting_was_written() -> None:
    from app.training.lines import inside_share

    truth = [(100, 100, 200, 120)]
    assert inside_share(np.array([110, 100, 190, 120]), truth) == 1.0
    assert inside_share(np.array([150, 100, 250, 120]), truth) == pytest.approx(0.5)
    assert inside_share(np.array([300, 100, 400, 120]), truth) == 0.0
