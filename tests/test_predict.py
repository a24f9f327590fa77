"""The page label: page probability + handwritten share -> handwritten or typed.

The mixed detector on the page's fragments says mixed; fragments of one row and one verdict are
shown as one line.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.models.mixed import (
    MIXED_FEATURES,
    MixedDetector,
    choose_threshold,
    fit_detector,
    handwritten_items,
    mixed_evidence,
)
from app.models.predict import (
    LineVerdict,
    PageVerdict,
    document_label,
    final_label,
    merge_row_verdicts,
)
from app.models.verdict import LABEL_MIXED, VerdictRule, fit_rule, labels_of

RULE = VerdictRule(a=1.0, b=1.0, c=0.0)


@pytest.mark.parametrize(
    ("p", "share", "label"),
    [
        (0.9, 0.85, "handwritten"),  # a handwritten letter under a printed letterhead
        (0.1, 0.05, "typed"),  # a typed page with a signature
        (0.02, 0.5, "typed"),  # the page model is sure: a printed form with a few fill-ins
        (0.6, 0.1, "typed"),  # an unsure page model, almost no handwritten line: typed
        (0.4, 0.9, "handwritten"),  # and the other way round
        (0.1, None, "typed"),  # no text line: the page model alone
        (0.1, float("nan"), "typed"),
    ],
)
def test_final_label_without_a_mixed_detector(p: float, share: float | None, label: str) -> None:
    assert final_label(p, share, RULE) == label


def test_the_default_rule_is_the_page_model_alone() -> None:
    rule = VerdictRule.from_dict(None)
    assert rule.label(0.2, 0.9) == "typed"
    assert rule.label(0.7, 0.1) == "handwritten"
    assert rule.score(0.7, None) == pytest.approx(0.7)
    assert VerdictRule.from_dict(RULE.as_dict()) == RULE
    assert not rule.mixed.enabled


def test_fit_rule_learns_from_both_kinds_of_evidence() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    # the page model is noisy; the share separates the classes better
    p = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.25, y.size), 0.01, 0.99)
    share = np.clip(np.where(y == 1, 0.85, 0.08) + rng.normal(0, 0.08, y.size), 0, 1)
    rule = fit_rule(p, share, y)
    assert rule.a > 0 and rule.b > 0
    labels = labels_of(rule, p, share)
    truth = np.where(y == 1, "handwritten", "typed")
    alone = np.where(p >= 0.5, "handwritten", "typed")
    assert np.mean(labels == truth) > np.mean(alone == truth)
    assert fit_rule(p[:10], share[:10], np.zeros(10, int)) == VerdictRule()


def _form(entries: int, *, beside: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A typed form: 20 printed rows (labels at x 0-200), ``entries`` handwritten fill-ins."""
    boxes = [(0, 30 * i, 200, 30 * i + 15) for i in range(20)]
    p = [0.05] * 20
    for k in range(entries):
        x0 = 260 if beside else 0
        y0 = 30 * k if beside else 620 + 30 * k
        boxes.append((x0, y0, x0 + 120, y0 + 18))
        p.append(0.9)
    return np.array(boxes, dtype=float), np.array(p)


def test_mixed_evidence_counts_items_and_sees_them_beside_print() -> None:
    boxes, p = _form(3)
    x = dict(zip(MIXED_FEATURES, mixed_evidence(boxes, p, 0.1), strict=True))
    assert x["mixed_items"] == pytest.approx(np.log1p(3))
    assert x["mixed_sure_items"] == pytest.approx(np.log1p(3))
    assert x["mixed_beside_print"] == pytest.approx(1.0)
    assert x["mixed_logit_q"] == pytest.approx(np.log(0.1 / 0.9))
    below = dict(zip(MIXED_FEATURES, mixed_evidence(*_form(3, beside=False), 0.1), strict=True))
    assert below["mixed_beside_print"] == 0.0
    # no fragment at all: no item, nothing beside print
    none = dict(
        zip(MIXED_FEATURES, mixed_evidence(np.zeros((0, 4)), np.zeros(0), 0.5), strict=True)
    )
    assert none["mixed_items"] == 0.0 and none["mixed_hw_share"] == 0.0


def test_handwritten_fragments_of_one_row_make_one_item() -> None:
    boxes = np.array([(0, 0, 50, 20), (60, 0, 110, 20), (0, 100, 50, 120), (400, 0, 450, 20)])
    items = handwritten_items(boxes, np.array([True, True, True, True]))
    assert sorted(sorted(i.tolist()) for i in items) == [[0, 1], [2], [3]]
    assert handwritten_items(boxes, np.zeros(4, dtype=bool)) == []


