"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.jobs import JobManager
from app.api.state import ServiceState


def get_state(request: Request) -> ServiceState:
    """The service state created in the lifespan."""
    state: ServiceState = request.app.state.inkwell
    return state


def get_jobs(request: Request) -> JobManager:
    """The training job manager."""
    jobs: JobManager = request.app.state.jobs
    return jobs


StateDep = Annotated[ServiceState, Depends(get_state)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
