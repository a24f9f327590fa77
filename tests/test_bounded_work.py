"""Bounded work per page (issue 19): the shortcuts give the results of the plain computation.

The rule mask and the line assignment are exact rewrites: they are checked against the plain
computation they replaced, on random masks. A straightened page's crops are cut from the page
as given and turned one by one: they must show what the straightened layout shows. A page
that only looks turned is normalised once, and a page whose text is tiny next to its size is
laid out within the pixel budget. A page read turned to decide its orientation takes its
labelling turned, and the second side of a sideways page the first side's layout turned: both
give the lines and the OCR of labelling the turned page. Feature extraction and pool workers run
BLAS on one thread, with the numbers of the default threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from threadpoolctl import threadpool_info, threadpool_limits

from app.features import analyse_page, extract
from app.features.glyphs import twin_distances
from app.features.labelling import Labelled
from app.features.layout import Components, Line, find_components, group_lines
from app.features.normalise import (
    MAX_CANON_PIXELS,
    RULE_LENGTH,
    Normalised,
    component_boxes,
    normalise,
    rule_mask,
)
from app.processes import worker_pool
from tests.conftest import needs_fonts, needs_tesseract
from tests.helpers import turn_page, typed_page


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


@needs_fonts
@pytest.mark.parametrize("degrees", [0.0, 5.0, -3.0])
def test_crops_of_a_straightened_page_show_what_its_layout_shows(degrees: float) -> None:
    """Cut from the page as given and turned alone, a line's crop lands on the layout's line."""
    norm = normalise(turn_page(typed_page(150, seed=2), degrees))
    assert (norm.turned_from is not None) == (degrees != 0.0)
    comps, _ = find_components(norm.ink)
    lines = group_lines(comps)
    assert len(lines) >= 10
    for ln in lines[:12]:
        box = (ln.x0 - 2, ln.y0 - 2, ln.x1 + 2, ln.y1 + 2)
        crop = norm.crop(box).astype(np.float64)
        layout = norm.grey[box[1] : box[3], box[0] : box[2]]
        ref = np.asarray(
            Image.fromarray(layout).resize(
                (crop.shape[1], crop.shape[0]), Image.Resampling.BILINEAR
            ),
            dtype=np.float64,
        )
        errors = {
            (dy, dx): np.abs(np.roll(crop, (dy, dx), axis=(0, 1)) - ref)[3:-3, 3:-3].mean()
            for dy in range(-3, 4)
            for dx in range(-3, 4)
        }
        assert min(errors, key=lambda k: errors[k]) in {(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)}
        assert errors[(0, 0)] < 25.0


real_looks_sideways = extract.looks_sideways


@needs_tesseract
@needs_fonts
def test_a_suspect_page_whose_turn_loses_is_normalised_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The turns of a page that only looks sideways are read from its normalised copy."""
    page = typed_page(150, seed=5)
    calls: list[tuple[int, int]] = []
    real = extract.normalise

    def counting(grey: np.ndarray) -> object:
        calls.append(grey.shape)
        return real(grey)

    monkeypatch.setattr(extract, "normalise", counting)
    monkeypatch.setattr(extract, "looks_sideways", lambda comps: True)  # a false suspicion
    analysis = analyse_page(page)
    assert analysis.orientation == 0
    assert calls == [page.shape]
    assert analysis.timings["orientation"] > 0.0
    # a page that is turned is still read again, in full, the right way up
    calls.clear()
    monkeypatch.setattr(extract, "looks_sideways", real_looks_sideways)
    turned = analyse_page(np.ascontiguousarray(np.rot90(page, 1)))
    assert turned.orientation == 270
    assert len(calls) == 2


@needs_fonts
def test_tiny_text_on_a_large_page_is_laid_out_within_the_pixel_budget() -> None:
    """A page whose text is tiny next to its size costs no more than the budget allows."""
    small = typed_page(100, seed=3)
    big = np.full((small.shape[0] * 3, small.shape[1] * 3), 255, dtype=np.uint8)
    big[: small.shape[0], : small.shape[1]] = small  # small print on a large sheet
    norm = normalise(np.tile(small, (3, 3)))
    assert norm.grey.size <= MAX_CANON_PIXELS * 1.01
    assert normalise(big).grey.size <= MAX_CANON_PIXELS * 1.01


