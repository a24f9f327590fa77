"""The /jobs side of the service: make jobs, answer for them, cancel them, expire them.

Everything a job is lives in its folder (:mod:`app.jobs.classify.store`); the engine
(:mod:`app.jobs.classify.engines`) only runs it. A maintenance thread removes jobs whose results are
older than ``INKWELL_JOB_TTL`` and, for the rq engine, keeps the queue's health for ``/health``
(which answers from memory only).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import jobs_dir
from app.documents import open_document
from app.errors import (
    JobNotFoundError,
    PageNotFoundError,
    PageNotReadyError,
)
from app.features import FEATURE_VERSION
from app.jobs.classify.engines import LocalEngine, RqEngine, make_engine
from app.jobs.classify.store import ClassifyJobStore, JobFolder, JobSpec, RenderOptions, now_iso
from app.jobs.records import ClassifyJob, JobError
from app.models.predict import labels_of_document
from app.results import ClassifyResponse, DocumentInfo, ModelInfo, PageResult

if TYPE_CHECKING:
    from app.models.registry import ModelVersion
    from app.runtime.state import ServiceState

log = logging.getLogger(__name__)

MAINTENANCE_EVERY = 10.0


class ClassifyJobs:
    """Classification jobs of one service."""

    def __init__(self, state: ServiceState) -> None:
        """Jobs live in the jobs folder; the engine is the one the settings name."""
        self.state = state
        self.store = ClassifyJobStore(jobs_dir(state.settings))
        self.engine: LocalEngine | RqEngine = make_engine(state)
        self.engine_health: dict[str, Any] = {"engine": self.engine.name, "ok": True}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._maintain, name="inkwell-job-maintenance", daemon=True
        )

    def start(self) -> None:
        """Resume unfinished local jobs; start the maintenance thread."""
        if isinstance(self.engine, LocalEngine):
            resumed = self.engine.resume()
            if resumed:
                log.warning("resumed %d unfinished job(s) of a stopped service", resumed)
        self._thread.start()

    def close(self) -> None:
        """Stop the maintenance thread and the engine."""
        self._stop.set()
        self.engine.close()
        self._thread.join(timeout=5)

    def _maintain(self) -> None:
        while not self._stop.is_set():
            try:
                self.engine_health = self.engine.health()
                removed = self.store.expire(self.state.settings.job_ttl)
                if removed:
                    log.info("removed %d expired job(s)", removed)
            except Exception:
                log.exception("job maintenance failed")
            self._stop.wait(MAINTENANCE_EVERY)

    def create(
        self,
        staging: Path,
        *,
        job_id: str,
        filename: str | None,
        sha256: str,
        version: ModelVersion,
        algorithm: str,
        lang: str,
        lines: bool,
        thumbnails: bool,
    ) -> ClassifyJob:
        """Check and count the spooled upload in ``staging``, publish the job and queue it.

        Raises:
            AppError: the document is refused (nothing is kept) or cannot be queued (nothing is
                kept either).
        """
        s = self.state.settings
        try:
            doc = open_document(
                staging / "upload",
                filename=filename or "upload",
                **s.render_limits(s.job_max_pages),
            )
            spec = JobSpec(
                job_id=job_id,
                engine=self.engine.name,
                filename=filename,
                media_type=doc.media_type,
                sha256=sha256,
                page_count=doc.page_count,
                model_id=version.id,
                algorithm=algorithm,
                feature_version=FEATURE_VERSION,
                lines=lines,
                thumbnails=thumbnails,
                render=RenderOptions(
                    dpi=s.render_dpi,
                    max_pixels=s.max_image_pixels,
                    pdf_timeout=s.pdf_timeout,
                    ocr_timeout=s.ocr_timeout,
                    lang=lang,
                ),
                created=time.time(),
                chunks=self.engine.chunks(doc.page_count),
            )
            folder = self.store.publish(staging, spec)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            self.engine.submit(folder, spec)
        except BaseException:
            folder.remove()
            raise
        return self.status(job_id, with_result=False)

    def _folder(self, job_id: str) -> tuple[JobFolder, JobSpec]:
        folder = self.store.folder(job_id)
        try:
            if not folder.exists():
                raise FileNotFoundError(job_id)
            return folder, folder.spec()
        except (OSError, ValueError) as e:
            raise JobNotFoundError(
                f"no classification job {job_id!r} (never made, cancelled, or expired)"
            ) from e

    def _pages(self, folder: JobFolder, spec: JobSpec) -> list[PageResult]:
        out = []
        for n in range(1, spec.page_count + 1):
            text = folder.read_page(n)
            if text is None:
                raise PageNotReadyError(f"page {n} is not read yet")
            out.append(PageResult.model_validate_json(text))
        return out

    def status(self, job_id: str, *, with_result: bool = True) -> ClassifyJob:
        """Where the job stands; with its result when every page is read."""
        folder, spec = self._folder(job_id)
        progress = folder.progress(spec)
        state, error, ended = progress.state, progress.error, progress.ended
        if state in ("queued", "running"):
            error = self.engine.failure(spec)
            if error is not None:
                folder.fail(error["detail"], error["code"])
                state, ended = "failed", time.time()
        result = None
        if state == "succeeded" and with_result:
            pages = self._pages(folder, spec)
            result = ClassifyResponse(
                document=self._document(spec),
                model=ModelInfo(
                    id=spec.model_id, algorithm=spec.algorithm, feature_version=spec.feature_version
                ),
                label=labels_of_document([p.label for p in pages]),
                pages=pages,
                elapsed_ms=round(1000 * ((ended or time.time()) - spec.created), 1),
            )
        return ClassifyJob(
            job_id=spec.job_id,
            status=state,
            engine=spec.engine,
            document=self._document(spec),
            pages_done=progress.pages_done,
            created_at=now_iso(spec.created),
            finished_at=now_iso(ended) if ended else None,
            expires_at=now_iso(ended + self.state.settings.job_ttl) if ended else None,
            error=JobError(detail=error["detail"], code=error["code"]) if error else None,
            result=result,
        )

    @staticmethod
    def _document(spec: JobSpec) -> DocumentInfo:
        return DocumentInfo(
            filename=spec.filename,
            media_type=spec.media_type,
            sha256=spec.sha256,
            page_count=spec.page_count,
        )

    def page(self, job_id: str, number: int) -> PageResult:
        """One page's result, as soon as it is read."""
        folder, spec = self._folder(job_id)
        if not 1 <= number <= spec.page_count:
            raise PageNotFoundError(f"the document has {spec.page_count} page(s); no page {number}")
        text = folder.read_page(number)
        if text is None:
            err = folder.error()
            if err is not None:
                raise PageNotFoundError(f"the job failed before page {number}: {err['detail']}")
            raise PageNotReadyError(f"page {number} is not read yet; ask again shortly")
        return PageResult.model_validate_json(text)

    def cancel(self, job_id: str) -> None:
        """Stop the job (queued or running) and remove it with its upload and results."""
        folder, spec = self._folder(job_id)
        self.engine.cancel(spec)
        folder.cancel()

    def health(self) -> dict[str, Any]:
        """The engine's last known health (from memory)."""
        return dict(self.engine_health)
