"""The tesseract wrapper: real runs, and simulated failures."""

from __future__ import annotations

import numpy as np
import pytesseract
import pytest

from app.errors import MissingDependencyError, OcrError, OcrTimeoutError
from app.ocr import tesseract as tess
from tests.conftest import needs_fonts, needs_tesseract
from tests.helpers import typed_page


@needs_tesseract
@needs_fonts
def test_reads_typed_text_with_high_confidence() -> None:
    words = tess.image_to_words(typed_page(200)[:300], lang="eng", timeout=30)
    assert len(words) >= 5
    assert np.median([w.conf for w in words]) > 80
    assert all(w.text for w in words)


@needs_tesseract
def test_blank_page_is_not_an_error() -> None:
    assert tess.image_to_words(np.full((200, 300), 255, np.uint8)) == []
    assert tess.image_to_words(np.zeros((0, 0), np.uint8)) == []


@needs_tesseract
def test_version_and_languages() -> None:
    assert tess.tesseract_version()[0].isdigit()
    assert tess.check_tesseract("eng")
    with pytest.raises(MissingDependencyError, match="language pack"):
        tess.check_tesseract("eng+xyz")


def _raise(exc: BaseException):  # type: ignore[no-untyped-def]
    def fn(*_a: object, **_k: object) -> None:
        raise exc

    return fn


@pytest.fixture
def no_version_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tess, "tesseract_version", lambda: "5.0")


@pytest.mark.usefixtures("no_version_check")
def test_timeout_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tess.pytesseract, "image_to_data", _raise(RuntimeError("Tesseract process timeout"))
    )
    with pytest.raises(OcrTimeoutError, match="longer than 2 s"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8), timeout=2)


@pytest.mark.usefixtures("no_version_check")
def test_crash_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tess.pytesseract, "image_to_data", _raise(pytesseract.TesseractError(-11, "segfault"))
    )
    with pytest.raises(OcrError, match="segfault"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))
    monkeypatch.setattr(tess.pytesseract, "image_to_data", _raise(RuntimeError("boom")))
    with pytest.raises(OcrError, match="boom"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))


@pytest.mark.usefixtures("no_version_check")
def test_missing_binary_during_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tess.pytesseract, "image_to_data", _raise(pytesseract.TesseractNotFoundError())
    )
    with pytest.raises(MissingDependencyError, match="Could not find program 'tesseract'"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))


def test_missing_binary_at_version_check(monkeypatch: pytest.MonkeyPatch) -> None:
    tess.tesseract_version.cache_clear()
    monkeypatch.setattr(
        tess.pytesseract, "get_tesseract_version", _raise(pytesseract.TesseractNotFoundError())
    )
    try:
        with pytest.raises(MissingDependencyError, match="Could not find program 'tesseract'"):
            tess.tesseract_version()
    finally:
        tess.tesseract_version.cache_clear()


def test_too_old_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    class Old:
        release = (3, 5)

        def __str__(self) -> str:
            return "3.05"

    tess.tesseract_version.cache_clear()
    monkeypatch.setattr(tess.pytesseract, "get_tesseract_version", Old)
    try:
        with pytest.raises(MissingDependencyError, match="too old"):
            tess.tesseract_version()
    finally:
        tess.tesseract_version.cache_clear()


def test_omp_thread_limit_is_one() -> None:
    import os

    assert os.environ["OMP_THREAD_LIMIT"] == "1"
