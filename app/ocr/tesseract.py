"""The one wrapper around tesseract.

Two engines give the same words and confidences: ``library`` keeps one tesseract loaded in each
process (:mod:`app.ocr.libtesseract`, no 65 ms model load per call) and ``cli`` runs the
``tesseract`` command through pytesseract. ``auto`` (the default, ``INKWELL_OCR_ENGINE``) takes the
library when it is installed at the same version as the command, else the command.

Every call has a timeout and runs with ``OMP_THREAD_LIMIT=1`` (tesseract's OpenMP threads fight with
our own worker processes otherwise). Errors are mapped: missing binary ->
:class:`MissingDependencyError`, timeout -> :class:`OcrTimeoutError`, crash -> :class:`OcrError`.
A page with no text is not an error: it yields no words.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np
from PIL import Image

from app.config import get_settings
from app.errors import MissingDependencyError, OcrError, OcrTimeoutError
from app.ocr import libtesseract

log = logging.getLogger(__name__)

os.environ["OMP_THREAD_LIMIT"] = "1"

MIN_VERSION = (4, 0)
ENGINES = ("auto", "library", "cli")
TESSERACT_CMD = "tesseract"
CHECK_TIMEOUT = 15.0
_VERSION = re.compile(r"tesseract\s+v?(\d+)\.(\d+)(?:\.(\d+))?")


def _pytesseract() -> ModuleType:
    """pytesseract, imported when the command engine first runs.

    Importing it imports pandas when installed (about 1.5 s): the library engine and the checks
    below never need it.
    """
    import pytesseract  # noqa: PLC0415

    module: ModuleType = pytesseract
    return module


def _command_output(*args: str) -> str:
    """stdout+stderr of ``tesseract args`` (bounded by CHECK_TIMEOUT)."""
    try:
        done = subprocess.run(
            [TESSERACT_CMD, *args],
            capture_output=True,
            timeout=CHECK_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as e:
        raise MissingDependencyError(
            "Could not find program 'tesseract' (install tesseract-ocr)"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise OcrTimeoutError(
            f"'tesseract {' '.join(args)}' took longer than {CHECK_TIMEOUT:g} s"
        ) from e
    return (done.stdout + done.stderr).decode("utf-8", "replace")


@dataclass(frozen=True)
class OcrWord:
    """One word tesseract recognised, with its box in the input image's pixels."""

    text: str
    conf: float
    left: int
    top: int
    width: int
    height: int
    line_key: tuple[int, int, int]


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    """Return tesseract's version, checked once; raise if it is missing or too old."""
    output = _command_output("--version")
    match = _VERSION.search(output)
    if match is None:
        raise MissingDependencyError(f"cannot read tesseract's version from {output[:80]!r}")
    major, minor, patch = match.groups()
    version = f"{major}.{minor}" + (f".{patch}" if patch is not None else "")
    if (int(major), int(minor)) < MIN_VERSION:
        raise MissingDependencyError(f"tesseract {version} is too old; inkwell needs 4.0 or later")
    return version


def check_tesseract(lang: str) -> str:
    """Check tesseract and the language packs for ``lang`` (e.g. ``eng+fra``)."""
    version = tesseract_version()
    lines = _command_output("--list-langs").splitlines()
    available = {ln.strip() for ln in lines[1:] if ln.strip()}
    missing = [code for code in lang.split("+") if code not in available]
    if missing:
        raise MissingDependencyError(
            f"tesseract language pack(s) missing: {', '.join(missing)} "
            f"(install tesseract-ocr-{missing[0]})"
        )
    return version


@lru_cache(maxsize=1)
def _library_matches_command() -> bool:
    lib_version = libtesseract.library_version()
    cli_version = tesseract_version()
    if lib_version is None:
        log.info("libtesseract not found: OCR runs the tesseract command (%s)", cli_version)
        return False
    if lib_version != cli_version:
        log.warning(
            "libtesseract %s differs from the tesseract command %s: using the command",
            lib_version,
            cli_version,
        )
        return False
    return True


