"""Base features shipped with a version, and retraining on them plus the user's own pages."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import cli
from app.api.main import create_app
from app.config import Settings
from app.errors import DatasetError, ExitCode
from app.features.cache import FeatureCache
from app.training.basepack import PACK_FILE, read_pack
from app.training.corpus import build_corpus, corpus_jobs
from app.training.dataset import discover
from app.training.extend import figures, guard
from app.training.featurize import featurize
from app.training.fold import source_weights
from app.training.train import TrainConfig, TrainResult, train
from tests.conftest import ROOT, needs_fonts, needs_tesseract
from tests.helpers import handwritten_page, pdf_bytes, typed_page

DEFAULT = ROOT / "models" / "default"


def test_a_boosted_source_weighs_its_factor_in_ordinary_sources() -> None:
    sources = np.array(["a"] * 50 + ["b"] * 10 + ["user"] * 4 + ["h"] * 20 + ["user"] * 2)
    y = np.array([0] * 64 + [1] * 22)
    w = source_weights(sources, y, {"user": 5.0})
    typed_user = w[(sources == "user") & (y == 0)].sum()
    assert typed_user == pytest.approx(5 * w[sources == "a"].sum())
    assert w[sources == "a"].sum() == pytest.approx(w[sources == "b"].sum())
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())  # labels stay balanced
    assert w.mean() == pytest.approx(1.0)
    assert np.allclose(source_weights(sources, y, {}), source_weights(sources, y))


def test_figures_leave_unsure_pages_out_and_average_sources() -> None:
    pages = [
        ("s1", "typed", "typed", False),
        ("s1", "typed", "mixed", False),
        ("s2", "handwritten", "handwritten", False),
        ("s2", "handwritten", "typed", True),  # unsure: not counted
        ("s3", "mixed", "mixed", False),
    ]
    f = figures(pages)
    assert f["sources"] == 3 and f["pages"] == 4
    assert f["macro_final_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert f["pure_balanced_accuracy"] == pytest.approx((0.5 + 1) / 2)
    assert f["false_mixed"] == 1


def test_the_guard_passes_within_one_point_only() -> None:
    base = {"macro_final_accuracy": 0.80, "pure_balanced_accuracy": 0.95}
    assert guard(base, {"macro_final_accuracy": 0.795, "pure_balanced_accuracy": 0.96}, 0.01)[
        "passed"
    ]
    fell = guard(base, {"macro_final_accuracy": 0.82, "pure_balanced_accuracy": 0.93}, 0.01)
    assert not fell["passed"] and "pure_balanced_accuracy" in fell["reason"]
    assert not guard(base, None, 0.01)["passed"]  # not measured: never passes


def test_the_shipped_base_features_are_the_shipped_models_training_pages() -> None:
    """The pack holds every training page and its LOSO verdicts, which give the report's figures."""
    pack = read_pack(DEFAULT / PACK_FILE)
    meta = json.loads((DEFAULT / "metadata.json").read_text())
    report = json.loads((DEFAULT / "report.json").read_text())
    assert pack.version == meta["id"]
    assert len(pack.docs) == report["dataset"]["documents"]
    assert len(pack.sources) == report["dataset"]["sources"]
    overall = report["loso"]["scorers"][pack.loso_algorithm]["overall"]
    mine = figures([(p.source, p.label, p.predicted, p.unsure) for p in pack.loso_pages])
    assert mine["macro_final_accuracy"] == pytest.approx(overall["macro_final_accuracy"])
    assert mine["pure_balanced_accuracy"] == pytest.approx(overall["pure_balanced_accuracy"])
    assert mine["pages"] == overall["pages"]
    # numbers only: no image and no path of the dataset is kept
    assert all(not d.path.exists() for d in pack.docs)
    corpus = build_corpus(pack.docs, pack.jobs, pack.results)
    assert corpus.pages.y.size == len(pack.docs)
    assert corpus.filled.y.size > 0 and corpus.lines.y.size > 0


@pytest.fixture(scope="session")
def base_model(
    multi_source: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    """A version trained with LOSO on five generated sources: its pack is a base to extend."""
    return train(
        multi_source,
        out_dir=tmp_path_factory.mktemp("base-models"),
        cache_dir=cache_dir,
        cfg=TrainConfig(
            algorithms=("catboost",), loso=True, fullpage_baseline=False, test_size=0.34
        ),
        version_id="base",
    )


@needs_tesseract
@needs_fonts
def test_a_pack_rebuilds_the_corpus_it_was_written_from(
    base_model: TrainResult, multi_source: Path, cache_dir: Path
) -> None:
    docs = discover(multi_source).documents
    jobs = corpus_jobs(docs, lang="eng", timeout=30.0, robust=False)
    results, _ = featurize([j for js in jobs.values() for j in js], cache=FeatureCache(cache_dir))
    want = build_corpus(docs, jobs, results)
    pack = read_pack(base_model.path / PACK_FILE)
    got = build_corpus(pack.docs, pack.jobs, pack.results)
    for part in ("pages", "aug", "filled"):
        a, b = getattr(want, part), getattr(got, part)
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y), part
        assert a.keys == b.keys and list(a.sources) == list(b.sources), part
    # fragments are stored as float32
    assert np.allclose(want.page_lines.x, got.page_lines.x, rtol=1e-6, atol=1e-5, equal_nan=True)
    assert np.array_equal(want.lines.y, got.lines.y)
    assert len(pack.loso_pages) == len(docs)
    dropped = pack.without(sources={"hand_a"})
    assert "hand_a" not in dropped.sources
    assert build_corpus(dropped.docs, dropped.jobs, dropped.results).pages.y.size == len(docs) - 3


