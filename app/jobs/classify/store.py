"""Classification jobs on disk: one folder per job, on storage every API and worker sees.

``<jobs_dir>/<job_id>/`` holds

- ``upload``: the document as received;
- ``job.json``: what the job is (written once, by the API, before the job is queued);
- ``pages/<n>.json``: each page's result, written atomically as soon as the page is done, so a
  client can read a page while the others are still being read and a retried or resumed job
  skips the pages it already has;
- ``error.json``: why the job failed (the first error wins);
- ``cancelled``: the job was cancelled; runners stop at their next page and the folder goes.

Status is derived from these files (no shared record that several workers would race to update):
``succeeded`` when every page is there, ``failed`` when there is an error, ``running`` once a
runner has started, else ``queued``. A job is created under a temporary name and renamed into place
only when complete, so a crash while an upload arrives leaves no half job behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.models.registry import atomic_write_text

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "succeeded", "failed"]
STAGING_PREFIX = ".new-"


def now_iso(t: float | None = None) -> str:
    """A UTC timestamp in ISO 8601 (seconds)."""
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat(
        timespec="seconds"
    )


@dataclass(frozen=True)
class RenderOptions:
    """How the job's pages are read: fixed when the job is made, so every machine reads alike."""

    dpi: int
    max_pixels: int
    pdf_timeout: float
    ocr_timeout: float
    lang: str


@dataclass(frozen=True)
class Progress:
    """A job's state as its files tell it."""

    state: JobState
    pages_done: int
    error: dict[str, Any] | None
    ended: float | None
    """When it succeeded (its last page) or failed; None while it runs."""


@dataclass(frozen=True)
class JobSpec:
    """What a job is (``job.json``)."""

    job_id: str
    engine: str
    filename: str | None
    media_type: str
    sha256: str
    page_count: int
    model_id: str
    algorithm: str
    feature_version: str
    lines: bool
    thumbnails: bool
    render: RenderOptions
    created: float
    chunks: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> str:
        """The record as JSON."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """The record written by :meth:`to_json`."""
        d: dict[str, Any] = json.loads(text)
        d["render"] = RenderOptions(**d["render"])
        d["chunks"] = [(int(a), int(b)) for a, b in d.get("chunks", [])]
        return cls(**d)


class JobFolder:
    """One job's folder."""

    def __init__(self, path: Path) -> None:
        """The folder at ``path`` (it may not exist: a removed job)."""
        self.path = path
        self.job_id = path.name

    @property
    def upload(self) -> Path:
        """The document."""
        return self.path / "upload"

    @property
    def pages_dir(self) -> Path:
        """Where page results go."""
        return self.path / "pages"

    def spec(self) -> JobSpec:
        """The job's record (FileNotFoundError: the job is gone)."""
        return JobSpec.from_json((self.path / "job.json").read_text("utf-8"))

    def exists(self) -> bool:
        """Whether the job is still there (not removed, not cancelled)."""
        return (self.path / "job.json").is_file() and not self.cancelled()

    def cancelled(self) -> bool:
        """Whether the job was cancelled (or removed)."""
        return (self.path / "cancelled").exists() or not self.path.is_dir()

    def page_path(self, number: int) -> Path:
        """Where page ``number``'s result is."""
        return self.pages_dir / f"{number:05d}.json"

    def has_page(self, number: int) -> bool:
        """Whether page ``number`` is done."""
        return self.page_path(number).is_file()

    def write_page(self, number: int, result_json: str) -> None:
        """Record one page's result atomically (FileNotFoundError: the job was removed)."""
        if not self.pages_dir.is_dir():
            raise FileNotFoundError(self.pages_dir)
        atomic_write_text(self.page_path(number), result_json)

    def read_page(self, number: int) -> str | None:
        """Page ``number``'s result JSON, or None when it is not done."""
        try:
            return self.page_path(number).read_text("utf-8")
        except FileNotFoundError:
            return None

    def mark_started(self) -> None:
        """A runner has begun (first one wins; harmless when the job is gone)."""
        with contextlib.suppress(OSError):
            (self.path / "started").touch(exist_ok=True)

    def fail(self, message: str, code: str) -> None:
        """Record why the job failed (the first error is kept)."""
        path = self.path / "error.json"
        if path.exists() or not self.path.is_dir():
            return
        with contextlib.suppress(OSError):
            atomic_write_text(
                path, json.dumps({"detail": message, "code": code, "at": time.time()})
            )

    def error(self) -> dict[str, Any] | None:
        """The recorded error, if any."""
        try:
            return dict(json.loads((self.path / "error.json").read_text("utf-8")))
        except (FileNotFoundError, ValueError):
            return None

    def progress(self, spec: JobSpec) -> Progress:
        """Where the job stands, from one listing of its pages and one read of its error."""
        err = self.error()
        try:
            done = [p for p in self.pages_dir.iterdir() if p.suffix == ".json"]
        except FileNotFoundError:
            done = []
        ended: float | None = None
        state: JobState
        if err is not None:
            state, ended = "failed", float(err.get("at", 0.0))
        elif len(done) >= spec.page_count:
            state, ended = "succeeded", max(p.stat().st_mtime for p in done)
        elif done or (self.path / "started").exists():
            state = "running"
        else:
            state = "queued"
        return Progress(state=state, pages_done=len(done), error=err, ended=ended)

    def cancel(self) -> None:
        """Tell runners to stop, then remove the folder."""
        with contextlib.suppress(OSError):
            (self.path / "cancelled").touch()
        self.remove()

    def remove(self) -> None:
        """Remove the folder (runners still reading it stop at their next page)."""
        # renamed first, so a half-removed folder is never mistaken for a job
        trash = self.path.with_name(f".trash-{self.job_id}-{uuid.uuid4().hex[:6]}")
        try:
            self.path.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)


