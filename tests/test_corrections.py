"""Corrections: a page with its right label, kept as a dataset that /train reads."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.config import Settings, corrections_dir
from app.corrections import CorrectionStore
from app.documents import Page
from app.training.dataset import discover
from tests.conftest import needs_tesseract
from tests.helpers import handwritten_page, pdf_bytes, typed_page

pytestmark = needs_tesseract


def _pdf(n: int) -> bytes:
    pages = [(typed_page if i % 2 == 0 else handwritten_page)(100, seed=i) for i in range(n)]
    return pdf_bytes(pages, 100)


@pytest.fixture
def own_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's own data folder (corrections live in it, as the dataset 'corrections')."""
    data = tmp_path / "data"
    data.mkdir()
    return settings.model_copy(update={"data_dir": data})


@pytest.fixture
def client(own_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings)) as c:
        yield c


def _correct(client: TestClient, data: bytes | None = None, **form: Any) -> Any:
    files = {"file": ("scan.pdf", data, "application/pdf")} if data is not None else None
    return client.post("/corrections", files=files, data=form)


def test_a_corrected_page_is_kept_listed_replaced_and_removed(
    client: TestClient, own_settings: Settings
) -> None:
    data = _pdf(2)
    sha = hashlib.sha256(data).hexdigest()
    r = _correct(client, data, page="2", label="handwritten")
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["id"] == f"{sha[:16]}-p2" and r.headers["location"] == f"/corrections/{c['id']}"
    assert (c["label"], c["page"], c["group"], c["source"]) == (
        "handwritten",
        2,
        sha,
        "corrections",
    )
    listing = client.get("/corrections").json()
    assert listing["count"] == 1 and listing["dataset"] == "corrections"
    root = corrections_dir(own_settings)
    image = root / c["path"]
    # the page as classification renders it: same size as /classify reports
    page2 = client.post("/classify", files={"file": ("scan.pdf", data, "application/pdf")}).json()[
        "pages"
    ][1]
    with Image.open(image) as im:
        assert im.size == (page2["width"], page2["height"]) and im.mode == "L"

    # a dataset training reads: the manifest is the truth, one group per document
    ds = discover(root)
    assert [(d.label, d.source, d.group) for d in ds.documents] == [
        ("handwritten", "corrections", sha)
    ]

    # corrected again: replaced, not added
    r = _correct(client, data, page="2", label="typed")
    assert r.status_code == 201 and r.json()["id"] == c["id"]
    assert [x["label"] for x in client.get("/corrections").json()["corrections"]] == ["typed"]

    r = _correct(client, data, page="1", label="mixed")
    assert r.status_code == 201, r.text
    one = client.get(f"/corrections/{r.json()['id']}").json()
    assert one["lines"] is None and one["label"] == "mixed"
    assert len(discover(root).documents) == 2

    assert client.delete(f"/corrections/{c['id']}").status_code == 204
    assert client.get(f"/corrections/{c['id']}").status_code == 404
    assert client.delete(f"/corrections/{c['id']}").status_code == 404
    assert not image.exists()
    assert client.get("/corrections").json()["count"] == 1
    with (root / "manifest.csv").open(encoding="utf-8") as fh:
        assert [row["page"] for row in csv.DictReader(fh)] == ["1"]


