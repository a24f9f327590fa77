"""The shipped default model on the real dev pages (skipped without ../shared/datasets)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.features.cache import FeatureCache
from app.models.registry import ModelVersion, load_version
from app.training.dataset import discover
from app.training.evaluate import evaluate
from app.training.featurize import featurize, jobs_for
from app.training.train import _rows, split_documents
from tests.conftest import DEV_DATA, ROOT, needs_dev_data, needs_tesseract

pytestmark = [needs_dev_data, needs_tesseract]
DEFAULT = ROOT / "models" / "default"


@pytest.fixture(scope="session")
def default_model() -> ModelVersion:
    return load_version(DEFAULT)


@pytest.fixture(scope="session")
def dev_test_docs(default_model: ModelVersion) -> list[Any]:
    import json

    cfg = json.loads((DEFAULT / "report.json").read_text())["config"]
    docs = discover(DEV_DATA / "manifest.csv").documents
    return split_documents(docs, test_size=cfg["test_size"], seed=cfg["seed"])[1]


@pytest.fixture(scope="session")
def dev_summary(default_model: ModelVersion, cache_dir: Path) -> dict[str, Any]:
    return evaluate(
        DEV_DATA / "manifest.csv", default_model, split="test", cache_dir=cache_dir, workers=2
    )


def test_default_model_on_the_held_out_dev_pages(
    default_model: ModelVersion, dev_summary: dict[str, Any]
) -> None:
    import json

    report = json.loads((DEFAULT / "report.json").read_text())
    assert dev_summary["pages"] == report["dataset"]["test_pages"]
    for algo, m in dev_summary["algorithms"].items():
        assert m["balanced_accuracy"] >= 0.95, (algo, m["confusion_matrix"])
        # evaluate reproduces the training report's test metrics
        assert m["accuracy"] == pytest.approx(report["algorithms"][algo]["test"]["accuracy"])


def test_default_model_survives_the_resolution_swap(
    default_model: ModelVersion, dev_test_docs: list[Any], cache_dir: Path
) -> None:
    """IAM at 100 dpi, FUNSD at 300 dpi, turned 3°, JPEG: a resolution shortcut would flip
    every label."""
    jobs = jobs_for(dev_test_docs, "robust", lang="eng", timeout=30)
    results, failures = featurize(jobs, cache=FeatureCache(cache_dir), workers=2)
    assert not failures
    rows = _rows(dev_test_docs, jobs, results)
    pred = (default_model.predict(rows.x) >= 0.5).astype(int)
    assert np.mean(pred == rows.y) >= 0.95


def test_iam_header_alone_is_typed_and_body_alone_handwritten(
    default_model: ModelVersion, dev_test_docs: list[Any], cache_dir: Path
) -> None:
    iam = [d for d in dev_test_docs if d.source.startswith("iam")][:8]
    assert iam
    header_jobs = jobs_for(iam, "iam_header", lang="eng", timeout=30)
    body_jobs = jobs_for(iam, "iam_body", lang="eng", timeout=30)
    results, _ = featurize(header_jobs + body_jobs, cache=FeatureCache(cache_dir), workers=2)
    header = _rows(iam, header_jobs, results)
    body = _rows(iam, body_jobs, results)
    assert np.mean(default_model.predict(header.x) < 0.5) >= 0.85
    assert np.mean(default_model.predict(body.x) >= 0.5) >= 0.85


def test_api_classifies_real_pages(tmp_path: Path, dev_test_docs: list[Any]) -> None:
    settings = Settings(
        models_dir=tmp_path, default_model_dir=DEFAULT, data_dir=tmp_path, workers=1
    )
    picks = [d for d in dev_test_docs if d.source.startswith("iam")][:2]
    picks += [d for d in dev_test_docs if d.source == "funsd"][:2]
    with TestClient(create_app(settings)) as client:
        for doc in picks:
            r = client.post(
                "/classify", files={"file": (doc.path.name, io.BytesIO(doc.path.read_bytes()))}
            )
            assert r.status_code == 200, r.text
            assert r.json()["pages"][0]["label"] == doc.label, (doc.path, r.json())


def test_manifest_matches_the_files() -> None:
    rows = list(csv.DictReader((DEV_DATA / "manifest.csv").open()))
    assert {r["label"] for r in rows} == {"handwritten", "typed"}
    assert all((DEV_DATA / r["path"]).is_file() for r in rows)


def test_iam_overlay_header_lines_typed_body_lines_handwritten(
    default_model: ModelVersion, dev_test_docs: list[Any]
) -> None:
    from app.documents import load_pages
    from app.models.predict import classify_pages
    from app.training.augment import body_band

    form = next(d for d in dev_test_docs if d.source.startswith("iam"))
    page = load_pages(form.path)[0]
    band = body_band(page.image)
    assert band is not None
    verdict = classify_pages([page], default_model)[0]
    header = [ln for ln in verdict.lines if (ln.bbox[1] + ln.bbox[3]) / 2 < band[0]]
    body = [ln for ln in verdict.lines if band[0] <= (ln.bbox[1] + ln.bbox[3]) / 2 <= band[1]]
    assert header and body
    assert np.mean([ln.label == "typed" for ln in header]) >= 0.8
    assert np.mean([ln.label == "handwritten" for ln in body]) >= 0.8
    assert verdict.handwritten_share is not None and verdict.handwritten_share > 0.4


def _labels_when_transformed(
    model: ModelVersion, docs: list[Any], per_source: int, transform: Any
) -> tuple[list[str], list[str]]:
    """(predicted, true) labels of held-out IAM and FUNSD pages after ``transform(image)``."""
    from app.documents import Page, load_pages
    from app.models.predict import classify_pages

    picks = [d for d in docs if d.source.startswith("iam")][:per_source]
    picks += [d for d in docs if d.source == "funsd"][:per_source]
    pages = [
        Page(image=transform(load_pages(doc.path)[0].image), number=1, dpi=None) for doc in picks
    ]
    return [v.label for v in classify_pages(pages, model)], [d.label for d in picks]


@pytest.mark.parametrize("degrees", [-7.0, 5.0])
def test_default_model_survives_crooked_scans(
    default_model: ModelVersion, dev_test_docs: list[Any], degrees: float
) -> None:
    """Held-out pages turned as a careless scan or a phone photo would be keep their label."""
    from app.training.augment import turn

    predicted, truth = _labels_when_transformed(
        default_model, dev_test_docs, 4, lambda image: turn(image, degrees)
    )
    assert predicted == truth


@pytest.mark.parametrize("quarter_turns", [1, 2])
def test_default_model_reads_pages_fed_sideways_or_upside_down(
    default_model: ModelVersion, dev_test_docs: list[Any], quarter_turns: int
) -> None:
    """A page scanned upside down or photographed sideways is read the right way up."""
    predicted, truth = _labels_when_transformed(
        default_model,
        dev_test_docs,
        3,
        lambda image: np.ascontiguousarray(np.rot90(image, quarter_turns)),
    )
    assert predicted == truth
