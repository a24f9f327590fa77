"""Two ways to run /jobs behind one interface, chosen by ``INKWELL_JOB_ENGINE``.

- :class:`LocalEngine` (default): the service's own worker pool reads the pages, a thread per
  running document; nothing else to install. Jobs left unfinished by a stopped service are resumed
  when it starts again (pages already recorded are kept).
- :class:`RqEngine`: the API cuts the document into chunks of pages and puts one Redis Queue (rq)
  task per chunk on the ``inkwell`` queue; ``python -m app worker`` processes, on this or other
  machines, take them. Each task is retried twice when its process dies (killed, out of memory);
  rq marks a task whose worker vanished as abandoned and retries or fails it, and a failed task
  fails its job, so no job is lost silently.

Uploads and results are files in the jobs folder (:mod:`app.jobs.classify.store`) in both cases: the
engines only decide who reads the pages.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from app.config import Settings, jobs_dir, page_window
from app.errors import AppError, QueueUnavailableError, WorkerCrashedError
from app.jobs.classify.runner import run_pages
from app.jobs.classify.store import ClassifyJobStore, JobFolder, JobSpec

if TYPE_CHECKING:
    from app.runtime.state import ServiceState

log = logging.getLogger(__name__)

QUEUE_NAME = "inkwell"
TASK = "app.jobs.classify.tasks.run_chunk"
RETRIES = 2


class Engine(Protocol):
    """What the /jobs routes need from an engine."""

    name: str

    def chunks(self, page_count: int) -> list[tuple[int, int]]:
        """How the document's pages are cut into tasks."""

    def submit(self, folder: JobFolder, spec: JobSpec) -> None:
        """Start or queue the job (QueueUnavailableError: it cannot be queued)."""

    def failure(self, spec: JobSpec) -> dict[str, Any] | None:
        """An error the engine knows about and the job's files do not (a task that died)."""

    def cancel(self, spec: JobSpec) -> None:
        """Stop the job's tasks (its folder is removed by the caller)."""

    def health(self) -> dict[str, Any]:
        """What /health shows about the engine."""

    def close(self) -> None:
        """Stop on service shutdown."""


