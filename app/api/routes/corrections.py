"""POST /corrections, GET /corrections, GET and DELETE /corrections/{id}: pages users corrected."""

from __future__ import annotations

import asyncio
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Response, status
from pydantic import BaseModel, Field

from app.api.deps import ClassifyJobsDep, StateDep
from app.api.routes.classify import UPLOAD_ERRORS, UploadField, spool, upload_dir
from app.api.routes.classify import error_responses as _errors
from app.config import corrections_dir
from app.corrections import (
    ID_PATTERN,
    Correction,
    CorrectionStore,
    LineCorrection,
    PageLabel,
    read_page,
)
from app.errors import JobNotFoundError, PageNotFoundError
from app.jobs.training import CORRECTIONS_DATASET

router = APIRouter(tags=["corrections"])

CORRECTION_ID = Path(pattern=ID_PATTERN, description="the id POST /corrections answered")


class CorrectionList(BaseModel):
    """Every correction kept, and how to train on them."""

    count: int
    folder: str = Field(description="where the pages and their manifest.csv are kept")
    dataset: str = Field(description="the dataset name that POST /train takes for them")
    corrections: list[Correction]


def store_of(state: StateDep) -> CorrectionStore:
    """The service's corrections store."""
    return CorrectionStore(corrections_dir(state.settings))


StoreDep = Annotated[CorrectionStore, Depends(store_of)]


@router.post(
    "/corrections",
    status_code=status.HTTP_201_CREATED,
    response_model=Correction,
    responses=_errors(
        *UPLOAD_ERRORS,
        (503, "the corrections folder cannot be written (code `storage_unavailable`)"),
    ),
    summary="Say what a page of a document really is (kept to train on)",
)
async def add_correction(
    state: StateDep,
    store: StoreDep,
    response: Response,
    tmp: Annotated[FsPath, Depends(upload_dir)],
    *,
    file: UploadField,
    label: Annotated[PageLabel, Form(description="what the page is, by the label rule")],
    page: Annotated[int, Form(ge=1, le=1_000_000, description="1-based page number")] = 1,
) -> Correction:
    """Keep the page (as rendered for classification) with its right label.

    ``file`` is the document as sent to ``/classify``. Correcting a page again replaces its
    label. Only pages sent here are kept; ``POST /train`` reads them as the dataset
    ``corrections``. (Line verdicts go with a page of a /jobs result, in JSON.)
    """
    settings = state.settings
    source, sha256 = await spool(file, settings.max_upload_bytes, tmp)
    rendered = await asyncio.to_thread(
        read_page, source, page, filename=file.filename or "upload", **settings.render_limits()
    )
    correction = await asyncio.to_thread(
        store.add, rendered, sha256=sha256, filename=file.filename, label=label
    )
    response.headers["Location"] = f"/corrections/{correction.id}"
    return correction


class JobPageCorrection(BaseModel):
    """The right label of a page of a /jobs result."""

    label: PageLabel = Field(description="what the page is, by the label rule")
    lines: list[LineCorrection] | None = Field(
        default=None, description="optional: line boxes with their right verdict"
    )


@router.post(
    "/jobs/{job_id}/pages/{page}/correction",
    status_code=status.HTTP_201_CREATED,
    response_model=Correction,
    responses=_errors(
        (400, "the body is not JSON"),
        (404, "no such job (or its results expired), or no such page"),
        (422, "not a job id, a page number or a label; line boxes outside the page"),
        (503, "the corrections folder cannot be written (code `storage_unavailable`)"),
    ),
    summary="Say what a page of a /jobs result really is (kept to train on)",
)
async def correct_job_page(
    state: StateDep,
    store: StoreDep,
    jobs: ClassifyJobsDep,
    response: Response,
    *,
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="a /jobs job id")],
    page: Annotated[int, Path(ge=1, le=1_000_000, description="1-based page number")],
    body: JobPageCorrection,
) -> Correction:
    """The same as ``POST /corrections``, the document being the job's (kept until it expires)."""
    settings = state.settings
    folder = jobs.store.folder(job_id)
    try:
        spec = await asyncio.to_thread(folder.spec)
    except FileNotFoundError as e:
        raise JobNotFoundError(f"no job '{job_id}' (never made, cancelled or expired)") from e
    if page > spec.page_count:
        raise PageNotFoundError(f"job {job_id} has {spec.page_count} page(s), not {page}")
    rendered = await asyncio.to_thread(
        read_page,
        folder.upload,
        page,
        filename=spec.filename or "upload",
        dpi=spec.render.dpi,
        max_pages=max(settings.max_pages, settings.job_max_pages),
        max_pixels=spec.render.max_pixels,
        timeout=spec.render.pdf_timeout,
    )
    correction = await asyncio.to_thread(
        store.add,
        rendered,
        sha256=spec.sha256,
        filename=spec.filename,
        label=body.label,
        lines=body.lines,
    )
    response.headers["Location"] = f"/corrections/{correction.id}"
    return correction


@router.get("/corrections", response_model=CorrectionList, summary="Every correction kept")
async def list_corrections(store: StoreDep) -> CorrectionList:
    """The corrections, oldest first, with the dataset name to train on them."""
    items = await asyncio.to_thread(store.all)
    return CorrectionList(
        count=len(items), folder=str(store.root), dataset=CORRECTIONS_DATASET, corrections=items
    )


@router.get(
    "/corrections/{correction_id}",
    response_model=Correction,
    responses=_errors((404, "no such correction"), (422, "not a correction id")),
    summary="One correction",
)
async def get_correction(
    correction_id: Annotated[str, CORRECTION_ID], store: StoreDep
) -> Correction:
    """The correction with that id."""
    return await asyncio.to_thread(store.get, correction_id)


@router.delete(
    "/corrections/{correction_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors((404, "no such correction"), (422, "not a correction id")),
    summary="Forget a correction and delete its page image",
)
async def delete_correction(
    correction_id: Annotated[str, CORRECTION_ID], store: StoreDep
) -> Response:
    """The row leaves the manifest, then the image is deleted."""
    await asyncio.to_thread(store.remove, correction_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
