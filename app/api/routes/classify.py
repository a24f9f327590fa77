"""POST /classify: page-level verdicts for an uploaded PDF or image."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from app.api.deps import StateDep
from app.api.schemas import (
    ClassifyResponse,
    DocumentInfo,
    ErrorResponse,
    ModelInfo,
    PageResult,
)
from app.config import page_window
from app.documents import open_document
from app.documents.thumbnails import thumbnail
from app.errors import (
    DocumentTooLargeError,
    MissingDependencyError,
    ModelNotFoundError,
    WorkerCrashedError,
)
from app.features import FEATURE_VERSION, OcrSettings
from app.models.base import ALGORITHMS
from app.models.predict import PageVerdict, classify_pages, document_label
from app.models.registry import ModelVersion
from app.runtime.state import ServiceState

router = APIRouter(tags=["classify"])

CHUNK = 1 << 20
UPLOAD_ERRORS: tuple[tuple[int, str], ...] = (
    (400, "empty upload"),
    (404, "unknown model"),
    (413, "upload or image too large"),
    (415, "not a PDF or supported image"),
    (422, "corrupt, encrypted, or too many pages"),
)
"""What an upload can be refused with, by /classify and /jobs alike."""


def error_responses(*pairs: tuple[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for error statuses, each with the error body."""
    return {code: {"model": ErrorResponse, "description": text} for code, text in pairs}


_ERRORS = error_responses(
    *UPLOAD_ERRORS,
    (
        503,
        "busy (code `busy`, see Retry-After), tesseract or poppler missing, or a worker "
        "died (workers restarted: retry)",
    ),
    (504, "OCR or rendering timed out"),
)
_ERRORS[503]["headers"] = {
    "Retry-After": {
        "description": "with code `busy`: seconds after which a retry is likely to be admitted",
        "schema": {"type": "integer", "minimum": 1},
        "required": False,
    }
}


# the upload's form fields, shared by /classify and /jobs
UploadField = Annotated[
    UploadFile,
    File(
        description="PDF, PNG, JPEG, TIFF, BMP or WebP (not empty)",
        json_schema_extra={"minLength": 1},
    ),
]
ModelField = Annotated[
    str | None, Form(description="a model version id, or 'catboost'/'svm' on the active model")
]
LangField = Annotated[str | None, Form(pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")]
LinesField = Annotated[
    bool, Form(description="also return every text line with its box and verdict")
]
ThumbnailsField = Annotated[
    bool, Form(description="also return a small PNG of each page (for the upload page)")
]


def resolve_model(state: ServiceState, model: str | None) -> tuple[ModelVersion, str]:
    """The version and algorithm a request names (``model``: a version id or an algorithm)."""
    algorithm = None
    if model in ALGORITHMS:
        version, algorithm = state.version(), model
    else:
        version = state.version(model)
    algorithm = algorithm or version.default_algorithm
    if algorithm not in version.models:
        raise ModelNotFoundError(f"model {version.id} has no {algorithm} classifier")
    return version, algorithm


def upload_dir() -> Iterator[Path]:
    """A private folder for the request's upload, removed when the request is done."""
    with tempfile.TemporaryDirectory(prefix="inkwell-upload-") as tmp:
        yield Path(tmp)


async def spool(upload: UploadFile, limit: int, folder: Path) -> tuple[Path, str]:
    """Copy the upload to a file in ``folder`` a chunk at a time; its path and sha256.

    The document is never held in memory whole: pages are read from the file as they are needed.
    """
    path = folder / "upload"
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as fh:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise DocumentTooLargeError(f"upload is larger than the limit of {limit} bytes")
            digest.update(chunk)
            fh.write(chunk)
    return path, digest.hexdigest()


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    summary="Is each page handwritten or typed?",
)
async def classify(
    state: StateDep,
    *,
    file: UploadField,
    tmp: Annotated[Path, Depends(upload_dir)],
    model: ModelField = None,
    lang: LangField = None,
    lines: LinesField = False,
    thumbnails: ThumbnailsField = False,
) -> ClassifyResponse:
    """Classify every page of the upload; the document is ``mixed`` when pages disagree."""
    t0 = time.perf_counter()
    settings = state.settings
    if state.tesseract is None:
        raise MissingDependencyError(state.tesseract_error or "tesseract is not available")
    version, algorithm = resolve_model(state, model)
    admission = state.admission
    admission.check()  # refuse at once, before reading the upload, when every slot is taken
    path, sha256 = await spool(file, settings.max_upload_bytes, tmp)
    doc = await asyncio.to_thread(
        open_document, path, filename=file.filename or "upload", **settings.render_limits()
    )
    slots = admission.acquire(min(doc.page_count, page_window(settings)))
    ocr = OcrSettings(lang=lang or settings.ocr_lang, timeout=settings.ocr_timeout)
    executor = state.executor
    thumbs: list[str] = []
    verdicts: list[PageVerdict] = []
    try:
        verdicts = await asyncio.to_thread(
            classify_pages,
            doc.pages(),
            version,
            algorithm=algorithm,
            ocr=ocr,
            executor=executor,
            window=slots,
            on_page=(lambda page: thumbs.append(thumbnail(page.image))) if thumbnails else None,
        )
    except WorkerCrashedError:
        if executor is not None:
            state.restart_workers(executor)
        raise
    finally:
        admission.release(
            slots,
            pages_done=len(verdicts),
            work_seconds=sum(v.elapsed_ms for v in verdicts) / 1000,
        )
    return ClassifyResponse(
        document=DocumentInfo(
            filename=file.filename,
            media_type=doc.media_type,
            sha256=sha256,
            page_count=doc.page_count,
        ),
        model=ModelInfo(id=version.id, algorithm=algorithm, feature_version=FEATURE_VERSION),
        label=document_label(verdicts),
        pages=[
            PageResult.from_verdict(v, lines=lines, thumbnail=thumbs[i] if thumbnails else None)
            for i, v in enumerate(verdicts)
        ],
        elapsed_ms=round(1000 * (time.perf_counter() - t0), 1),
    )
