"""The records of both kinds of job: training jobs and classification jobs.

A training job (``POST /train``, :mod:`app.jobs.training`) fits and evaluates a model version; a
classification job (``POST /jobs``, :mod:`app.jobs.classify`) reads a long document page by page.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.results import ClassifyResponse, DocumentInfo


class BaseRequest(BaseModel):
    """Retraining on a version's base features plus the dataset's pages.

    The dataset's pages join the base's as sources of their own (``user:<source>``). The base's
    leave-one-source-out figures are measured again and compared with the base version's (one fit
    per base source).
    """

    version: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="the model version whose training pages to learn from (`default`: the "
        "shipped model)",
    )
    user_weight: float = Field(
        default=5.0, gt=0, le=100, description="the dataset's pages weigh this many base sources"
    )
    exclude_sources: list[str] = Field(
        default_factory=list, max_length=100, description="base sources left out altogether"
    )
    allow_drop: bool = Field(
        default=False,
        description="with activate: activate even when the base's figures fell by more than "
        "one point (by default such a version is written but not activated)",
    )


class TrainRequest(BaseModel):
    """A training job on a dataset under INKWELL_DATA_DIR."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"dataset": "mydocs", "algorithms": ["catboost", "svm"], "activate": False},
                {"dataset": "corrections", "base": {"version": "default"}, "activate": True},
            ]
        }
    )

    dataset: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="folder (handwritten/, typed/) or manifest.csv, relative to INKWELL_DATA_DIR "
        "(no control characters, no absolute path, no '..')",
    )
    algorithms: list[Literal["catboost", "svm"]] = Field(default=["catboost", "svm"], min_length=1)
    test_size: float = Field(default=0.25, gt=0.05, le=0.5)
    seed: int = 42
    activate: bool = False
    augment: bool = True
    loso: bool = Field(
        default=False,
        description="also evaluate leave-one-source-out (needs at least 3 sources; one fit "
        "per source): the metrics then hold a `loso` entry per algorithm",
    )
    base: BaseRequest | None = Field(
        default=None,
        description="train on a model version's training pages (their features, shipped with "
        "it) together with the dataset's pages; see BaseRequest",
    )


class TrainingJob(BaseModel):
    """Where a training job stands."""

    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "interrupted"] = Field(
        description="`interrupted`: the service stopped while the job ran (the served model "
        "and the versions are unchanged); start it again"
    )
    stage: str | None = None
    progress: dict[str, int] = Field(default_factory=dict, description="pages featurised / total")
    dataset: str
    version_id: str | None = None
    activated: bool | None = Field(
        default=None,
        description="whether the new version was made the active one (with base: only when "
        "the guard passed or base.allow_drop was given)",
    )
    error: str | None = None
    metrics: dict[str, Any] | None = None
    created_at: str
    finished_at: str | None = None


class JobError(BaseModel):
    """Why a job failed: the same body as an HTTP error."""

    detail: str
    code: str


class ClassifyJob(BaseModel):
    """Where a classification job stands; its result once every page is read."""

    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    engine: Literal["local", "rq"]
    document: DocumentInfo
    pages_done: int = Field(description="pages read so far (each one readable at once)")
    created_at: str
    finished_at: str | None = None
    expires_at: str | None = Field(
        default=None, description="when the results will be removed (the job is then 404)"
    )
    error: JobError | None = None
    result: ClassifyResponse | None = Field(
        default=None, description="when succeeded: exactly what POST /classify returns"
    )