def resolve_engine(engine: str | None = None) -> str:
    """``library`` or ``cli``: what ``engine`` (default: the configured one) means here."""
    choice = engine or get_settings().ocr_engine
    if choice not in ENGINES:
        raise ValueError(f"unknown OCR engine {choice!r}; choose one of {', '.join(ENGINES)}")
    if choice == "auto":
        return "library" if _library_matches_command() else "cli"
    return choice


def engine_description(engine: str | None = None) -> str:
    """E.g. ``5.3.0 (libtesseract in-process)``, for /health and logs."""
    resolved = resolve_engine(engine)
    how = "libtesseract in-process" if resolved == "library" else "tesseract command"
    return f"{tesseract_version()} ({how})"


def warm_up(lang: str, engine: str | None = None) -> None:
    """Load the language model now (worker start-up), so the first page does not pay for it."""
    if resolve_engine(engine) == "library":
        libtesseract.engine(lang)


def image_to_words(
    image: np.ndarray,
    *,
    lang: str = "eng",
    timeout: float = 30.0,
    psm: int = 6,
    engine: str | None = None,
    retry_inverted: bool = True,
) -> list[OcrWord]:
    """Run tesseract on a greyscale array and return the words it found (maybe none).

    ``retry_inverted=False`` stops tesseract reading its low-confidence lines a second time as a
    negative (:data:`app.ocr.libtesseract.NO_INVERTED_RETRY`): for images whose text is known
    to be dark on light, such as the feature stage's flattened line crops.

    Raises:
        MissingDependencyError: tesseract (or the language data) is not installed.
        OcrTimeoutError: tesseract ran longer than ``timeout`` seconds.
        OcrError: tesseract crashed.
    """
    tesseract_version()
    if image.size == 0:
        return []
    if resolve_engine(engine) == "library":
        rows = libtesseract.engine(lang).tsv(
            image, psm=psm, timeout=timeout, retry_inverted=retry_inverted
        )
        return parse_tsv(rows)
    pytesseract = _pytesseract()
    try:
        tsv = pytesseract.image_to_data(
            Image.fromarray(image),
            lang=lang,
            config=_config(psm, retry_inverted=retry_inverted),
            timeout=timeout,
        )
    except pytesseract.TesseractNotFoundError as e:
        raise MissingDependencyError(
            "Could not find program 'tesseract' (install tesseract-ocr)"
        ) from e
    except RuntimeError as e:
        if "timeout" in str(e).lower():
            raise OcrTimeoutError(f"tesseract took longer than {timeout:g} s") from e
        raise OcrError(f"tesseract failed: {e}") from e
    except pytesseract.TesseractError as e:
        raise OcrError(f"tesseract failed: {e.message or e.status}") from e
    return parse_tsv(str(tsv))


def _config(psm: int, *, retry_inverted: bool) -> str:
    """The command's options for :func:`image_to_words` (a setting it does not know is ignored)."""
    options = [f"--psm {psm}"]
    if not retry_inverted:
        options += [f"-c {name}={value}" for name, value in libtesseract.NO_INVERTED_RETRY.items()]
    return " ".join(options)


def parse_tsv(tsv: str) -> list[OcrWord]:
    """Words (confidence >= 0, non-blank text) of tesseract's TSV output, header or not."""
    words: list[OcrWord] = []
    for row in tsv.splitlines():
        cols = row.split("\t")
        if len(cols) < 12 or not cols[0].isdigit():
            continue  # the header, or a blank line
        text = cols[11].strip()
        try:
            conf = float(cols[10])
            left, top, width, height = (int(c) for c in cols[6:10])
            key = (int(cols[2]), int(cols[3]), int(cols[4]))
        except ValueError:
            continue
        if conf < 0 or not text:
            continue
        words.append(OcrWord(text, conf, left, top, width, height, key))
    return words