@needs_tesseract
@needs_fonts
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_a_page_read_turned_gets_the_upright_pages_verdict(quarter_turns: int) -> None:
    """The line model and the mixed detector read a turned page's fragments the right way up.

    Its boxes are reported on the page as given, but a fragment's height and its row are the
    upright page's: the verdict, the share and the line probabilities are the upright page's.
    """
    from app.documents import Page
    from app.features.extract import given_box, upright_box
    from app.models.predict import classify_pages
    from app.models.registry import load_version
    from tests.conftest import ROOT

    model = load_version(ROOT / "models" / "default")
    page = typed_page(150, seed=5)
    given = np.ascontiguousarray(np.rot90(page, quarter_turns))
    upright, turned = classify_pages(
        [Page(image=page, number=1, dpi=None), Page(image=given, number=2, dpi=None)], model
    )
    assert turned.orientation == 90 * ((4 - quarter_turns) % 4)
    assert (turned.label, turned.handwritten_share) == (upright.label, upright.handwritten_share)
    shape = (int(given.shape[0]), int(given.shape[1]))
    assert sorted(ln.p_handwritten for ln in turned.lines) == pytest.approx(
        sorted(ln.p_handwritten for ln in upright.lines)
    )
    for ln in turned.lines:  # on the page as given, and the same box once turned back
        box = upright_box(ln.bbox, turned.orientation, shape)
        assert given_box(box, turned.orientation, shape) == ln.bbox
        x0, y0, x1, y1 = ln.bbox
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


@needs_fonts
def test_feature_extraction_runs_blas_on_one_thread_with_the_same_numbers() -> None:
    norm = normalise(typed_page(dpi=150, seed=2))
    comps, labels = find_components(norm.ink)
    extract.one_blas_thread()
    assert _blas_threads()
    assert set(_blas_threads()) == {1}
    one = twin_distances(labels, comps).distance
    with threadpool_limits(limits=4, user_api="blas"):
        assert max(_blas_threads()) > 1
        many = twin_distances(labels, comps).distance
    assert set(_blas_threads()) == {1}  # the limit is back after the block
    assert np.isfinite(one).sum() > 50
    np.testing.assert_array_equal(one, many)


def test_pool_workers_run_blas_on_one_thread() -> None:
    with worker_pool(1) as pool:
        threads = pool.submit(_blas_threads).result(timeout=60)
    assert threads
    assert set(threads) == {1}


@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_component_areas_count_each_components_pixels(dtype: type) -> None:
    """Areas are counted over the ink alone: each is its component's pixel count, exactly."""
    rng = np.random.default_rng(11)
    ink = ndimage.binary_dilation(rng.random((83, 59)) < 0.04, iterations=1).astype(dtype)
    lab = Labelled.of(ink)
    expected = [int((lab.labels == i + 1).sum()) for i in range(lab.area.size)]
    assert lab.area.tolist() == expected
    assert lab.area.sum() == np.count_nonzero(ink)
    labels4, n4 = ndimage.label(ink)
    boxes = component_boxes(ink)
    assert boxes.shape == (n4, 5)
    assert boxes[:, 4].tolist() == [float((labels4 == i + 1).sum()) for i in range(n4)]
    assert component_boxes(np.zeros((5, 5), dtype=dtype)).shape == (0, 5)


def test_a_turned_labelling_is_the_labelling_of_the_turned_mask() -> None:
    """Turned boxes, areas and label view: the components of labelling the turned mask."""
    rng = np.random.default_rng(3)
    ink = ndimage.binary_dilation(rng.random((61, 47)) < 0.05, iterations=1)
    first = Labelled.of(ink)
    for k in range(4):
        turned = first.quarter_turned(k)
        fresh = Labelled.of(np.rot90(ink, k))
        assert turned.labels.shape == fresh.labels.shape
        assert sorted(map(tuple, np.column_stack([turned.box, turned.area]).tolist())) == sorted(
            map(tuple, np.column_stack([fresh.box, fresh.area]).tolist())
        )
        for i, (x0, y0, x1, y1) in enumerate(turned.box):  # each id is one component, boxed
            pixels = turned.labels == i + 1
            ys, xs = np.nonzero(pixels)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            assert np.unique(fresh.labels[pixels]).size == 1


