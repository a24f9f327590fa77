"""The one wrapper around tesseract (via pytesseract).

Every call has a timeout and runs with ``OMP_THREAD_LIMIT=1`` (tesseract's OpenMP threads fight with
our own worker processes otherwise). Errors are mapped: missing binary ->
:class:`MissingDependencyError`, timeout -> :class:`OcrTimeoutError`, crash -> :class:`OcrError`.
A page with no text is not an error: it yields no words.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pytesseract
from PIL import Image

from app.errors import MissingDependencyError, OcrError, OcrTimeoutError

log = logging.getLogger(__name__)

os.environ["OMP_THREAD_LIMIT"] = "1"

MIN_VERSION = (4, 0)


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
    try:
        version = pytesseract.get_tesseract_version()
    except pytesseract.TesseractNotFoundError as e:
        raise MissingDependencyError(
            "Could not find program 'tesseract' (install tesseract-ocr)"
        ) from e
    release = getattr(version, "release", None) or (0, 0)
    if tuple(release[:2]) < MIN_VERSION:
        raise MissingDependencyError(f"tesseract {version} is too old; inkwell needs 4.0 or later")
    return str(version)


def check_tesseract(lang: str) -> str:
    """Check tesseract and the language packs for ``lang`` (e.g. ``eng+fra``)."""
    version = tesseract_version()
    try:
        available = set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractError, OSError) as e:  # pragma: no cover - binary misbehaving
        raise MissingDependencyError(f"tesseract cannot list its languages: {e}") from e
    missing = [code for code in lang.split("+") if code not in available]
    if missing:
        raise MissingDependencyError(
            f"tesseract language pack(s) missing: {', '.join(missing)} "
            f"(install tesseract-ocr-{missing[0]})"
        )
    return version


def image_to_words(
    image: np.ndarray, *, lang: str = "eng", timeout: float = 30.0, psm: int = 6
) -> list[OcrWord]:
    """Run tesseract on a greyscale array and return the words it found (maybe none).

    Raises:
        MissingDependencyError: tesseract is not installed.
        OcrTimeoutError: tesseract ran longer than ``timeout`` seconds.
        OcrError: tesseract crashed.
    """
    tesseract_version()
    if image.size == 0:
        return []
    try:
        data = pytesseract.image_to_data(
            Image.fromarray(image),
            lang=lang,
            config=f"--psm {psm}",
            output_type=pytesseract.Output.DICT,
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
    words: list[OcrWord] = []
    for i, text in enumerate(data["text"]):
        conf = float(data["conf"][i])
        if conf < 0 or not str(text).strip():
            continue
        words.append(
            OcrWord(
                text=str(text).strip(),
                conf=conf,
                left=int(data["left"][i]),
                top=int(data["top"][i]),
                width=int(data["width"][i]),
                height=int(data["height"][i]),
                line_key=(
                    int(data["block_num"][i]),
                    int(data["par_num"][i]),
                    int(data["line_num"][i]),
                ),
            )
        )
    return words
