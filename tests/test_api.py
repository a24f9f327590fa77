"""The HTTP service, through TestClient(create_app()) so the lifespan runs."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.errors import OcrTimeoutError, PathNotAllowedError
from app.jobs.training import resolve_dataset
from tests.conftest import SAMPLES, needs_fonts, needs_tesseract
from tests.helpers import encode, make_manifest_dataset, pdf_bytes, typed_page

pytestmark = needs_tesseract


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def post(client: TestClient, data: bytes, name: str = "doc.bin", **form: str):  # type: ignore[no-untyped-def]
    return client.post("/classify", files={"file": (name, io.BytesIO(data))}, data=form)


def test_health_and_version(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["tesseract"][0].isdigit()
    assert health["ocr_engine"].startswith(health["tesseract"])
    assert health["active_model"]["id"] == "default"
    version = client.get("/version").json()
    assert version["feature_version"] and version["inkwell"]


def test_classify_pdf_returns_page_level_json(client: TestClient) -> None:
    data = (SAMPLES / "typed_report.pdf").read_bytes()
    r = post(client, data, "typed_report.pdf")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["document"]["page_count"] == 2
    assert body["document"]["media_type"] == "application/pdf"
    assert len(body["document"]["sha256"]) == 64
    assert body["model"]["id"] == "default"
    assert [p["page"] for p in body["pages"]] == [1, 2]
    for p in body["pages"]:
        assert p["label"] in ("handwritten", "typed")
        assert p["probabilities"]["handwritten"] + p["probabilities"]["typed"] == pytest.approx(1)
        assert p["confidence"] == max(p["probabilities"].values())
        assert p["dpi"] == 200
    assert body["label"] in ("handwritten", "typed", "mixed")


def test_classify_image_with_algorithm_and_lang(client: TestClient) -> None:
    data = encode(typed_page(150), "PNG")
    r = post(client, data, "page.png", model="svm", lang="eng+fra")
    assert r.status_code == 200, r.text
    assert r.json()["model"]["algorithm"] == "svm"
    assert r.json()["document"]["media_type"] == "image/png"


def test_blank_page_is_empty_not_an_error(client: TestClient) -> None:
    r = post(client, encode(np.full((300, 200), 255, np.uint8), "PNG"))
    assert r.status_code == 200
    assert r.json()["pages"][0]["label"] == "empty"
    assert r.json()["label"] == "empty"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_input"),
        (b"hello, this is plain text", 415, "unsupported_format"),
        (b"%PDF-1.4\n%broken", 422, "corrupt_document"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, 422, "corrupt_document"),
    ],
)
def test_bad_uploads_get_clear_errors(
    client: TestClient, data: bytes, status: int, code: str
) -> None:
    r = post(client, data)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.json()["detail"]


def test_missing_file_field_is_422(client: TestClient) -> None:
    r = client.post("/classify", data={"model": "svm"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_request" and "file" in r.json()["detail"]


def test_too_large_upload_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    with TestClient(create_app(small)) as c:
        r = post(c, encode(typed_page(100), "PNG"))
    assert r.status_code == 413 and r.json()["code"] == "too_large"


def test_too_many_pages_422(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_pages": 1})
    with TestClient(create_app(limited)) as c:
        r = post(c, pdf_bytes([typed_page(50)] * 2, 50))
    assert r.status_code == 422
    assert r.json()["code"] == "too_many_pages" and "limit is 1" in r.json()["detail"]


def test_unknown_model_404(client: TestClient) -> None:
    r = post(client, encode(typed_page(100), "PNG"), model="v-nope")
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"


def test_ocr_timeout_504(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_a: object, **_k: object) -> None:
        raise OcrTimeoutError("tesseract took longer than 30 s")

    monkeypatch.setattr("app.features.extract.image_to_words", slow)
    r = post(client, encode(typed_page(100), "PNG"))
    assert r.status_code == 504 and r.json()["code"] == "timeout"


def test_missing_tesseract_503(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.errors import MissingDependencyError

    def missing(_lang: str) -> str:
        raise MissingDependencyError("Could not find program 'tesseract'")

    monkeypatch.setattr("app.api.main.check_tesseract", missing)
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").json()["status"] == "degraded"
        r = post(c, encode(typed_page(100), "PNG"))
    assert r.status_code == 503 and r.json()["code"] == "missing_dependency"


def test_models_routes(client: TestClient, settings: Settings, tiny_model: object) -> None:
    import shutil

    shutil.copytree(settings.default_model_dir, settings.models_dir / "v2")
    listing = client.get("/models").json()
    assert listing["active"] == "default"
    assert [v["id"] for v in listing["versions"]] == ["default", "v2"]
    one = client.get("/models/v2").json()
    assert one["metadata"]["feature_names"] and one["active"] is False
    assert client.get("/models/nope").status_code == 404
    assert client.post("/models/nope/activate").status_code == 404
    r = client.post("/models/v2/activate")
    assert r.status_code == 200 and r.json()["active"] == "v2"
    assert client.get("/health").json()["active_model"]["id"] == "v2"
    r = post(client, encode(typed_page(100), "PNG"))
    assert r.json()["model"]["id"] == "v2"


def test_dataset_paths_are_confined(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "ok").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert resolve_dataset(root, "ok") == (root / "ok").resolve()
    for bad in ("../outside", "/etc", "link", "ok/../../outside"):
        with pytest.raises(PathNotAllowedError):
            resolve_dataset(root, bad)


def test_train_refusals(client: TestClient) -> None:
    r = client.post("/train", json={"dataset": "../etc"})
    assert r.status_code == 403 and r.json()["code"] == "path_not_allowed"
    r = client.post("/train", json={"dataset": "/etc"})
    assert r.status_code == 403
    r = client.post("/train", json={"dataset": "nothing-here"})
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    r = client.post("/train", json={"dataset": "tiny", "algorithms": ["knn"]})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert client.get("/train/nope").status_code == 404


def _poll(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/train/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError("training job did not finish")


def test_train_through_the_api(client: TestClient, settings: Settings) -> None:
    r = client.post(
        "/train", json={"dataset": "tiny", "test_size": 0.34, "activate": True, "augment": False}
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    busy = client.post("/train", json={"dataset": "tiny"})
    assert busy.status_code == 409 and busy.json()["code"] == "training_busy"
    job = _poll(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == job["progress"]["total"]  # type: ignore[index]
    metrics = job["metrics"]
    assert "catboost" in metrics and "svm" in metrics  # type: ignore[operator]
    versions = [v["id"] for v in client.get("/models").json()["versions"]]
    assert job["version_id"] in versions
    assert client.get("/health").json()["active_model"]["id"] == job["version_id"]


@needs_fonts
def test_train_with_leave_one_source_out_through_the_api(
    client: TestClient, settings: Settings
) -> None:
    r = client.post("/train", json={"dataset": "tiny", "loso": True})
    job = _poll(client, r.json()["job_id"])
    assert job["status"] == "failed" and "at least 3 sources" in str(job["error"])
    make_manifest_dataset(settings.data_dir / "multi", per_source=2)
    r = client.post(
        "/train", json={"dataset": "multi/manifest.csv", "loso": True, "augment": False}
    )
    assert r.status_code == 202, r.text
    job = _poll(client, r.json()["job_id"])
    assert job["status"] == "succeeded", job
    for algo in ("catboost", "svm"):
        loso = job["metrics"][algo]["loso"]  # type: ignore[index]
        assert loso["sources"] == 5 and loso["mixed_pages"] == 2
        assert 0.0 <= loso["macro_final_accuracy"] <= 1.0


def test_failed_training_keeps_the_active_model(client: TestClient, settings: Settings) -> None:
    few = settings.data_dir / "few"
    (few / "typed").mkdir(parents=True)
    (few / "handwritten").mkdir()
    (few / "typed" / "a.png").write_bytes(encode(typed_page(60), "PNG"))
    r = client.post("/train", json={"dataset": "few", "activate": True})
    job = _poll(client, r.json()["job_id"])
    assert job["status"] == "failed" and "too few" in str(job["error"])
    assert client.get("/health").json()["active_model"]["id"] == "default"
    assert [v["id"] for v in client.get("/models").json()["versions"]] == ["default"]


def test_openapi_lists_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in (
        "/classify",
        "/train",
        "/train/{job_id}",
        "/models",
        "/models/{model_id}",
        "/models/{model_id}/activate",
        "/health",
        "/version",
    ):
        assert route in paths


def test_openapi_declares_what_an_upload_is_refused_for(client: TestClient) -> None:
    """A schema-valid request is never refused: an empty file is declared invalid, 415 declared."""
    spec = client.get("/openapi.json").json()
    for path in ("/classify", "/jobs"):
        op = spec["paths"][path]["post"]
        ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        body = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert body["properties"]["file"]["minLength"] == 1
        assert "file" in body["required"]
        assert {"400", "413", "415", "422"} <= set(op["responses"])
    # the empty upload the schema excludes is still refused cleanly
    r = post(client, b"", "empty.pdf")
    assert r.status_code == 400 and r.json()["code"] == "empty_input"


def test_lines_share_and_thumbnails(client: TestClient) -> None:
    data = (SAMPLES / "typed_script_font_and_report.pdf").read_bytes()
    r = post(client, data, "mixed.pdf", lines="true", thumbnails="true")
    assert r.status_code == 200, r.text
    body = r.json()
    for page in body["pages"]:
        assert 0.0 <= page["handwritten_share"] <= 1.0
        assert page["thumbnail"].startswith("data:image/jpeg;base64,")
        assert page["lines"], page["page"]
        for line in page["lines"]:
            x0, y0, x1, y1 = line["bbox"]
            assert 0 <= x0 < x1 <= page["width"] and 0 <= y0 < y1 <= page["height"]
            assert line["label"] in ("handwritten", "typed")
        # a label never contradicts its share
        if page["label"] == "typed":
            assert page["handwritten_share"] < 0.5
        if page["label"] == "handwritten":
            assert page["handwritten_share"] > 0.2
    plain = post(client, data, "mixed.pdf").json()
    assert all(p["lines"] is None and p["thumbnail"] is None for p in plain["pages"])


def test_a_dead_worker_gets_503_and_fresh_workers(settings: Settings) -> None:
    """A worker killed mid-request (OOM killer, a crash in the OCR engine) is not a 500 forever."""
    import os
    from concurrent.futures.process import BrokenProcessPool

    data = encode(typed_page(150), "PNG")
    with TestClient(create_app(settings.model_copy(update={"workers": 2}))) as c:
        state = c.app.state.inkwell  # type: ignore[attr-defined]
        broken = state.executor
        assert broken is not None
        with pytest.raises(BrokenProcessPool):
            broken.submit(os._exit, 1).result()  # what a SIGKILLed worker looks like
        r = post(c, data, "page.png")
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "worker_crashed"
        assert state.executor is not broken
        r = post(c, data, "page.png")
        assert r.status_code == 200, r.text
        assert r.json()["pages"][0]["label"] in ("typed", "handwritten", "mixed")


def test_page_sent_upside_down_reports_its_orientation(client: TestClient) -> None:
    upright = typed_page(150, seed=5)
    r = post(client, encode(np.ascontiguousarray(upright[::-1, ::-1]), "PNG"), "flipped.png")
    assert r.status_code == 200, r.text
    page = r.json()["pages"][0]
    assert page["label"] == "typed"
    assert page["orientation"] == 180
    assert page["skew"] == 0.0
    r = post(client, encode(upright, "PNG"), "upright.png")
    assert r.json()["pages"][0]["orientation"] == 0


def test_busy_service_answers_503_with_retry_after(client: TestClient) -> None:
    state = client.app.state.inkwell  # type: ignore[attr-defined]
    admission = state.admission
    taken = admission.acquire(admission.capacity)  # every page slot in use
    try:
        r = post(client, encode(typed_page(100), "PNG"), "p.png")
        assert r.status_code == 503
        assert r.json()["code"] == "busy"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["pages_in_flight"] == admission.capacity
    finally:
        admission.release(taken)
    r = post(client, encode(typed_page(100), "PNG"), "p.png")
    assert r.status_code == 200
    assert admission.in_flight == 0  # the request gave its slots back


def test_a_long_pdf_streams_through_a_bounded_window(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are rendered a few at a time and at most `window` are in flight at once."""
    from app.documents import loader
    from app.models import predict

    calls: list[tuple[int, int]] = []
    real_render = loader._render
    in_flight, peak = [0], [0]
    real_featurise = predict.featurise_page

    def render(path, doc, first, last):  # type: ignore[no-untyped-def]
        calls.append((first, last))
        in_flight[0] += last - first + 1
        peak[0] = max(peak[0], in_flight[0])
        return real_render(path, doc, first, last)

    def featurise(image, ocr):  # type: ignore[no-untyped-def]
        in_flight[0] -= 1
        return real_featurise(image, ocr)

    monkeypatch.setattr(loader, "_render", render)
    monkeypatch.setattr(predict, "featurise_page", featurise)
    pages = [typed_page(100, seed=i) for i in range(9)]
    r = post(client, pdf_bytes(pages, 100), "long.pdf")
    assert r.status_code == 200, r.text
    assert [p["page"] for p in r.json()["pages"]] == list(range(1, 10))
    assert calls == [(1, 4), (5, 8), (9, 9)]  # never the whole document at once
    assert peak[0] <= loader.PDF_BATCH


