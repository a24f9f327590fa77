"""The rq side: the task a worker runs for one chunk of a job's pages, and the worker itself.

``python -m app worker`` starts an rq worker on the ``inkwell`` queue. It loads the OCR engine and
the active model once; rq forks a work horse per task, which inherits both. The worker reads
``INKWELL_*`` settings like the service: ``INKWELL_REDIS_URL`` and the jobs folder
(``INKWELL_JOBS_DIR``, or ``.classify-jobs`` in ``INKWELL_MODELS_DIR``) must name the same Redis
and the same shared storage as the API's.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from app.config import Settings, get_settings, jobs_dir
from app.errors import AppError
from app.jobs.classify.engines import QUEUE_NAME, redis_connection
from app.jobs.classify.runner import run_pages
from app.jobs.classify.store import ClassifyJobStore
from app.models.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

_VERSIONS: dict[str, ModelVersion] = {}


def _version(settings: Settings, version_id: str) -> ModelVersion:
    """A model version, loaded once per worker (work horses inherit what the worker loaded)."""
    version = _VERSIONS.get(version_id)
    if version is None:
        version = Registry(settings.models_dir, settings.default_model_dir).load(version_id)
        _VERSIONS[version_id] = version
    return version


class SharedStorageError(RuntimeError):
    """This worker does not see the jobs folder the API wrote the job into."""


def run_chunk(job_id: str, first: int, last: int, storage: str | None = None) -> dict[str, Any]:
    """Read pages ``first``..``last`` of job ``job_id`` (the rq task).

    A document or page that cannot be read is the job's error (recorded, not retried: it would
    fail again); anything else raises, and rq retries the task. ``storage`` is the jobs folder's
    id the API saw: a worker that sees another folder raises (the task fails, the job says why)
    rather than taking the job for cancelled.
    """
    settings = get_settings()
    store = ClassifyJobStore(jobs_dir(settings))
    if storage is not None and store.storage_id() != storage:
        raise SharedStorageError(
            f"this worker does not see the API's jobs folder (its own is {store.root}): mount "
            "the same shared storage and set the same INKWELL_JOBS_DIR / INKWELL_MODELS_DIR"
        )
    folder = store.folder(job_id)
    if not folder.exists():
        log.info("job %s is gone (cancelled or expired): nothing to do", job_id)
        return {"job_id": job_id, "pages": 0, "skipped": True}
    try:
        spec = folder.spec()
        done = run_pages(folder, _version(settings, spec.model_id), first=first, last=last)
    except FileNotFoundError:
        log.info("job %s was removed while it ran", job_id)
        return {"job_id": job_id, "pages": 0, "skipped": True}
    except AppError as e:
        log.warning("job %s pages %d-%d failed: %s", job_id, first, last, e.message)
        folder.fail(e.message, e.code)
        return {"job_id": job_id, "pages": 0, "error": e.code}
    return {"job_id": job_id, "pages": done}


def wait_for_redis(connection: Any, url: str, wait: float) -> None:
    """Ping Redis until it answers, ``wait`` seconds at most (containers start in any order).

    Raises:
        redis.exceptions.RedisError: still unreachable after ``wait`` seconds.
    """
    from redis.exceptions import RedisError  # noqa: PLC0415

    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except RedisError as e:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("worker: Redis at %s not reachable yet (%s); retrying", url, e)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_worker(*, burst: bool = False, name: str | None = None, wait: float = 60.0) -> bool:
    """Run an rq worker on the ``inkwell`` queue until stopped (``burst``: until it is empty).

    Redis is waited for ``wait`` seconds at start-up; once running, rq itself reconnects.
    """
    from rq import Queue, Worker  # noqa: PLC0415 - only the worker needs rq

    from app.ocr import warm_up  # noqa: PLC0415

    settings = get_settings()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        warm_up(settings.ocr_lang)
    except AppError as e:
        log.warning("OCR warm-up failed: %s", e.message)
    registry = Registry(settings.models_dir, settings.default_model_dir)
    try:
        active = registry.active_id()
        _version(settings, active)
        log.info("worker: model %s loaded", active)
    except AppError as e:
        log.warning("worker: cannot load the active model now: %s", e.message)
    connection = redis_connection(settings.redis_url)
    wait_for_redis(connection, settings.redis_url, wait)
    worker = Worker(
        [Queue(QUEUE_NAME, connection=connection)],
        connection=connection,
        name=name,
        maintenance_interval=settings.worker_maintenance_interval,
        job_monitoring_interval=settings.worker_heartbeat_interval,
        # an idle worker wakes at least every maintenance interval (rq's default is 7 minutes),
        # so tasks of a vanished worker are found even when no new task arrives
        worker_ttl=settings.worker_maintenance_interval + 15,
    )
    return bool(worker.work(burst=burst, logging_level=settings.log_level.upper()))
