"""The page label rule: page model + handwritten share -> handwritten, typed or mixed."""

from __future__ import annotations

import pytest

from app.models.predict import LABEL_MIXED, PageVerdict, document_label, final_label


@pytest.mark.parametrize(
    ("p", "share", "label"),
    [
        (0.9, 0.8, "handwritten"),
        (0.9, 0.3, LABEL_MIXED),  # called handwritten, but most of the text is typed
        (0.1, 0.05, "typed"),
        (0.1, 0.8, LABEL_MIXED),  # the bug the rule prevents: typed with 80 % handwriting
        (0.1, None, "typed"),
    ],
)
def test_final_label(p: float, share: float | None, label: str) -> None:
    assert final_label(p, share, (0.25, 0.35)) == label


def test_without_a_line_model_the_page_model_decides() -> None:
    assert final_label(0.1, 0.9, None) == "typed"


def _verdict(label: str, empty: bool = False) -> PageVerdict:
    return PageVerdict(1, label, 0.9, 0.9, 10, 10, None, 1.0, empty)


def test_document_label() -> None:
    assert document_label([_verdict("typed"), _verdict("typed")]) == "typed"
    assert document_label([_verdict("typed"), _verdict("handwritten")]) == "mixed"
    assert document_label([_verdict("typed"), _verdict("empty", empty=True)]) == "typed"
    assert document_label([_verdict("empty", empty=True)]) == "empty"
