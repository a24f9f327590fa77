"""The tesseract wrapper: real runs, and simulated failures."""

from __future__ import annotations

import subprocess

import numpy as np
import pytesseract
import pytest

from app.errors import MissingDependencyError, OcrError, OcrTimeoutError
from app.ocr import libtesseract
from app.ocr import tesseract as tess
from tests.conftest import needs_fonts, needs_tesseract
from tests.helpers import handwritten_page, typed_page

needs_library = pytest.mark.skipif(
    libtesseract.load_library() is None, reason="libtesseract is not installed"
)


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
    """Skip the version check, and run the command engine (whose pytesseract call is faked)."""
    monkeypatch.setattr(tess, "tesseract_version", lambda: "5.0")
    monkeypatch.setattr(tess, "resolve_engine", lambda engine=None: "cli")


@pytest.mark.usefixtures("no_version_check")
def test_timeout_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pytesseract, "image_to_data", _raise(RuntimeError("Tesseract process timeout"))
    )
    with pytest.raises(OcrTimeoutError, match="longer than 2 s"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8), timeout=2)


@pytest.mark.usefixtures("no_version_check")
def test_crash_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pytesseract, "image_to_data", _raise(pytesseract.TesseractError(-11, "segfault"))
    )
    with pytest.raises(OcrError, match="segfault"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))
    monkeypatch.setattr(pytesseract, "image_to_data", _raise(RuntimeError("boom")))
    with pytest.raises(OcrError, match="boom"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))


@pytest.mark.usefixtures("no_version_check")
def test_missing_binary_during_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytesseract, "image_to_data", _raise(pytesseract.TesseractNotFoundError()))
    with pytest.raises(MissingDependencyError, match="Could not find program 'tesseract'"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8))


def test_missing_binary_at_version_check(monkeypatch: pytest.MonkeyPatch) -> None:
    tess.tesseract_version.cache_clear()
    monkeypatch.setattr(tess, "TESSERACT_CMD", "no-such-tesseract-binary")
    try:
        with pytest.raises(MissingDependencyError, match="Could not find program 'tesseract'"):
            tess.tesseract_version()
    finally:
        tess.tesseract_version.cache_clear()


def test_too_old_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    tess.tesseract_version.cache_clear()
    monkeypatch.setattr(tess, "_command_output", lambda *_a: "tesseract 3.05.02\n leptonica")
    try:
        with pytest.raises(MissingDependencyError, match="too old"):
            tess.tesseract_version()
    finally:
        tess.tesseract_version.cache_clear()


def test_version_check_has_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*_a: object, **kw: object) -> None:
        assert kw["timeout"] == tess.CHECK_TIMEOUT
        raise subprocess.TimeoutExpired("tesseract", 1.0)

    tess.tesseract_version.cache_clear()
    monkeypatch.setattr(tess.subprocess, "run", hang)
    try:
        with pytest.raises(OcrTimeoutError, match="took longer"):
            tess.tesseract_version()
    finally:
        tess.tesseract_version.cache_clear()


def test_omp_thread_limit_is_one() -> None:
    import os

    assert os.environ["OMP_THREAD_LIMIT"] == "1"


@needs_tesseract
@needs_library
@needs_fonts
@pytest.mark.parametrize("lang", ["eng", "fra", "eng+fra"])
def test_library_and_command_give_the_same_words(lang: str) -> None:
    """The in-process engine is the command without its start-up: same words, boxes, confidences."""
    for page in (typed_page(150)[:400], handwritten_page(150, seed=3)[:400]):
        lib_words = tess.image_to_words(page, lang=lang, engine="library")
        cli_words = tess.image_to_words(page, lang=lang, engine="cli")
        assert len(lib_words) >= 5
        assert lib_words == cli_words


@needs_tesseract
@needs_fonts
@pytest.mark.parametrize("engine", ["library", "cli"])
def test_no_inverted_retry_reads_a_negative_no_more(engine: str) -> None:
    """Tesseract reads white-on-black text through its second, inverted reading; switched off,
    it does not (the feature stage's crops are dark on white, so there it only reads noise)."""
    if engine == "library" and libtesseract.load_library() is None:
        pytest.skip("libtesseract is not installed")
    negative = 255 - typed_page(150)[:300]
    as_tesseract = tess.image_to_words(negative, engine=engine)
    no_retry = tess.image_to_words(negative, engine=engine, retry_inverted=False)
    assert len(as_tesseract) >= 5
    assert np.median([w.conf for w in as_tesseract]) > 80
    assert not no_retry or np.median([w.conf for w in no_retry]) < 50
    # the setting is per call: tesseract's own behaviour comes back on the next default call
    assert tess.image_to_words(negative, engine=engine) == as_tesseract


