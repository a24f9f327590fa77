"""GET /models, GET /models/{id}, POST /models/{id}/activate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import StateDep
from app.api.schemas import ErrorResponse

router = APIRouter(tags=["models"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such model"}
}


@router.get("/models", summary="Every model version, its metrics, and which is active")
def list_models(state: StateDep) -> dict[str, Any]:
    """Versions with their summary metrics."""
    versions = []
    for vid in state.registry.ids():
        try:
            summary = state.version(vid).summary()
        except Exception as e:  # noqa: BLE001 - one broken version must not hide the others
            summary = {"id": vid, "error": str(e)}
        summary["active"] = vid == state.active_id
        versions.append(summary)
    return {"active": state.active_id, "versions": versions}


@router.get("/models/{model_id}", responses=_NOT_FOUND, summary="One model version")
def get_model(model_id: str, state: StateDep) -> dict[str, Any]:
    """A version's summary and metadata."""
    version = state.version(model_id)
    return {
        **version.summary(),
        "active": model_id == state.active_id,
        "metadata": version.metadata,
    }


@router.post("/models/{model_id}/activate", responses=_NOT_FOUND, summary="Serve this version")
def activate_model(model_id: str, state: StateDep) -> dict[str, Any]:
    """Make a version the active one (it is verified first)."""
    version = state.set_active(model_id)
    return {"active": version.id}
