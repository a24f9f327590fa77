"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.jobs.classify.manager import ClassifyJobs
from app.jobs.training import TrainingJobs
from app.runtime.state import ServiceState


def get_state(request: Request) -> ServiceState:
    """The service state created in the lifespan."""
    state: ServiceState = request.app.state.inkwell
    return state


def get_jobs(request: Request) -> TrainingJobs:
    """The training job manager."""
    jobs: TrainingJobs = request.app.state.jobs
    return jobs


def get_classify_jobs(request: Request) -> ClassifyJobs:
    """The classification jobs (/jobs)."""
    jobs: ClassifyJobs = request.app.state.classify_jobs
    return jobs


StateDep = Annotated[ServiceState, Depends(get_state)]
JobsDep = Annotated[TrainingJobs, Depends(get_jobs)]
ClassifyJobsDep = Annotated[ClassifyJobs, Depends(get_classify_jobs)]
