"""POST /classify: page-level verdicts for an uploaded PDF or image."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from PIL import Image

from app.api.deps import StateDep
from app.api.schemas import (
    ClassifyResponse,
    DocumentInfo,
    ErrorResponse,
    LineResult,
    ModelInfo,
    PageResult,
    Probabilities,
)
from app.documents import detect_format, load_pages
from app.documents.loader import MEDIA_TYPES
from app.errors import (
    DocumentTooLargeError,
    MissingDependencyError,
    ModelNotFoundError,
    WorkerCrashedError,
)
from app.features import FEATURE_VERSION, OcrSettings
from app.models.classifiers import ALGORITHMS
from app.models.predict import classify_pages, document_label

router = APIRouter(tags=["classify"])

CHUNK = 1 << 20
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "empty upload"),
        (404, "unknown model"),
        (413, "upload or image too large"),
        (415, "not a PDF or supported image"),
        (422, "corrupt, encrypted, or too many pages"),
        (503, "tesseract or poppler missing, or a worker died (workers restarted: retry)"),
        (504, "OCR or rendering timed out"),
    )
}


def _thumbnail(image: np.ndarray, longest: int = 900) -> str:
    img = Image.fromarray(image)
    img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    chunks = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise DocumentTooLargeError(f"upload is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    summary="Is each page handwritten or typed?",
)
async def classify(
    state: StateDep,
    *,
    file: Annotated[UploadFile, File(description="PDF, PNG, JPEG, TIFF, BMP or WebP")],
    model: Annotated[
        str | None, Form(description="a model version id, or 'catboost'/'svm' on the active model")
    ] = None,
    lang: Annotated[str | None, Form(pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")] = None,
    lines: Annotated[
        bool, Form(description="also return every text line with its box and verdict")
    ] = False,
    thumbnails: Annotated[
        bool, Form(description="also return a small PNG of each page (for the upload page)")
    ] = False,
) -> ClassifyResponse:
    """Classify every page of the upload; the document is ``mixed`` when pages disagree."""
    t0 = time.perf_counter()
    settings = state.settings
    if state.tesseract is None:
        raise MissingDependencyError(state.tesseract_error or "tesseract is not available")
    algorithm = None
    if model in ALGORITHMS:
        version, algorithm = state.version(), model
    else:
        version = state.version(model)
    algorithm = algorithm or version.default_algorithm
    if algorithm not in version.models:
        raise ModelNotFoundError(f"model {version.id} has no {algorithm} classifier")
    data = await _read_limited(file, settings.max_upload_bytes)
    pages = await asyncio.to_thread(
        load_pages,
        data,
        filename=file.filename or "upload",
        dpi=settings.render_dpi,
        max_pages=settings.max_pages,
        max_pixels=settings.max_image_pixels,
        timeout=settings.pdf_timeout,
    )
    ocr = OcrSettings(lang=lang or settings.ocr_lang, timeout=settings.ocr_timeout)
    executor = state.executor
    try:
        verdicts = await asyncio.to_thread(
            classify_pages, pages, version, algorithm=algorithm, ocr=ocr, executor=executor
        )
    except WorkerCrashedError:
        if executor is not None:
            state.restart_workers(executor)
        raise
    fmt = detect_format(data) or "pdf"
    return ClassifyResponse(
        document=DocumentInfo(
            filename=file.filename,
            media_type=MEDIA_TYPES[fmt],
            sha256=hashlib.sha256(data).hexdigest(),
            page_count=len(pages),
        ),
        model=ModelInfo(id=version.id, algorithm=algorithm, feature_version=FEATURE_VERSION),
        label=document_label(verdicts),
        pages=[
            PageResult(
                page=v.page,
                label=v.label,
                confidence=round(v.confidence, 4),
                probabilities=Probabilities(
                    handwritten=round(v.p_handwritten, 4), typed=round(1 - v.p_handwritten, 4)
                ),
                handwritten_share=(
                    None if v.handwritten_share is None else round(v.handwritten_share, 4)
                ),
                lines=[
                    LineResult(bbox=ln.bbox, label=ln.label, probability=round(ln.p_handwritten, 4))
                    for ln in v.lines
                ]
                if lines
                else None,
                thumbnail=_thumbnail(page.image) if thumbnails else None,
                width=v.width,
                height=v.height,
                dpi=v.dpi,
                orientation=v.orientation,
                skew=round(v.skew, 2),
                elapsed_ms=round(v.elapsed_ms, 1),
            )
            for v, page in zip(verdicts, pages, strict=True)
        ],
        elapsed_ms=round(1000 * (time.perf_counter() - t0), 1),
    )
