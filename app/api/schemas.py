"""Request and response models of the HTTP layer (with the examples shown in OpenAPI).

The result and job types live below the API (:mod:`app.results`, :mod:`app.jobs.records`) and are
re-exported here for the routes.
"""

from __future__ import annotations

from pydantic import BaseModel

from app.jobs.records import BaseRequest, ClassifyJob, JobError, TrainingJob, TrainRequest
from app.results import (
    ClassifyResponse,
    DocLabel,
    DocumentInfo,
    LineLabel,
    LineResult,
    ModelInfo,
    PageLabel,
    PageResult,
    Probabilities,
)

__all__ = [
    "BaseRequest",
    "ClassifyJob",
    "ClassifyResponse",
    "DocLabel",
    "DocumentInfo",
    "ErrorResponse",
    "JobError",
    "LineLabel",
    "LineResult",
    "ModelInfo",
    "PageLabel",
    "PageResult",
    "Probabilities",
    "TrainRequest",
    "TrainingJob",
]


class ErrorResponse(BaseModel):
    """Every error body."""

    detail: str
    code: str