def test_a_fitted_detector_calls_filled_forms_mixed_and_signed_pages_typed() -> None:
    rng = np.random.default_rng(1)
    pages, y = [], []
    for i in range(60):
        n = int(rng.integers(3, 7))
        q = float(rng.uniform(0.01, 0.3))  # the page verdict does not tell them apart
        pages.append(mixed_evidence(*_form(n), q))
        y.append(True)
        pages.append(mixed_evidence(*_form(i % 2, beside=False), q))  # a signature or none
        y.append(False)
    x, is_mixed = np.array(pages), np.array(y)
    detector = fit_detector(x, is_mixed, np.ones(is_mixed.size))
    assert detector.enabled
    called = detector.is_mixed(x)
    assert called[is_mixed].mean() >= 0.9
    assert called[~is_mixed].mean() <= 0.02
    rule = RULE.with_mixed(detector)
    assert rule.label(0.1, 0.2, _form(5)) == LABEL_MIXED
    assert rule.label(0.1, 0.05, _form(1, beside=False)) == "typed"
    assert rule.label(0.1, 0.2) == "typed"  # without its fragments a page is never mixed
    assert VerdictRule.from_dict(rule.as_dict()) == rule


def test_detector_threshold_keeps_false_mixed_under_the_bound() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.5, 0.4, 0.3, 0.2, 0.1])
    is_mixed = np.array([True] * 4 + [False] * 6)
    w = np.ones(10)
    # one pure page scores 0.95: any threshold under it calls it mixed (1 of 6 > 2 %)
    assert choose_threshold(score, is_mixed, w, 0.02) == 1.0
    assert choose_threshold(score, is_mixed, w, 0.2) == pytest.approx(0.6)
    assert not MixedDetector().enabled
    assert not fit_detector(np.zeros((4, len(MIXED_FEATURES))), np.zeros(4, bool), w[:4]).enabled


def test_row_fragments_of_one_verdict_merge_and_handwriting_beside_print_keeps_its_box() -> None:
    lines = [
        LineVerdict((0, 0, 100, 20), "typed", 0.1),
        LineVerdict((110, 0, 200, 20), "typed", 0.2),
        LineVerdict((230, 0, 300, 22), "handwritten", 0.9),
        LineVerdict((0, 100, 100, 120), "typed", 0.1),
    ]
    merged = merge_row_verdicts(lines)
    assert [(m.bbox, m.label) for m in merged] == [
        ((0, 0, 200, 20), "typed"),
        ((230, 0, 300, 22), "handwritten"),
        ((0, 100, 100, 120), "typed"),
    ]
    assert merged[0].p_handwritten == pytest.approx((0.1 * 100 + 0.2 * 90) / 190)


def _verdict(label: str, empty: bool = False) -> PageVerdict:
    return PageVerdict(1, label, 0.9, 0.9, 10, 10, None, 1.0, empty)


def test_document_label() -> None:
    assert document_label([_verdict("typed"), _verdict("typed")]) == "typed"
    assert document_label([_verdict("typed"), _verdict("handwritten")]) == "mixed"
    assert document_label([_verdict("typed"), _verdict("empty", empty=True)]) == "typed"
    assert document_label([_verdict("empty", empty=True)]) == "empty"


def test_featurise_stream_keeps_at_most_window_pages_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app.documents import Page
    from app.features import OcrSettings
    from app.models import predict

    taken, finished, worst = [0], [0], [0]

    def pages():  # type: ignore[no-untyped-def]
        for i in range(1, 13):
            taken[0] += 1
            worst[0] = max(worst[0], taken[0] - finished[0])
            yield Page(image=np.full((20, 20), 255, np.uint8), number=i, dpi=None)

    def slow(image, ocr):  # type: ignore[no-untyped-def]
        import time

        time.sleep(0.01)
        finished[0] += 1
        return predict.PageRow([0.0], [], 1.0, 0, 0.0)

    monkeypatch.setattr(predict, "featurise_page", slow)
    with ThreadPoolExecutor(4) as pool:
        rows = predict.featurise_stream(pages(), OcrSettings(), executor=pool, window=3)
    assert [meta.number for meta, _ in rows] == list(range(1, 13))
    assert worst[0] <= 3 + 1  # the window, plus the page being taken
