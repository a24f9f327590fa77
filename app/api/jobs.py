"""Training jobs run one at a time in a background thread."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.api.schemas import JobStatus, TrainRequest
from app.api.state import ServiceState
from app.errors import (
    AppError,
    DatasetError,
    JobNotFoundError,
    PathNotAllowedError,
    TrainingBusyError,
)
from app.training.train import TrainConfig, train

log = logging.getLogger(__name__)


def resolve_dataset(data_dir: Path, dataset: str) -> Path:
    """Resolve ``dataset`` inside ``data_dir``; refuse anything that leads out of it."""
    raw = Path(dataset)
    if raw.is_absolute() or ".." in raw.parts:
        raise PathNotAllowedError("dataset must be a relative path inside the data directory")
    root = data_dir.resolve()
    target = (root / raw).resolve()
    if not target.is_relative_to(root):
        raise PathNotAllowedError("dataset leads outside the data directory")
    if not target.exists():
        raise DatasetError(f"dataset '{dataset}' not found in the data directory")
    return target


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobManager:
    """Holds job records; runs at most one training at a time."""

    def __init__(self, state: ServiceState) -> None:
        """Jobs train into ``state.settings.models_dir``."""
        self.state = state
        self.jobs: dict[str, JobStatus] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def busy(self) -> bool:
        """Whether a job is queued or running."""
        return any(j.status in ("queued", "running") for j in self.jobs.values())

    def submit(self, request: TrainRequest) -> JobStatus:
        """Queue a job, or refuse with 409 when one is running."""
        path = resolve_dataset(self.state.settings.data_dir, request.dataset)
        with self._lock:
            if self.busy():
                raise TrainingBusyError("a training job is already running; try again later")
            job = JobStatus(
                job_id=uuid.uuid4().hex[:12],
                status="queued",
                dataset=request.dataset,
                created_at=_now(),
            )
            self.jobs[job.job_id] = job
            self._thread = threading.Thread(
                target=self._run, args=(job.job_id, path, request), daemon=True
            )
            self._thread.start()
        return job

    def get(self, job_id: str) -> JobStatus:
        """A job's record."""
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no training job {job_id!r}")
        return job

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running job (used on shutdown and in tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self.jobs[job_id] = self.jobs[job_id].model_copy(update=changes)

    def _run(self, job_id: str, path: Path, request: TrainRequest) -> None:
        settings = self.state.settings
        self._update(job_id, status="running", stage="starting")
        cfg = TrainConfig(
            algorithms=tuple(request.algorithms),
            seed=request.seed,
            test_size=request.test_size,
            augment=request.augment,
            loso=request.loso,
            fullpage_baseline=False,
            lang=settings.ocr_lang,
            ocr_timeout=settings.ocr_timeout,
            workers=settings.workers,
            threads=settings.workers,
        )
        try:
            result = train(
                path,
                out_dir=settings.models_dir,
                cache_dir=settings.cache_dir,
                cfg=cfg,
                progress=lambda done, total: self._update(
                    job_id, progress={"done": done, "total": total}
                ),
                on_stage=lambda s: self._update(job_id, stage=s),
            )
            if request.activate:
                self.state.set_active(result.version_id)
            metrics = {
                algo: {"test": res["test"], "robustness": res["robustness"]}
                for algo, res in result.report["algorithms"].items()
            }
            metrics["references"] = result.report["references"]
            loso = result.report.get("loso")
            if loso:
                for algo in result.report["algorithms"]:
                    metrics[algo]["loso"] = loso["scorers"][algo]["overall"]
            self._update(
                job_id,
                status="succeeded",
                stage="done",
                version_id=result.version_id,
                metrics=metrics,
                finished_at=_now(),
            )
        except AppError as e:
            log.warning("training job %s failed: %s", job_id, e.message)
            self._update(job_id, status="failed", error=e.message, finished_at=_now())
        except Exception as e:
            log.exception("training job %s crashed", job_id)
            self._update(job_id, status="failed", error=f"internal error: {e}", finished_at=_now())
