"""Training jobs run one at a time in a background thread; their records live on disk.

Each job is a JSON file in ``<models_dir>/.jobs/`` (written atomically on every change of status or
stage, and at most every few seconds for progress), so a restarted service still answers for it: a
finished job with its result, a job that was running when the service died ``interrupted``. A
training writes its version under a temporary name and renames it only when complete, so an
interrupted job leaves no version behind and never changes the served model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import corrections_dir
from app.errors import (
    AppError,
    DatasetError,
    DatasetNotFoundError,
    JobNotFoundError,
    NoBaseFeaturesError,
    PathNotAllowedError,
    TrainingBusyError,
    TrainingInterruptedError,
)
from app.jobs.records import TrainingJob, TrainRequest
from app.models.registry import atomic_write_text
from app.runtime.state import ServiceState

log = logging.getLogger(__name__)

CORRECTIONS_DATASET = "corrections"
"""The dataset name of the service's corrections store (``INKWELL_CORRECTIONS_DIR``)."""


def resolve_dataset(data_dir: Path, dataset: str) -> Path:
    """Resolve ``dataset`` inside ``data_dir``; refuse anything that leads out of it."""
    if any(ord(c) < 32 or ord(c) == 127 for c in dataset):
        raise PathNotAllowedError("dataset must not contain control characters")
    raw = Path(dataset)
    if raw.is_absolute() or ".." in raw.parts:
        raise PathNotAllowedError("dataset must be a relative path inside the data directory")
    root = data_dir.resolve()
    try:
        target = (root / raw).resolve()
        exists = target.exists()
    except (OSError, ValueError) as e:  # a name too long for the file system, say
        raise DatasetNotFoundError(f"no dataset '{dataset}' can exist ({e})") from e
    if not target.is_relative_to(root):
        raise PathNotAllowedError("dataset leads outside the data directory")
    if not exists:
        raise DatasetNotFoundError(f"dataset '{dataset}' not found in the data directory")
    return target


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


JOBS_DIR = ".jobs"
KEEP_JOBS = 200
PROGRESS_EVERY = 2.0
INTERRUPTED = (
    "the service stopped while this job ran; the served model and the model versions are "
    "unchanged: start the training again"
)