class LocalEngine:
    """Jobs run in this service: one thread per running document, pages on its worker pool."""

    name = "local"

    def __init__(self, state: ServiceState) -> None:
        """Threads are made on demand, at most ``job_concurrency`` documents at once."""
        self.state = state
        self.store = ClassifyJobStore(jobs_dir(state.settings))
        self._pool = ThreadPoolExecutor(
            max_workers=state.settings.job_concurrency, thread_name_prefix="inkwell-job"
        )
        self._stopping = threading.Event()

    def chunks(self, page_count: int) -> list[tuple[int, int]]:
        """One range: the whole document."""
        return [(1, page_count)]

    def resume(self) -> int:
        """Queue again the local jobs a stopped service left unfinished; return how many."""
        n = 0
        for folder in self.store.jobs():
            try:
                spec = folder.spec()
                unfinished = spec.engine == self.name and folder.progress(spec).ended is None
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if unfinished:
                self.submit(folder, spec)
                n += 1
        return n

    def submit(self, folder: JobFolder, spec: JobSpec) -> None:  # noqa: ARG002 - Engine interface
        """Queue the job on this service's job threads."""
        self._pool.submit(self._run, folder)

    def _run(self, folder: JobFolder, attempts: int = 2) -> None:
        state = self.state
        admission = state.admission
        slots = 0
        try:
            if not folder.exists():
                return
            spec = folder.spec()
            version = state.version(spec.model_id)
            slots = admission.acquire_waiting(
                min(spec.page_count, page_window(state.settings)),
                stop=lambda: self._stopping.is_set() or folder.cancelled(),
            )
            if slots == 0:
                return  # stopping or cancelled while waiting
            for attempt in range(attempts):
                executor = state.executor
                try:
                    run_pages(
                        folder, version, executor=executor, window=slots, stop=self._stopping.is_set
                    )
                    return
                except WorkerCrashedError:
                    if executor is not None:
                        state.restart_workers(executor)
                    if attempt + 1 == attempts:
                        raise
                    log.warning("job %s: a worker died, reading the rest again", folder.job_id)
        except AppError as e:
            log.warning("job %s failed: %s", folder.job_id, e.message)
            folder.fail(e.message, e.code)
        except FileNotFoundError:
            log.info("job %s was removed", folder.job_id)
        except Exception as e:
            log.exception("job %s crashed", folder.job_id)
            folder.fail(f"internal error: {e}", "internal_error")
        finally:
            if slots:
                admission.release(slots)

    def failure(self, spec: JobSpec) -> dict[str, Any] | None:  # noqa: ARG002 - Engine interface
        """The local engine records every error in the job's files."""
        return None

    def cancel(self, spec: JobSpec) -> None:
        """The job's thread stops at its next page (it sees the folder gone)."""

    def health(self) -> dict[str, Any]:
        """Always reachable."""
        return {"engine": self.name, "ok": True}

    def close(self) -> None:
        """Running jobs stop at their next page and are resumed on the next start."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def redis_connection(url: str) -> Any:
    """A Redis client with short timeouts (an unreachable Redis must not hang a request)."""
    from redis import Redis  # noqa: PLC0415 - only the rq engine needs Redis

    return Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)


class RqEngine:
    """Jobs cut into page chunks on a Redis Queue, read by ``python -m app worker`` processes."""

    name = "rq"

    def __init__(self, settings: Settings) -> None:
        """Connects lazily: the service starts even when Redis is down (and says so)."""
        from rq import Queue  # noqa: PLC0415 - only the rq engine needs rq

        self.settings = settings
        self.redis = redis_connection(settings.redis_url)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def chunks(self, page_count: int) -> list[tuple[int, int]]:
        """Chunks of ``job_chunk_pages`` pages."""
        size = self.settings.job_chunk_pages
        return [(a, min(a + size - 1, page_count)) for a in range(1, page_count + 1, size)]

    def _task_ids(self, spec: JobSpec) -> list[str]:
        return [f"{spec.job_id}-{a}" for a, _ in spec.chunks]

    def submit(self, folder: JobFolder, spec: JobSpec) -> None:  # noqa: ARG002 - Engine interface
        """One rq task per chunk, all in one Redis transaction."""
        from redis.exceptions import RedisError  # noqa: PLC0415
        from rq import Queue, Retry  # noqa: PLC0415

        s = self.settings
        storage = ClassifyJobStore(jobs_dir(s)).storage_id(create=True)
        per_chunk = s.job_chunk_pages * (s.ocr_timeout + 10) + s.pdf_timeout
        ttl = int(s.job_ttl)
        data = [
            Queue.prepare_data(
                TASK,
                args=(spec.job_id, first, last, storage),
                job_id=task_id,
                timeout=int(per_chunk),
                result_ttl=ttl,
                failure_ttl=ttl,
                retry=Retry(max=RETRIES),
                description=f"inkwell job {spec.job_id} pages {first}-{last}",
            )
            for (first, last), task_id in zip(spec.chunks, self._task_ids(spec), strict=True)
        ]
        try:
            self.queue.enqueue_many(data)
        except RedisError as e:
            raise QueueUnavailableError(f"the job queue (Redis) cannot be reached: {e}") from e

    def failure(self, spec: JobSpec) -> dict[str, Any] | None:
        """A task rq gave up on (its retries spent): the job has failed."""
        from redis.exceptions import RedisError  # noqa: PLC0415
        from rq.job import Job, JobStatus  # noqa: PLC0415

        try:
            tasks = Job.fetch_many(self._task_ids(spec), connection=self.redis)
            for task in tasks:
                if task is not None and task.get_status(refresh=False) == JobStatus.FAILED:
                    result = task.latest_result()
                    reason = (result.exc_string or "").strip().splitlines() if result else []
                    return {
                        "detail": "a task of this job failed after "
                        f"{RETRIES} retries: {reason[-1] if reason else 'no reason given'}",
                        "code": "task_failed",
                    }
        except RedisError as e:
            log.warning("cannot ask Redis about job %s: %s", spec.job_id, e)
        return None

    def cancel(self, spec: JobSpec) -> None:
        """Cancel queued tasks and stop running ones.

        Best effort: runners also stop when they see the folder gone.
        """
        from redis.exceptions import RedisError  # noqa: PLC0415
        from rq.command import send_stop_job_command  # noqa: PLC0415
        from rq.exceptions import InvalidJobOperation, NoSuchJobError  # noqa: PLC0415
        from rq.job import Job, JobStatus  # noqa: PLC0415

        try:
            for task in Job.fetch_many(self._task_ids(spec), connection=self.redis):
                if task is None:
                    continue
                status = task.get_status(refresh=False)
                try:
                    if status == JobStatus.STARTED:
                        send_stop_job_command(self.redis, task.id)
                    elif status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                        task.cancel()
                except (InvalidJobOperation, NoSuchJobError):
                    pass  # finished or gone meanwhile
        except RedisError as e:
            log.warning("cannot cancel the tasks of job %s in Redis: %s", spec.job_id, e)

    def health(self) -> dict[str, Any]:
        """Whether Redis answers, how many tasks wait and how many workers listen."""
        from redis.exceptions import RedisError  # noqa: PLC0415
        from rq import Worker  # noqa: PLC0415

        try:
            self.redis.ping()
            return {
                "engine": self.name,
                "ok": True,
                "queued_tasks": self.queue.count,
                "workers": Worker.count(queue=self.queue),
            }
        except RedisError as e:
            return {"engine": self.name, "ok": False, "error": str(e)}

    def close(self) -> None:
        """Close the Redis connections."""
        self.redis.close()


def make_engine(state: ServiceState) -> LocalEngine | RqEngine:
    """The engine the settings name."""
    if state.settings.job_engine == "rq":
        return RqEngine(state.settings)
    return LocalEngine(state)