def test_nul_in_dataset_name_is_a_422_not_a_500(client: TestClient) -> None:
    r = client.post("/train", json={"dataset": "a\x00b"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_request"
    r = client.post("/train", json={"dataset": "no-such-dataset"})
    assert r.status_code == 404
    assert r.json()["code"] == "dataset_not_found"


def test_admission_estimates_retry_after_from_page_time() -> None:
    from app.errors import ServiceBusyError
    from app.runtime.admission import Admission

    adm = Admission(capacity=4, workers=2, page_seconds=1.0)
    assert adm.acquire(10) == 4  # a long document holds at most the capacity
    with pytest.raises(ServiceBusyError) as busy:
        adm.acquire(1)
    assert busy.value.retry_after == 2  # 4 pages ahead, 1 s each, 2 workers
    adm.release(4, pages_done=4, work_seconds=40.0)  # pages turn out to take 10 s
    assert adm.in_flight == 0 and adm.page_seconds > 1.0
    adm.acquire(4)
    with pytest.raises(ServiceBusyError) as busy:
        adm.check()
    assert busy.value.retry_after > 2


def test_job_store_survives_a_bad_record_and_keeps_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api.schemas import TrainingJob
    from app.jobs import training as jobs_mod

    store = jobs_mod.TrainingJobStore(tmp_path / ".jobs")
    monkeypatch.setattr(jobs_mod, "KEEP_JOBS", 3)
    for i in range(5):
        store.save(
            TrainingJob(
                job_id=f"j{i}", status="succeeded", dataset="d", created_at=f"2026-11-29T0{i}:00"
            )
        )
    (tmp_path / ".jobs" / "broken.json").write_text("{not json")
    loaded = store.load_all()
    assert list(loaded) == ["j2", "j3", "j4"]  # the newest three, oldest pruned from disk
    assert not (tmp_path / ".jobs" / "j0.json").exists()
    assert (tmp_path / ".jobs" / "broken.json").exists()  # skipped and logged, not deleted


def test_a_version_of_older_features_is_a_503_that_says_retrain(
    settings: Settings, tmp_path: Path
) -> None:
    """After an upgrade that changes the features, the active version cannot be used: no 500."""
    old = tmp_path / "old"
    shutil.copytree(settings.default_model_dir, old)
    meta = json.loads((old / "metadata.json").read_text())
    meta["feature_version"] = "0.9"
    (old / "metadata.json").write_text(json.dumps(meta))
    with TestClient(create_app(settings.model_copy(update={"default_model_dir": old}))) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        r = post(c, encode(typed_page(100), "PNG"), "page.png")
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "model_outdated"
    assert "v0.9" in r.json()["detail"] and "retrain" in r.json()["detail"]