class TrainingJobStore:
    """Job records as JSON files (atomic writes), one per job."""

    def __init__(self, folder: Path) -> None:
        """Records live in ``folder`` (made on first write)."""
        self.folder = folder

    def save(self, job: TrainingJob) -> None:
        """Write one record."""
        try:
            atomic_write_text(self.folder / f"{job.job_id}.json", job.model_dump_json(indent=1))
        except OSError as e:  # a full disk must not kill the training: the record is in memory
            log.error("cannot record training job %s: %s", job.job_id, e)

    def load_all(self) -> dict[str, TrainingJob]:
        """Every readable record, newest last (unreadable ones are logged and skipped)."""
        jobs: list[TrainingJob] = []
        if not self.folder.is_dir():
            return {}
        for path in self.folder.glob("*.json"):
            try:
                jobs.append(TrainingJob.model_validate(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError) as e:
                log.warning("skipping unreadable job record %s: %s", path.name, e)
        jobs.sort(key=lambda j: j.created_at)
        for old in jobs[:-KEEP_JOBS]:
            (self.folder / f"{old.job_id}.json").unlink(missing_ok=True)
        return {j.job_id: j for j in jobs[-KEEP_JOBS:]}


class TrainingJobs:
    """Holds job records (in memory and on disk); runs at most one training at a time."""

    def __init__(self, state: ServiceState) -> None:
        """Jobs train into ``state.settings.models_dir``; records of earlier runs are read.

        A record still ``queued`` or ``running`` belongs to a service that died: it becomes
        ``interrupted``.
        """
        self.state = state
        self.store = TrainingJobStore(state.settings.models_dir / JOBS_DIR)
        self.jobs: dict[str, TrainingJob] = self.store.load_all()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._saved_at: dict[str, float] = {}
        self._stopping = threading.Event()
        self._interrupt_unfinished()

    def _interrupt_unfinished(self) -> None:
        for job_id, job in list(self.jobs.items()):
            if job.status in ("queued", "running"):
                self._update(job_id, status="interrupted", error=INTERRUPTED, finished_at=_now())

    def shutdown(self, wait: float = 10.0) -> None:
        """On a clean stop: a running job is recorded ``interrupted`` and told to give up.

        It stops at its next progress report (its queued pages are cancelled, the pages being
        read finish); ``wait`` seconds are given to it so its workers end cleanly.
        """
        self._stopping.set()
        self._interrupt_unfinished()
        self.wait(wait)

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            raise TrainingInterruptedError("the service is stopping")

    def busy(self) -> bool:
        """Whether a job is queued or running."""
        return any(j.status in ("queued", "running") for j in self.jobs.values())

    def submit(self, request: TrainRequest) -> TrainingJob:
        """Queue a job, or refuse with 409 when one is running."""
        settings = self.state.settings
        if request.dataset == CORRECTIONS_DATASET:  # the service's own corrections, wherever kept
            path = corrections_dir(settings)
            if not (path / "manifest.csv").is_file():
                raise DatasetNotFoundError("no corrections yet (POST /corrections adds some)")
            path = path / "manifest.csv"
        else:
            path = resolve_dataset(settings.data_dir, request.dataset)
        base_dir = self._base_dir(request)
        with self._lock:
            if self.busy():
                raise TrainingBusyError("a training job is already running; try again later")
            job = TrainingJob(
                job_id=uuid.uuid4().hex[:12],
                status="queued",
                dataset=request.dataset,
                created_at=_now(),
            )
            self.jobs[job.job_id] = job
            self.store.save(job)
            self._thread = threading.Thread(
                target=self._run, args=(job.job_id, path, request, base_dir), daemon=True
            )
            self._thread.start()
        return job

    def _base_dir(self, request: TrainRequest) -> Path | None:
        """The folder of the requested base version, refused now rather than in the job."""
        if request.base is None:
            return None
        from app.training.basepack import PACK_FILE, pack_sources  # noqa: PLC0415 - kept lazy

        base = request.base
        folder = self.state.registry.folder(base.version)
        if not (folder / PACK_FILE).is_file():
            raise NoBaseFeaturesError(
                f"model version {base.version!r} carries no base features ({PACK_FILE}); "
                "retrain it, or name another base"
            )
        if base.exclude_sources:
            unknown = set(base.exclude_sources) - set(pack_sources(folder / PACK_FILE))
            if unknown:
                raise DatasetError(
                    f"the base {base.version!r} has no source {', '.join(sorted(unknown))} "
                    "to leave out"
                )
        return folder

    def get(self, job_id: str) -> TrainingJob:
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
        """Change a record; write it unless only progress changed within PROGRESS_EVERY s."""
        with self._lock:
            job = self.jobs[job_id]
            if job.status == "interrupted" and changes.get("status") != "interrupted":
                return  # the service is stopping: this job's outcome is already recorded
            job = job.model_copy(update=changes)
            self.jobs[job_id] = job
            now = time.monotonic()
            if set(changes) == {"progress"} and now - self._saved_at.get(job_id, 0.0) < (
                PROGRESS_EVERY
            ):
                return
            self._saved_at[job_id] = now
            self.store.save(job)

    def _progress(self, job_id: str, done: int, total: int) -> None:
        self._check_stop()
        self._update(job_id, progress={"done": done, "total": total})

    def _stage(self, job_id: str, stage: str) -> None:
        self._check_stop()
        self._update(job_id, stage=stage)

    def _run(self, job_id: str, path: Path, request: TrainRequest, base_dir: Path | None) -> None:
        self._update(job_id, status="running", stage="starting")
        try:
            if base_dir is None:
                version_id, metrics, may_activate = self._train(job_id, path, request)
            else:
                version_id, metrics, may_activate = self._extend(job_id, path, request, base_dir)
            activated = request.activate and may_activate
            if activated:
                self.state.set_active(version_id)
            self._update(
                job_id,
                status="succeeded",
                stage="done",
                version_id=version_id,
                activated=activated,
                metrics=metrics,
                finished_at=_now(),
            )
        except AppError as e:
            log.warning("training job %s failed: %s", job_id, e.message)
            self._update(job_id, status="failed", error=e.message, finished_at=_now())
        except Exception as e:
            log.exception("training job %s crashed", job_id)
            self._update(job_id, status="failed", error=f"internal error: {e}", finished_at=_now())

    def _machine(self) -> dict[str, Any]:
        """What every training takes from the service's settings."""
        settings = self.state.settings
        return {
            "lang": settings.ocr_lang,
            "ocr_timeout": settings.ocr_timeout,
            "workers": settings.workers,
            "threads": settings.workers,
        }

    def _sinks(self, job_id: str) -> dict[str, Any]:
        """Where every training writes: the models folder, the cache, this job's record."""
        settings = self.state.settings
        return {
            "out_dir": settings.models_dir,
            "cache_dir": settings.cache_dir,
            "progress": lambda done, total: self._progress(job_id, done, total),
            "on_stage": lambda s: self._stage(job_id, s),
        }

    def _extend(
        self, job_id: str, path: Path, request: TrainRequest, base_dir: Path
    ) -> tuple[str, dict[str, Any], bool]:
        """Train on the base's features plus the dataset; may it be activated (the guard)?"""
        from app.training.extend import ExtendConfig, train_extended  # noqa: PLC0415 - see _train

        base = request.base
        assert base is not None  # only called for a request with a base
        cfg = ExtendConfig(
            algorithms=tuple(request.algorithms),
            seed=request.seed,
            user_weight=base.user_weight,
            exclude_sources=tuple(base.exclude_sources),
            augment=request.augment,
            loso_progress=lambda done, total: self._stage(
                job_id, f"leave-one-source-out on the base: {done} of {total} folds"
            ),
            **self._machine(),
        )
        result = train_extended(
            path,
            base_dir=base_dir,
            cfg=cfg,
            **self._sinks(job_id),
        )
        report = result.report
        metrics = {"base": report["base"], "user": report["user"], "guard": report["guard"]}
        passed = bool(report["guard"]["passed"])
        if request.activate and not passed and not base.allow_drop:
            log.warning(
                "training job %s: version %s not activated: %s",
                job_id,
                result.version_id,
                report["guard"]["reason"],
            )
        return result.version_id, metrics, passed or base.allow_drop

    def _train(
        self, job_id: str, path: Path, request: TrainRequest
    ) -> tuple[str, dict[str, Any], bool]:
        """Train on the dataset alone."""
        # imported by the first training, not at start-up: scikit-learn and CatBoost cost the
        # serving process seconds and about 150 MB it would otherwise never need
        from app.training.train import TrainConfig, train  # noqa: PLC0415

        cfg = TrainConfig(
            algorithms=tuple(request.algorithms),
            seed=request.seed,
            test_size=request.test_size,
            augment=request.augment,
            loso=request.loso,
            loso_progress=lambda done, total: self._stage(
                job_id, f"leave-one-source-out: {done} of {total} folds"
            ),
            fullpage_baseline=False,
            **self._machine(),
        )
        result = train(
            path,
            cfg=cfg,
            **self._sinks(job_id),
        )
        metrics: dict[str, Any] = {
            algo: {"test": res["test"], "robustness": res["robustness"]}
            for algo, res in result.report["algorithms"].items()
        }
        metrics["references"] = result.report["references"]
        loso = result.report.get("loso")
        if loso:
            for algo in result.report["algorithms"]:
                metrics[algo]["loso"] = loso["scorers"][algo]["overall"]
        return result.version_id, metrics, True