def test_bad_corrections_are_refused_and_nothing_is_kept(client: TestClient) -> None:
    data = _pdf(2)

    def code(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["code"]

    assert code(_correct(client, None, label="typed")) == (422, "invalid_request")  # no file
    assert code(_correct(client, data, label="typed", page="3")) == (422, "page_out_of_range")
    assert code(_correct(client, data, label="maybe")) == (422, "invalid_request")
    assert code(_correct(client, b"", label="typed")) == (400, "empty_input")
    assert code(_correct(client, b"no document here", label="typed")) == (
        415,
        "unsupported_format",
    )
    missing_job = client.post(f"/jobs/{'a' * 32}/pages/1/correction", json={"label": "typed"})
    assert code(missing_job) == (404, "job_not_found")
    assert code(client.get("/corrections/not-an-id")) == (422, "invalid_request")
    assert code(client.get(f"/corrections/{'0' * 16}-p1")) == (404, "correction_not_found")
    assert client.get("/corrections").json()["count"] == 0


def test_unwritable_storage_is_a_clear_503_and_no_corrections_no_training(
    own_settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = own_settings.model_copy(update={"corrections_dir": blocker / "corrections"})
    with TestClient(create_app(cfg)) as c:
        r = _correct(c, _pdf(1), label="typed")
        assert r.status_code == 503 and r.json()["code"] == "storage_unavailable"
        assert "cannot write the corrections folder" in r.json()["detail"]
        r = c.post("/train", json={"dataset": "corrections"})
        assert r.status_code == 404 and r.json()["code"] == "dataset_not_found"


def test_a_page_of_a_jobs_result_is_corrected_by_job_id(client: TestClient) -> None:
    data = _pdf(2)
    job = client.post(
        "/jobs", files={"file": ("scan.pdf", data, "application/pdf")}, data={}
    ).json()
    deadline = time.monotonic() + 120
    while client.get(f"/jobs/{job['job_id']}").json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    base = f"/jobs/{job['job_id']}/pages"
    r = client.post(f"{base}/3/correction", json={"label": "typed"})
    assert r.status_code == 404 and r.json()["code"] == "page_not_found"
    r = client.post(f"{base}/2/correction", json={"label": "maybe"})
    assert r.status_code == 422
    outside = [{"bbox": [0, 0, 99999, 10], "label": "typed"}]
    r = client.post(f"{base}/2/correction", json={"label": "typed", "lines": outside})
    assert r.status_code == 422 and r.json()["code"] == "bad_input"
    assert client.get("/corrections").json()["count"] == 0
    lines = [{"bbox": [5, 5, 50, 30], "label": "handwritten"}]
    r = client.post(f"{base}/2/correction", json={"label": "handwritten", "lines": lines})
    assert r.status_code == 201, r.text
    assert r.json()["document_sha256"] == job["document"]["sha256"]
    assert r.json()["filename"] == "scan.pdf" and r.json()["lines"] == lines
    assert r.headers["location"] == f"/corrections/{r.json()['id']}"
    # the same page corrected from the document itself is the same correction
    again = _correct(client, data, page="2", label="typed")
    assert again.json()["id"] == r.json()["id"]
    assert client.get("/corrections").json()["count"] == 1


def test_training_reads_the_corrections(client: TestClient, own_settings: Settings) -> None:
    """Corrections are a dataset /train takes by the name GET /corrections gives."""
    for i in range(8):  # eight documents of one page, four of each kind: eight groups
        hand = i % 2 == 1
        page = (handwritten_page if hand else typed_page)(100, seed=10 + i)
        label = "handwritten" if hand else "typed"
        assert _correct(client, pdf_bytes([page], 100), label=label).status_code == 201
    dataset = client.get("/corrections").json()["dataset"]
    r = client.post(
        "/train",
        json={"dataset": dataset, "augment": False, "test_size": 0.34, "algorithms": ["svm"]},
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 300
    while (job := client.get(f"/train/{r.json()['job_id']}").json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    assert "svm" in job["metrics"]
    report = own_settings.models_dir / job["version_id"] / "report.json"
    dataset_info = json.loads(report.read_text(encoding="utf-8"))["dataset"]
    assert dataset_info["documents"] == 8 and dataset_info["sources"] == 1
    assert dataset_info["groups_on_both_sides"] == 0


def test_concurrent_corrections_all_land(tmp_path: Path) -> None:
    """Writers in parallel: every correction is in the manifest, with its image."""
    store = CorrectionStore(tmp_path / "corrections")
    img = np.full((40, 60), 255, dtype=np.uint8)

    def add(i: int) -> None:
        store.add(
            Page(image=img, number=i, dpi=100.0),
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            filename=f"d{i}.png",
            label="typed",
        )

    threads = [threading.Thread(target=add, args=(i,)) for i in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = store.all()
    assert len(items) == 12 and len({c.id for c in items}) == 12
    assert all((store.root / c.path).is_file() for c in items)
    assert not list(store.root.rglob("*.tmp"))


def test_cli_adds_corrections_from_a_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    Image.fromarray(typed_page(100, seed=1)).save(tmp_path / "a.png", dpi=(100, 100))
    (tmp_path / "b.pdf").write_bytes(_pdf(2))
    store_dir = tmp_path / "corrections"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,page\na.png,typed,1\nmissing.png,typed,1\nb.pdf,maybe,2\n")
    assert main(["corrections", "--dir", str(store_dir), "add", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "line 3: no file" in err and "line 4: label must be" in err
    assert CorrectionStore(store_dir).all() == []  # nothing kept when a row is wrong

    good = tmp_path / "good.csv"
    good.write_text("path,label,page\na.png,typed,\nb.pdf,handwritten,2\n")
    assert main(["corrections", "--dir", str(store_dir), "add", str(good)]) == 0
    items = CorrectionStore(store_dir).all()
    assert sorted((c.filename, c.page, c.label) for c in items) == [
        ("a.png", 1, "typed"),
        ("b.pdf", 2, "handwritten"),
    ]
    capsys.readouterr()
    assert main(["corrections", "--dir", str(store_dir), "list"]) == 0
    assert "2 correction(s)" in capsys.readouterr().out
    assert main(["corrections", "--dir", str(store_dir), "remove", items[0].id]) == 0
    assert len(CorrectionStore(store_dir).all()) == 1
    assert main(["corrections", "--dir", str(store_dir), "remove", items[0].id]) == 2
    assert main(["corrections", "--dir", str(store_dir), "add", str(tmp_path / "no.csv")]) == 3


def test_a_manifest_edited_by_hand_never_breaks_the_listing_and_is_kept(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "corrections")
    img = np.full((40, 60), 255, dtype=np.uint8)
    first = store.add(
        Page(image=img, number=1, dpi=100.0), sha256="a" * 64, filename="a.png", label="typed"
    )
    with store.manifest.open("a", encoding="utf-8") as fh:  # a user's own rows and a typo
        fh.write("pages/x.png,Handwritten,corrections,g1,,x-p1,x.png,1,,2026-01-01\n")
        fh.write("pages/y.png,perhaps,corrections,g2,,y-p1,y.png,1,,2026-01-02\n")
    items = store.all()
    assert sorted((c.id, c.label) for c in items) == [
        (first.id, "typed"),
        ("x-p1", "handwritten"),
    ]
    store.add(
        Page(image=img, number=2, dpi=100.0), sha256="b" * 64, filename="b.png", label="mixed"
    )
    text = store.manifest.read_text(encoding="utf-8")
    assert "perhaps" in text and "Handwritten" in text  # rows it cannot read are kept as written
    store.remove("y-p1")  # and can still be removed
    assert "perhaps" not in store.manifest.read_text(encoding="utf-8")
    assert len(store.all()) == 3
