"""POST /train and GET /train/{job_id}."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import JobsDep
from app.api.schemas import ErrorResponse, TrainingJob, TrainRequest

router = APIRouter(tags=["train"])


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrainingJob,
    responses={
        400: {"model": ErrorResponse, "description": "a body that cannot be parsed"},
        403: {"model": ErrorResponse, "description": "dataset outside the data directory"},
        404: {
            "model": ErrorResponse,
            "description": "no such dataset in the data directory, or no such base version",
        },
        409: {
            "model": ErrorResponse,
            "description": "a training job is already running, or the base version carries no "
            "base features",
        },
        422: {"model": ErrorResponse, "description": "invalid request"},
    },
    summary="Start a training job on a dataset under INKWELL_DATA_DIR",
)
def start_training(request: TrainRequest, jobs: JobsDep) -> TrainingJob:
    """Answer 202 with the job id; poll ``GET /train/{job_id}`` for progress and metrics.

    With ``base``, the dataset's pages are learned together with the base version's training
    pages (their features, shipped with it): the metrics hold the base's leave-one-source-out
    figures before and after, the dataset's pages cross-validated by document group, and the
    guard's verdict; ``activate`` takes effect only when the guard passed (or
    ``allow_base_drop``).
    """
    return jobs.submit(request)


@router.get(
    "/train/{job_id}",
    response_model=TrainingJob,
    responses={404: {"model": ErrorResponse, "description": "no such job"}},
    summary="Status, progress and, on success, metrics of a training job",
)
def training_status(job_id: str, jobs: JobsDep) -> TrainingJob:
    """The job's status."""
    return jobs.get(job_id)
