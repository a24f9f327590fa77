"""The one wrapper around tesseract."""

from app.ocr.tesseract import (
    OcrWord,
    check_tesseract,
    engine_description,
    image_to_words,
    resolve_engine,
    tesseract_version,
    warm_up,
)

__all__ = [
    "OcrWord",
    "check_tesseract",
    "engine_description",
    "image_to_words",
    "resolve_engine",
    "tesseract_version",
    "warm_up",
]
