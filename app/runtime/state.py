"""What the service keeps between requests: settings, registry, loaded models, workers, jobs."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from app.config import Settings, pages_in_flight
from app.models.registry import ModelVersion, Registry
from app.runtime.admission import Admission
from app.runtime.workers import make_executor

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """Shared state of one running service."""

    settings: Settings
    registry: Registry
    executor: ProcessPoolExecutor | None
    tesseract: str | None = None
    tesseract_error: str | None = None
    ocr_engine: str | None = None
    admission: Admission = field(init=False)
    _versions: dict[str, ModelVersion] = field(default_factory=dict)
    _active: str = "default"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.admission = Admission(pages_in_flight(self.settings), self.settings.workers)

    def active_loaded(self) -> ModelVersion | None:
        """The active version if it is loaded (never touches the disk: for /health)."""
        with self._lock:
            return self._versions.get(self._active)

    def restart_workers(self, broken: ProcessPoolExecutor) -> None:
        """Replace a pool whose worker died (once, however many requests saw it break)."""
        with self._lock:
            if self.executor is not broken:
                return  # another request already replaced it
            log.error("a worker process died: restarting the %d workers", self.settings.workers)
            broken.shutdown(wait=False, cancel_futures=True)
            self.executor = make_executor(self.settings.workers, self.settings.ocr_lang)

    def load_active(self) -> ModelVersion:
        """(Re)load the active version."""
        active = self.registry.active_id()
        version = self.registry.load(active)
        with self._lock:
            self._versions[active] = version
            self._active = active
        return version

    @property
    def active_id(self) -> str:
        """The active version id."""
        return self._active

    def version(self, version_id: str | None = None) -> ModelVersion:
        """A loaded version (the active one by default), loaded once and kept."""
        vid = version_id or self._active
        with self._lock:
            cached = self._versions.get(vid)
        if cached is not None:
            return cached
        version = self.registry.load(vid)
        with self._lock:
            self._versions[vid] = version
        return version

    def set_active(self, version_id: str) -> ModelVersion:
        """Activate a version on disk and in memory."""
        version = self.registry.activate(version_id)
        with self._lock:
            self._versions[version_id] = version
            self._active = version_id
        return version
