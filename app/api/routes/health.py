"""GET /health and GET /version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app import __version__
from app.api.deps import StateDep
from app.features import FEATURE_VERSION

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Service status, tesseract version, active model",
    responses={503: {"description": "degraded: tesseract or the active model is unusable"}},
)
def health(state: StateDep, response: Response) -> dict[str, Any]:
    """200 ``ok`` when tesseract and the active model are usable, else 503 ``degraded``."""
    problems = []
    if state.tesseract is None:
        problems.append(state.tesseract_error or "tesseract unavailable")
    try:
        model = state.version()
        active: dict[str, Any] | None = {"id": model.id, "algorithm": model.default_algorithm}
    except Exception as e:  # noqa: BLE001 - health must always answer
        active = None
        problems.append(f"model: {e}")
    if problems:
        response.status_code = 503
    return {
        "status": "ok" if not problems else "degraded",
        "tesseract": state.tesseract,
        "ocr_engine": state.ocr_engine,
        "active_model": active,
        "problems": problems,
    }


@router.get("/version", summary="Versions of inkwell and its feature extractor")
def version(state: StateDep) -> dict[str, Any]:
    """Version of inkwell, of the features, and of tesseract."""
    return {
        "inkwell": __version__,
        "feature_version": FEATURE_VERSION,
        "tesseract": state.tesseract,
        "ocr_engine": state.ocr_engine,
    }
