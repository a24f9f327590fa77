"""inkwell: handwritten or typed, page by page."""

__version__ = "0.1.0"
