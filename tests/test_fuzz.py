"""The API fuzzed from its own OpenAPI schema with schemathesis, every built-in check on.

Runs against the ASGI app in-process (lifespan entered once), with the shipped model and empty
data and models directories, bounded to a few dozen examples per operation (well under a minute).
Expected statuses of ``positive_data_acceptance`` are widened only where a schema cannot say what
is valid: an upload's bytes must be a real PDF or image, a dataset name must exist on disk.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from app.api.main import create_app
from app.config import Settings
from tests.conftest import ROOT

CONFIG = {
    "checks": {"enabled": True},
    "operations": [
        {
            # a schema cannot say "these bytes are a PDF": random bytes are refused with 415,
            # a random image name with 404, a damaged file with 422
            "include-path": "/classify",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "404", "413", "415", "422", "503", "504"]
                }
            },
        },
        {
            "include-path": "/corrections",  # the same upload, and a page it may not have
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "404", "413", "415", "422", "503", "504"]
                }
            },
        },
        {
            # a schema cannot say which pages a job has, nor that a line box lies in the page
            "include-path": "/jobs/{job_id}/pages/{page}/correction",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}},
        },
        {
            "include-path": "/jobs",  # POST /jobs takes the same upload as /classify
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "404", "413", "415", "422", "503", "504"]
                }
            },
        },
    ],
}


_ROOT = Path(tempfile.mkdtemp(prefix="inkwell-fuzz-"))
(_ROOT / "data").mkdir()
APP = create_app(
    Settings(
        data_dir=_ROOT / "data",
        models_dir=_ROOT / "models",
        default_model_dir=ROOT / "models" / "default",
        cache_dir=_ROOT / "cache",
        workers=1,
    )
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, config=SchemathesisConfig.from_dict(CONFIG)
)


@pytest.fixture(scope="module", autouse=True)
def _lifespan() -> Iterator[None]:
    """Run the app's lifespan (the state every route needs) around the fuzzing."""
    with TestClient(APP):
        yield
    shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()