@needs_tesseract
@needs_library
@needs_fonts
def test_library_and_command_agree_without_inverted_retry() -> None:
    for page in (typed_page(150)[:400], handwritten_page(150, seed=3)[:400]):
        lib_words = tess.image_to_words(page, engine="library", retry_inverted=False)
        cli_words = tess.image_to_words(page, engine="cli", retry_inverted=False)
        assert len(lib_words) >= 5
        assert lib_words == cli_words


@needs_tesseract
@needs_library
def test_library_engine_is_loaded_once_per_process() -> None:
    assert libtesseract.engine("eng") is libtesseract.engine("eng")
    assert libtesseract.engine("eng") is not libtesseract.engine("fra")


@needs_tesseract
@needs_library
@needs_fonts
def test_library_timeout_is_mapped() -> None:
    page = np.vstack([typed_page(300)] * 2)  # long enough that 1 ms cannot suffice
    with pytest.raises(OcrTimeoutError, match=r"longer than 0\.001 s"):
        tess.image_to_words(page, engine="library", timeout=0.001)
    # the engine is still usable afterwards
    assert tess.image_to_words(typed_page(150)[:300], engine="library")


@needs_tesseract
@needs_library
def test_library_missing_language() -> None:
    with pytest.raises(MissingDependencyError, match="cannot load language"):
        tess.image_to_words(np.full((50, 50), 255, np.uint8), lang="xyz", engine="library")


@needs_tesseract
def test_auto_falls_back_to_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    tess._library_matches_command.cache_clear()
    try:
        monkeypatch.setattr(libtesseract, "library_version", lambda: None)
        assert tess.resolve_engine("auto") == "cli"
        tess._library_matches_command.cache_clear()
        monkeypatch.setattr(libtesseract, "library_version", lambda: "0.0.1")
        assert tess.resolve_engine("auto") == "cli"
        assert "tesseract command" in tess.engine_description("auto")
    finally:
        tess._library_matches_command.cache_clear()
    with pytest.raises(ValueError, match="unknown OCR engine"):
        tess.resolve_engine("gpu")


def test_library_engine_needs_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libtesseract, "load_library", lambda: None)
    monkeypatch.setattr(libtesseract, "_engines", {})
    with pytest.raises(MissingDependencyError, match="libtesseract is not installed"):
        libtesseract.engine("eng")
    assert libtesseract.library_version() is None


def test_parse_tsv_keeps_words_only() -> None:
    tsv = (
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight"
        "\tconf\ttext\n"
        "1\t1\t0\t0\t0\t0\t0\t0\t100\t50\t-1\t\n"
        "5\t1\t1\t1\t1\t1\t10\t12\t30\t14\t91.5\tHello\n"
        "5\t1\t1\t1\t1\t2\t45\t12\t8\t14\t40\t \n"
        "5\t1\t1\t1\t2\t1\t10\t30\t30\t14\t12.25\tworld\n"
    )
    words = tess.parse_tsv(tsv)
    assert [(w.text, w.conf, w.line_key) for w in words] == [
        ("Hello", 91.5, (1, 1, 1)),
        ("world", 12.25, (1, 1, 2)),
    ]
    assert (words[0].left, words[0].top, words[0].width, words[0].height) == (10, 12, 30, 14)


@needs_library
def test_library_keeps_leptonica_messages_off_stderr() -> None:
    """In-process, tesseract's and leptonica's chatter would land in the service's log."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import ctypes, ctypes.util\n"
        "find = ctypes.util.find_library\n"
        "lept = ctypes.CDLL(find('lept') or find('leptonica'))\n"
        "{load}"
        "lept.boxCreate(-1, -1, -1, -1)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code.format(load=load)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=True,
        ).stderr
        for load in ("", "from app.ocr import libtesseract; libtesseract.load_library()\n")
    ]
    assert "Error in boxCreate" in runs[0]  # leptonica does print by default
    assert "Error in boxCreate" not in runs[1]


@needs_tesseract
@needs_library
@needs_fonts
def test_library_engine_is_safe_across_threads() -> None:
    """With INKWELL_WORKERS=1 the server's threads share the process's engine."""
    from concurrent.futures import ThreadPoolExecutor

    page = typed_page(150)[:300]
    expected = tess.image_to_words(page, engine="library")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: tess.image_to_words(page, engine="library"), range(8)))
    assert all(r == expected for r in results)