@needs_tesseract
@needs_fonts
def test_a_pack_of_another_feature_version_is_refused(
    base_model: TrainResult, tmp_path: Path
) -> None:
    with np.load(base_model.path / PACK_FILE) as npz:
        arrays = dict(npz)
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["feature_version"] = "0.1"
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (tmp_path / PACK_FILE).write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match=r"feature version 0\.1"):
        read_pack(tmp_path / PACK_FILE)
    with pytest.raises(DatasetError, match="no base features"):
        read_pack(tmp_path / "missing.npz")


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while (job := client.get(f"/train/{job_id}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    return job


@needs_tesseract
@needs_fonts
def test_corrections_retrain_on_the_base_through_the_api(
    base_model: TrainResult, settings: Settings, tmp_path: Path
) -> None:
    """Correct pages, retrain on base + corrections, read both figures, guard the activation."""
    data = tmp_path / "data"
    data.mkdir()
    own = settings.model_copy(update={"data_dir": data, "default_model_dir": base_model.path})
    with TestClient(create_app(own)) as client:
        for i in range(6):  # six one-page documents the user labelled: six groups
            hand = i % 2 == 1
            page = (handwritten_page if hand else typed_page)(120, seed=70 + i)
            r = client.post(
                "/corrections",
                files={"file": ("scan.pdf", pdf_bytes([page], 120), "application/pdf")},
                data={"label": "handwritten" if hand else "typed"},
            )
            assert r.status_code == 201, r.text
        r = client.post(
            "/train",
            json={
                "dataset": "corrections",
                "base": {"version": "default"},
                "algorithms": ["catboost"],
                "augment": False,
                "activate": True,
            },
        )
        assert r.status_code == 202, r.text
        job = _wait(client, r.json()["job_id"])
        assert job["status"] == "succeeded", job
        metrics = job["metrics"]
        base = metrics["base"]
        assert base["version"] == "base" and base["sources"] == 5
        assert base["loso_before"]["sources"] == base["loso_after"]["sources"] == 5
        assert metrics["user"]["pages"] == 6 and metrics["user"]["sources"] == ["user:corrections"]
        assert metrics["user"]["folds"] == 5
        acc = metrics["user"]["accuracy"]["catboost"]
        assert 0 <= acc["base_alone"] <= 1 and 0 <= acc["cross_validated"] <= 1
        passed = metrics["guard"]["passed"]
        assert job["activated"] is passed
        assert (client.get("/models").json()["active"] == job["version_id"]) is passed
        folder = own.models_dir / job["version_id"]
        rows = list(csv.DictReader((folder / "user_pages.csv").open()))
        assert len(rows) == 6 and {r["label"] for r in rows} == {"typed", "handwritten"}
        assert "Guard:" in (folder / "report.md").read_text()
        # the base stays the base: the new version carries the same base pages, not the user's
        assert len(read_pack(folder / PACK_FILE).docs) == len(
            read_pack(base_model.path / PACK_FILE).docs
        )
        # and the new version serves
        page = typed_page(120, seed=99)
        r = client.post(
            "/classify",
            files={"file": ("p.pdf", pdf_bytes([page], 120), "application/pdf")},
            data={"model": job["version_id"]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["model"]["id"] == job["version_id"]


@needs_tesseract
@needs_fonts
def test_a_base_is_refused_before_any_job_starts(
    base_model: TrainResult, settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "mine").mkdir()
    own = settings.model_copy(update={"data_dir": data})  # the tiny model: trained without LOSO
    with TestClient(create_app(own)) as client:
        r = client.post("/train", json={"dataset": "mine", "base": {"version": "v-none"}})
        assert r.status_code == 404 and r.json()["code"] == "model_not_found"
        r = client.post("/train", json={"dataset": "mine", "base": {"user_weight": 0}})
        assert r.status_code == 422
        r = client.post(
            "/train", json={"dataset": "mine", "base": {"exclude_sources": ["nowhere"]}}
        )
        assert r.status_code == 422 and "nowhere" in r.json()["detail"], r.text
        no_pack = own.models_dir / "nopack"
        no_pack.mkdir()
        for f in base_model.path.iterdir():
            if f.name != PACK_FILE:
                (no_pack / f.name).write_bytes(f.read_bytes())
        r = client.post("/train", json={"dataset": "mine", "base": {"version": "nopack"}})
        assert r.status_code == 409 and r.json()["code"] == "no_base_features", r.text


@needs_tesseract
@needs_fonts
def test_cli_retrains_on_a_base_and_refuses_to_activate_past_the_guard(
    base_model: TrainResult,
    multi_source: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = tmp_path / "user"
    for label, make in (("typed", typed_page), ("handwritten", handwritten_page)):
        (user / label).mkdir(parents=True)
        for i in range(2):
            (user / label / f"{i}.pdf").write_bytes(pdf_bytes([make(110, seed=90 + i)], 110))
    monkeypatch.setenv("INKWELL_CACHE_DIR", str(cache_dir))
    args = ["train", "--data", str(user), "--base", str(base_model.path), "--version", "mine"]
    args += ["--out", str(tmp_path / "models")]
    args += ["--algorithms", "catboost", "--no-augment", "--exclude-source", "hand_b"]
    args += ["--jobs", "1"]  # fits in this process: the session's small line models
    # the real guard, asked for a rise of a whole point: no version passes it
    monkeypatch.setattr(
        "app.training.extend.guard", lambda base, new, _drop: guard(base, new, -1.0)
    )
    code = cli.main([*args, "--activate"])
    out = capsys.readouterr()
    assert code == ExitCode.DATASET and "not activated" in out.err
    report = json.loads((tmp_path / "models" / "mine" / "report.json").read_text())
    assert report["base"]["left_out_sources"] == ["hand_b"]
    assert report["base"]["loso_after"]["sources"] == 4  # hand_b is not in the base any more
    assert report["user"]["sources"] == ["user:handwritten", "user:typed"]
    assert not (tmp_path / "models" / "ACTIVE").exists()


@needs_tesseract
@needs_fonts
def test_line_verdicts_of_a_correction_label_the_fragments_they_cover(
    tmp_path: Path, cache_dir: Path
) -> None:
    """A mixed page corrected with its handwritten and typed boxes teaches the line model."""
    from app.corrections import CorrectionStore, LineCorrection
    from app.documents import Page
    from app.training.corpus import build_corpus, corpus_jobs
    from tests.helpers import mixed_page

    image = mixed_page(120, seed=3)  # typed top half, handwritten bottom half
    h, w = image.shape
    store = CorrectionStore(tmp_path / "corrections")
    store.add(
        Page(image=image, number=2, dpi=120),
        sha256="ab" * 32,
        filename="form.pdf",
        label="mixed",
        lines=[
            LineCorrection(bbox=(0, h // 2, w, h), label="handwritten"),
            LineCorrection(bbox=(0, 0, w, h // 2), label="typed"),
        ],
    )
    docs = discover(tmp_path / "corrections" / "manifest.csv").documents
    assert [d.line_truth for d in docs] == [((0, h // 2, w, h, 1), (0, 0, w, h // 2, 0))]
    jobs = corpus_jobs(docs, lang="eng", timeout=30.0, augment=False, robust=False, filled=False)
    results, failures = featurize(
        [j for js in jobs.values() for j in js], cache=FeatureCache(cache_dir)
    )
    assert not failures
    lines = build_corpus(docs, jobs, results).lines
    assert {0, 1} <= set(lines.y.tolist())
    # a fragment takes the verdict of the half of the page holding half of it or more
    frags = [b[:4] for b in results[jobs["orig"][0]][0]["lines"]]

    def below(b: list[float]) -> float:
        return max(0.0, b[3] - max(b[1], h // 2)) / max(1.0, b[3] - b[1])

    assert int(lines.y.sum()) == sum(below(b) >= 0.5 for b in frags)
    assert int((lines.y == 0).sum()) == sum(1 - below(b) >= 0.5 for b in frags)


def test_an_unreadable_lines_column_skips_its_row(tmp_path: Path) -> None:
    from tests.helpers import encode, typed_page

    (tmp_path / "p.png").write_bytes(encode(typed_page(100, seed=1), "PNG"))
    (tmp_path / "q.png").write_bytes(encode(typed_page(100, seed=2), "PNG"))
    (tmp_path / "manifest.csv").write_text(
        "path,label,lines\n"
        'p.png,typed,"[{""bbox"": [0, 0, 10, 10], ""label"": ""mixed""}]"\n'
        'q.png,typed,"[{""bbox"": [0, 0, 10, 10], ""label"": ""typed""}]"\n'
    )
    ds = discover(tmp_path / "manifest.csv")
    assert [d.path.name for d in ds.documents] == ["q.png"]
    assert ds.documents[0].line_truth == ((0, 0, 10, 10, 0),)
    assert "handwritten or typed" in ds.skipped[0][1]