class ClassifyJobStore:
    """Every job folder under ``root``."""

    def __init__(self, root: Path) -> None:
        """Jobs live in ``root`` (made when the first job is)."""
        self.root = root

    def storage_id(self, *, create: bool = False) -> str | None:
        """The id of this jobs folder (``.storage-id``), made once by the API (``create``).

        rq tasks carry it: a worker that does not see the same folder (a volume not mounted, a
        different ``INKWELL_JOBS_DIR``) fails the task loudly instead of taking the job for gone.
        """
        path = self.root / ".storage-id"
        try:
            return path.read_text("utf-8").strip()
        except FileNotFoundError:
            if not create:
                return None
        self.root.mkdir(parents=True, exist_ok=True)
        candidate = self.root / f".storage-id-{uuid.uuid4().hex}"
        candidate.write_text(uuid.uuid4().hex, "utf-8")
        try:
            os.link(candidate, path)  # first writer wins, atomically
        except FileExistsError:
            pass
        finally:
            candidate.unlink(missing_ok=True)
        return path.read_text("utf-8").strip()

    def folder(self, job_id: str) -> JobFolder:
        """The folder of ``job_id`` (a job id is 32 hex digits: anything else names none)."""
        if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
            return JobFolder(self.root / ".none")
        return JobFolder(self.root / job_id)

    def staging(self) -> tuple[str, Path]:
        """A new job id and its private staging folder (publish with :meth:`publish`)."""
        job_id = uuid.uuid4().hex
        path = self.root / f"{STAGING_PREFIX}{os.getpid()}-{job_id}"
        (path / "pages").mkdir(parents=True)
        return job_id, path

    def publish(self, staging: Path, spec: JobSpec) -> JobFolder:
        """Write ``job.json`` and move the staging folder into place."""
        atomic_write_text(staging / "job.json", spec.to_json())
        target = self.root / spec.job_id
        staging.rename(target)
        return JobFolder(target)

    def jobs(self) -> list[JobFolder]:
        """Every published job."""
        if not self.root.is_dir():
            return []
        return [
            JobFolder(p)
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / "job.json").is_file()
        ]

    def expire(self, ttl: float, *, now: float | None = None) -> int:
        """Remove jobs ended more than ``ttl`` seconds ago; return how many went.

        Staging and trash folders left by dead processes go after an hour. A job that never
        ends (a worker fleet gone for good) goes after ten times ``ttl``.
        """
        t = time.time() if now is None else now
        removed = 0
        for folder in self.jobs():
            try:
                spec = folder.spec()
                ended = folder.progress(spec).ended
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("removing unreadable job %s: %s", folder.job_id, e)
                folder.remove()
                continue
            if (ended is not None and t - ended > ttl) or t - spec.created > 10 * ttl:
                folder.remove()
                removed += 1
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.name.startswith((STAGING_PREFIX, ".trash-")):
                    with contextlib.suppress(OSError):
                        if t - p.stat().st_mtime > 3600:
                            shutil.rmtree(p, ignore_errors=True)
        return removed
