"""Bytes to pages: PDF and image loading."""

from app.documents.loader import Page, PathOrBytes, detect_format, load_pages

__all__ = ["Page", "PathOrBytes", "detect_format", "load_pages"]
