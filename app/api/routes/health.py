"""GET /health and GET /version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app import __version__
from app.api.deps import ClassifyJobsDep, StateDep
from app.features import FEATURE_VERSION

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Service status, tesseract version, active model",
    responses={503: {"description": "degraded: tesseract or the active model is unusable"}},
)
async def health(state: StateDep, jobs: ClassifyJobsDep, response: Response) -> dict[str, Any]:
    """200 ``ok`` when tesseract and the active model are usable, else 503 ``degraded``.

    Answered on the event loop from memory only (no thread, no disk), so it stays fast however
    busy the workers are; ``pages_in_flight`` shows the load.
    """
    problems = []
    if state.tesseract is None:
        problems.append(state.tesseract_error or "tesseract unavailable")
    model = state.active_loaded()
    active: dict[str, Any] | None = None
    if model is None:
        problems.append(f"model: the active model {state.active_id!r} is not loaded (see logs)")
    else:
        active = {"id": model.id, "algorithm": model.default_algorithm}
    if problems:
        response.status_code = 503
    admission = state.admission
    return {
        "status": "ok" if not problems else "degraded",
        "tesseract": state.tesseract,
        "ocr_engine": state.ocr_engine,
        "active_model": active,
        "pages_in_flight": admission.in_flight,
        "page_capacity": admission.capacity,
        "jobs": jobs.health(),
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
