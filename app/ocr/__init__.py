"""The one wrapper around tesseract."""

from app.ocr.tesseract import OcrWord, check_tesseract, image_to_words, tesseract_version

__all__ = ["OcrWord", "check_tesseract", "image_to_words", "tesseract_version"]
