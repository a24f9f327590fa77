"""Bytes to pages: PDF and image loading."""

from app.documents.loader import (
    Document,
    Page,
    PathOrBytes,
    detect_format,
    load_pages,
    open_document,
)

__all__ = ["Document", "Page", "PathOrBytes", "detect_format", "load_pages", "open_document"]
