"""Settings, read from ``INKWELL_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypedDict

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RenderLimits(TypedDict):
    """How a document is opened and rendered (the loader's keyword arguments)."""

    dpi: int
    max_pages: int
    max_pixels: int
    timeout: float


class Settings(BaseSettings):
    """Runtime settings of the CLI and the service."""

    model_config = SettingsConfigDict(env_prefix="INKWELL_", env_file=None, extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Root of /train datasets.")
    models_dir: Path = Field(default=PROJECT_ROOT / "models", description="Trained model versions.")
    default_model_dir: Path = Field(
        default=PROJECT_ROOT / "models" / "default", description="Model shipped with inkwell."
    )
    cache_dir: Path = Field(
        default=PROJECT_ROOT / ".cache" / "features", description="Feature cache directory."
    )
    max_pages: int = Field(default=200, ge=1, description="Most pages accepted in one document.")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=120_000_000, ge=1)
    render_dpi: int = Field(default=200, ge=50, le=600, description="DPI used to render PDFs.")
    pdf_timeout: float = Field(default=120.0, gt=0)
    ocr_timeout: float = Field(default=30.0, gt=0)
    ocr_lang: str = Field(default="eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    ocr_engine: Literal["auto", "library", "cli"] = Field(
        default="auto",
        description="library: tesseract loaded once per worker; cli: the tesseract command; "
        "auto: the library when it matches the command's version.",
    )
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    max_pages_in_flight: int = Field(
        default=0,
        ge=0,
        description="Pages being worked on across all /classify requests before new ones are "
        "refused with 503 busy; 0: four per worker.",
    )
    page_window: int = Field(
        default=0,
        ge=0,
        description="Pages of one document in flight at a time (rendered, queued or being "
        "read); 0: two per worker.",
    )
    job_engine: Literal["local", "rq"] = Field(
        default="local",
        description="local: /jobs run on this service's workers; rq: on `python -m app worker` "
        "processes fed by a Redis queue (INKWELL_REDIS_URL).",
    )
    redis_url: str = Field(default="redis://localhost:6379/0", description="For job_engine=rq.")
    jobs_dir: Path | None = Field(
        default=None,
        description="Uploads and results of /jobs; with rq, on storage every worker sees. "
        "Default: a .classify-jobs folder in models_dir.",
    )
    corrections_dir: Path | None = Field(
        default=None,
        description="Pages users corrected (POST /corrections), a dataset /train can read. "
        "Default: a corrections folder in data_dir (dataset name 'corrections').",
    )
    job_ttl: float = Field(
        default=24 * 3600.0, gt=0, description="Seconds a finished job's results are kept."
    )
    job_max_pages: int = Field(default=2000, ge=1, description="Most pages of one /jobs document.")
    job_chunk_pages: int = Field(
        default=20, ge=1, description="Pages per rq task (several workers share a document)."
    )
    job_concurrency: int = Field(
        default=1, ge=1, description="Documents the local engine reads at once."
    )
    worker_maintenance_interval: int = Field(
        default=60,
        ge=1,
        description="Seconds between an rq worker's registry clean-ups (tasks of vanished "
        "workers are retried or failed then).",
    )
    worker_heartbeat_interval: int = Field(
        default=30,
        ge=1,
        description="Seconds between a busy rq worker's heartbeats; a task whose worker is silent "
        "for this plus 60 s is presumed abandoned and retried.",
    )
    log_level: str = "INFO"

    def render_limits(self, max_pages: int | None = None) -> RenderLimits:
        """The loader's limits (``max_pages`` instead of :attr:`max_pages` when given)."""
        return RenderLimits(
            dpi=self.render_dpi,
            max_pages=max_pages or self.max_pages,
            max_pixels=self.max_image_pixels,
            timeout=self.pdf_timeout,
        )


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests override via dependency_overrides)."""
    return Settings()


def pages_in_flight(settings: Settings) -> int:
    """The service's page capacity (``max_pages_in_flight``, default four per worker)."""
    return settings.max_pages_in_flight or 4 * settings.workers


def page_window(settings: Settings) -> int:
    """Pages of one document in flight (``page_window``, default two per worker)."""
    return settings.page_window or 2 * settings.workers


def jobs_dir(settings: Settings) -> Path:
    """Where /jobs keeps uploads and results."""
    return settings.jobs_dir or settings.models_dir / ".classify-jobs"


def corrections_dir(settings: Settings) -> Path:
    """Where corrected pages and their manifest are kept."""
    return settings.corrections_dir or settings.data_dir / "corrections"
