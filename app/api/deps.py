"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.jobs import JobManager
from app.api.state import ServiceState
from app.queue.service import ClassifyJobs


def get_state(request: Request) -> ServiceState:
    """The service state created in the lifespan."""
    state: ServiceState = request.app.state.inkwell
    return state


def get_jobs(request: Request) -> JobManager:
    """The training job manager."""
    jobs: JobManager = request.app.state.jobs
    return jobs


def get_classify_jobs(request: Request) -> ClassifyJobs:
    """The classification jobs (/jobs)."""
    jobs: ClassifyJobs = request.app.state.classify_jobs
    return jobs


StateDep = Annotated[ServiceState, Depends(get_state)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
ClassifyJobsDep = Annotated[ClassifyJobs, Depends(get_classify_jobs)]