def _layout(reading: extract._Reading) -> list[tuple[int, int, int, int, int]]:
    return [(ln.x0, ln.y0, ln.x1, ln.y1, int(ln.members.size)) for ln in reading.lines]


@needs_tesseract
@needs_fonts
@pytest.mark.parametrize("degrees", [0.0, 4.0])
def test_turned_readings_read_what_labelling_the_turned_page_reads(
    degrees: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orientation decision's readings, made cheaply, equal the plain ones."""
    page = turn_page(typed_page(120, seed=2), degrees) if degrees else typed_page(120, seed=2)
    ocr = extract.OcrSettings()
    first = extract._Reading.of(page, ocr)
    assert (first.norm.turned_from is not None) == bool(degrees)
    readings = {}
    for k in (1, 2, 3):
        readings[k] = first.turned(k, ocr)
        view = readings[k].norm
        plain = extract._Reading._read(
            type(view)(**{**view.__dict__, "ink": np.ascontiguousarray(view.ink)}),
            ocr,
            decide=False,
            t0=0.0,
        )
        assert _layout(readings[k]) == _layout(plain)
        assert readings[k].ocr == plain.ocr and readings[k].per_line == plain.per_line
    for k, half in ((3, readings[1].half_turned(ocr)), (2, first.half_turned(ocr))):
        assert _layout(half) == _layout(readings[k])
        assert half.ocr == readings[k].ocr and half.per_line == readings[k].per_line
    # deciding a sideways suspect labels the page once and lays out one turned side
    labelled: list[tuple[int, ...]] = []
    real_of = Labelled.of

    def counting(ink: np.ndarray, connectivity: int = 8) -> Labelled:
        if ink.shape == first.norm.ink.shape and connectivity == 8:  # not the probe's 4-connected
            labelled.append(ink.shape)
        return real_of(ink, connectivity)

    groups: list[int] = []
    real_group = extract.group_lines

    def counting_groups(comps: Components, *, min_members: int = 2) -> list[Line]:
        groups.append(len(comps))
        return real_group(comps, min_members=min_members)

    read: list[int] = []
    real_ocr = extract.ocr_features

    def counting_ocr(
        norm: Normalised,
        lines: list[Line],
        settings: extract.OcrSettings,
        per_line: dict[int, tuple[float, float]] | None = None,
    ) -> dict[str, float]:
        read.append(len(lines))
        return real_ocr(norm, lines, settings, per_line)

    monkeypatch.setattr(Labelled, "of", staticmethod(counting))
    monkeypatch.setattr(extract, "group_lines", counting_groups)
    monkeypatch.setattr(extract, "ocr_features", counting_ocr)
    monkeypatch.setattr(extract, "looks_sideways", lambda comps: True)
    analysis = analyse_page(page)
    assert analysis.orientation == 0
    assert labelled == [first.norm.ink.shape]
    assert len(groups) == 1 + 1 + 1  # the page, one turned side, and the fragments at the end
    # upright lines turned sideways fall into no more lines: the gate spares both sides' OCR
    assert extract.line_share(first.turned(1, ocr, read_ocr=False)) < (
        extract.SIDEWAYS_GATE * extract.line_share(first)
    )
    assert len(read) == 1
    # without the gate both sides are read, each for its OCR alone
    labelled.clear()
    groups.clear()
    read.clear()
    monkeypatch.setattr(extract, "SIDEWAYS_GATE", 0.0)
    analysis = analyse_page(page)
    assert analysis.orientation == 0
    assert labelled == [first.norm.ink.shape]
    assert len(groups) == 1 + 1 + 1
    assert len(read) == 3
    # an upside-down suspect: no layout of its own at all
    labelled.clear()
    groups.clear()
    monkeypatch.setattr(extract, "looks_sideways", lambda comps: False)
    monkeypatch.setattr(extract, "UPSIDE_DOWN_SUSPECT", 1e9)
    analysis = analyse_page(page)
    assert analysis.orientation == 0 and analysis.timings["orientation"] > 0.0
    assert labelled == [first.norm.ink.shape]
    assert len(groups) == 1 + 1
