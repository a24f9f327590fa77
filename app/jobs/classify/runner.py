"""Read a range of a job's pages and record each page's result as soon as it is done.

The same function serves both engines: the local engine calls it on the whole document with the
service's worker pool, an ``rq`` worker on one chunk of pages in its own process. Pages already
recorded are skipped, so a retried chunk or a job resumed after a restart does only what is left.
The document is opened with the options recorded in the job, so every machine reads it alike and
a page's result equals what ``/classify`` answers for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor

from app.documents import Page, open_document
from app.documents.thumbnails import thumbnail
from app.features import OcrSettings
from app.jobs.classify.store import JobFolder, JobSpec
from app.models.predict import iter_featurised, verdicts_for
from app.models.registry import ModelVersion
from app.results import PageResult

log = logging.getLogger(__name__)

MAX_JOB_PAGES = 100_000
"""Pages are counted and limited when the job is made; the runner only reads them."""


def run_pages(
    folder: JobFolder,
    version: ModelVersion,
    *,
    first: int = 1,
    last: int | None = None,
    executor: Executor | None = None,
    window: int = 2,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Read pages ``first``..``last`` of the job not yet recorded; return how many were read.

    Stops (without error) at the next page when the job is cancelled or removed, or ``stop()``
    says so.

    Raises:
        AppError: the document or a page cannot be read (the caller records it as the job's error).
    """
    spec: JobSpec = folder.spec()
    end = spec.page_count if last is None else min(last, spec.page_count)
    todo = [n for n in range(first, end + 1) if not folder.has_page(n)]
    if not todo:
        return 0
    folder.mark_started()
    r = spec.render
    doc = open_document(
        folder.upload,
        filename=spec.filename or "upload",
        dpi=r.dpi,
        max_pages=MAX_JOB_PAGES,
        max_pixels=r.max_pixels,
        timeout=r.pdf_timeout,
    )
    thumbs: dict[int, str] = {}

    def on_page(page: Page) -> None:
        if spec.thumbnails:
            thumbs[page.number] = thumbnail(page.image)

    done = 0
    pages = (p for p in doc.pages(first=todo[0], last=todo[-1]) if not folder.has_page(p.number))
    rows = iter_featurised(
        pages,
        OcrSettings(lang=r.lang, timeout=r.ocr_timeout),
        executor=executor,
        window=window,
        on_page=on_page,
    )
    try:
        for meta, row in rows:
            if folder.cancelled() or (stop is not None and stop()):
                log.info("job %s stopped at page %d", folder.job_id, meta.number)
                break
            if folder.has_page(meta.number):
                continue  # another runner (a retried task) recorded it meanwhile
            verdict = verdicts_for([(meta, row)], version, spec.algorithm)[0]
            result = PageResult.from_verdict(
                verdict, lines=spec.lines, thumbnail=thumbs.pop(meta.number, None)
            )
            try:
                folder.write_page(meta.number, result.model_dump_json())
            except FileNotFoundError:
                log.info("job %s was removed while page %d was read", folder.job_id, meta.number)
                break
            done += 1
    finally:
        rows.close()  # cancels the pages still queued in the pool
    return done
