"""POST /jobs, GET /jobs/{id}, GET /jobs/{id}/pages/{n}, DELETE /jobs/{id}: long documents."""

from __future__ import annotations

import asyncio
import shutil
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import ClassifyJobsDep, StateDep
from app.api.routes.classify import (
    UPLOAD_ERRORS,
    LangField,
    LinesField,
    ModelField,
    ThumbnailsField,
    UploadField,
    resolve_model,
    spool,
)
from app.api.routes.classify import error_responses as _errors
from app.api.schemas import ClassifyJob, PageResult
from app.errors import MissingDependencyError

router = APIRouter(tags=["jobs"])

JOB_ID = Path(pattern=r"^[0-9a-f]{32}$", description="the id POST /jobs answered")


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ClassifyJob,
    responses=_errors(
        *UPLOAD_ERRORS,
        (
            503,
            "the queue (Redis) cannot be reached (code `queue_unavailable`), or tesseract "
            "is missing",
        ),
        (504, "the PDF could not be counted in time"),
    ),
    summary="Classify a long document in the background",
)
async def submit_job(
    state: StateDep,
    jobs: ClassifyJobsDep,
    response: Response,
    *,
    file: UploadField,
    model: ModelField = None,
    lang: LangField = None,
    lines: LinesField = False,
    thumbnails: ThumbnailsField = False,
) -> ClassifyJob:
    """Answer 202 at once with the job id; poll ``GET /jobs/{id}`` (the ``Location`` header).

    Same fields as ``POST /classify``. The document is checked and its pages counted before the
    answer (a bad file is refused here, not later); its pages are then read by the engine
    (``INKWELL_JOB_ENGINE``) and each is readable at ``GET /jobs/{id}/pages/{n}`` as soon as it is
    done. Results are kept ``INKWELL_JOB_TTL`` seconds after the job ends.
    """
    settings = state.settings
    if settings.job_engine == "local" and state.tesseract is None:
        raise MissingDependencyError(state.tesseract_error or "tesseract is not available")
    version, algorithm = resolve_model(state, model)
    job_id, staging = await asyncio.to_thread(jobs.store.staging)
    try:
        _, sha256 = await spool(file, settings.max_upload_bytes, staging)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True)
        raise
    job = await asyncio.to_thread(
        jobs.create,
        staging,
        job_id=job_id,
        filename=file.filename,
        sha256=sha256,
        version=version,
        algorithm=algorithm,
        lang=lang or settings.ocr_lang,
        lines=lines,
        thumbnails=thumbnails,
    )
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job


@router.get(
    "/jobs/{job_id}",
    response_model=ClassifyJob,
    response_model_exclude_none=False,
    responses=_errors(
        (404, "no such job (never made, cancelled, or expired)"), (422, "not a job id")
    ),
    summary="Status, pages done and, once finished, the result of a job",
)
async def job_status(job_id: Annotated[str, JOB_ID], jobs: ClassifyJobsDep) -> ClassifyJob:
    """``result`` is what ``POST /classify`` would have answered, once ``status`` is succeeded."""
    return await asyncio.to_thread(jobs.status, job_id)


@router.get(
    "/jobs/{job_id}/pages/{page}",
    response_model=PageResult,
    responses=_errors(
        (404, "no such job, or no such page"),
        (409, "the page is not read yet (code `page_not_ready`): ask again"),
        (422, "not a job id or not a page number"),
    ),
    summary="One page's verdict, as soon as it is read",
)
async def job_page(
    job_id: Annotated[str, JOB_ID],
    page: Annotated[int, Path(ge=1, le=1_000_000, description="1-based page number")],
    jobs: ClassifyJobsDep,
) -> PageResult:
    """The page's verdict, the same as in the job's result."""
    return await asyncio.to_thread(jobs.page, job_id, page)


@router.delete(
    "/jobs/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors((404, "no such job"), (422, "not a job id")),
    summary="Cancel a job and remove its upload and results",
)
async def cancel_job(job_id: Annotated[str, JOB_ID], jobs: ClassifyJobsDep) -> Response:
    """Queued pages are dropped, running ones stop at their next page."""
    await asyncio.to_thread(jobs.cancel, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
