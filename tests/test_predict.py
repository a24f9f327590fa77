"""The page label rule: page probability + handwritten share -> handwritten, typed or mixed."""

from __future__ import annotations

import numpy as np
import pytest

from app.models.predict import PageVerdict, document_label, final_label
from app.models.verdict import (
    LABEL_MIXED,
    MIXED_MAX_CONFIDENCE,
    MIXED_MIN_SHARE,
    VerdictRule,
    fit_rule,
    labels_of,
)

RULE = VerdictRule(a=1.0, b=1.0, c=0.0)


@pytest.mark.parametrize(
    ("p", "share", "label"),
    [
        (0.9, 0.85, "handwritten"),  # a handwritten letter under a printed letterhead
        (0.1, 0.05, "typed"),  # a typed page with a signature
        (0.5, 0.5, LABEL_MIXED),  # half the text area each way: a form filled in by hand
        (0.7, 0.35, LABEL_MIXED),
        (0.02, 0.5, "typed"),  # the page model is sure: a printed form with a few fill-ins
        (0.6, 0.1, "typed"),  # an unsure page model, almost no handwritten line: typed
        (0.4, 0.9, "handwritten"),  # and the other way round
        (0.1, None, "typed"),  # no text line: the page model alone
        (0.1, float("nan"), "typed"),
    ],
)
def test_final_label(p: float, share: float | None, label: str) -> None:
    assert final_label(p, share, RULE) == label


def test_mixed_needs_both_kinds_of_lines_and_an_unsure_verdict() -> None:
    m = MIXED_MIN_SHARE
    assert RULE.label(0.5, m) == LABEL_MIXED
    assert RULE.label(0.5, 1 - m) == LABEL_MIXED
    assert RULE.label(0.5, m - 0.01) != LABEL_MIXED
    assert RULE.label(0.5, 1 - m + 0.01) != LABEL_MIXED
    # both models disagreeing is not enough, and a sure combined verdict is never mixed
    assert RULE.label(0.99, 0.02) != LABEL_MIXED
    assert RULE.label(0.001, 0.45) == "typed"
    assert RULE.score(0.001, 0.45) < 1 - MIXED_MAX_CONFIDENCE


def test_the_default_rule_is_the_page_model_alone() -> None:
    rule = VerdictRule.from_dict(None)
    assert rule.label(0.2, 0.9) == "typed"
    assert rule.label(0.7, 0.1) == "handwritten"
    assert rule.score(0.7, None) == pytest.approx(0.7)
    assert VerdictRule.from_dict(RULE.as_dict()) == RULE


def test_fit_rule_learns_from_both_kinds_of_evidence() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    # the page model is noisy; the share separates the classes better
    p = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.25, y.size), 0.01, 0.99)
    share = np.clip(np.where(y == 1, 0.85, 0.08) + rng.normal(0, 0.08, y.size), 0, 1)
    rule = fit_rule(p, share, y)
    assert rule.a > 0 and rule.b > 0
    pure = (share < MIXED_MIN_SHARE) | (share > 1 - MIXED_MIN_SHARE)
    labels = labels_of(rule, p, share)
    truth = np.where(y == 1, "handwritten", "typed")
    alone = np.where(p >= 0.5, "handwritten", "typed")
    assert np.mean(labels[pure] == truth[pure]) > np.mean(alone[pure] == truth[pure])
    assert fit_rule(p[:10], share[:10], np.zeros(10, int)) == VerdictRule()


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
