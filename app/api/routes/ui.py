"""GET /: the upload page (plain HTML, CSS and JS; no build step, no CDN)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["ui"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@lru_cache(maxsize=1)
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, summary="Upload page", include_in_schema=False)
def index() -> HTMLResponse:
    """Choose or drop a document and see each page's verdict and line boxes."""
    return HTMLResponse(_page())
