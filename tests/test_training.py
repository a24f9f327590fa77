"""Dataset discovery, splits, training outputs, atomic writes, registry checks, evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.documents import Page
from app.errors import (
    DatasetError,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    WorkerCrashedError,
)
from app.features.cache import FeatureCache
from app.models.classifiers import make_model
from app.models.registry import Registry, load_version, staging_dir
from app.training import report as report_mod
from app.training.augment import (
    ROBUSTNESS_SKEW,
    augment,
    body_between_rules,
    header_above_rules,
    robustness_variant,
)
from app.training.dataset import Document, discover, normalise_label
from app.training.evaluate import evaluate, summary_table
from app.training.featurize import Job, ProgressBar, featurize
from app.training.metrics import classification_metrics, fast_auc, mcnemar
from app.training.train import TrainConfig, TrainResult, split_documents, train
from tests.helpers import encode, typed_page


def test_label_aliases() -> None:
    assert normalise_label("Manuscrit") == "handwritten"
    assert normalise_label("dactylographié") == "typed"
    assert normalise_label("DACTYLOGRAPHIE") == "typed"
    assert normalise_label("Mixed") == "mixed"
    assert normalise_label("banana") is None


def test_discover_folders_skips_with_reasons(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    (root / "manuscrit").mkdir()
    shutil.copy(root / "handwritten" / "h1.png", root / "manuscrit" / "dup.png")
    (root / "mixed").mkdir()
    (root / "mixed" / "m.png").write_bytes(encode(typed_page(100, seed=98), "PNG"))
    (root / "misc").mkdir()
    (root / "misc" / "x.png").write_bytes(encode(typed_page(100, seed=99), "PNG"))
    (root / "typed" / "notes.txt").write_text("hello")
    (root / "typed" / "empty.png").write_bytes(b"")
    ds = discover(root)
    assert ds.counts() == {"handwritten": 6, "typed": 6, "mixed": 1}
    reasons = dict(ds.skipped)
    assert "duplicate of" in reasons[str(root / "manuscrit" / "dup.png")]
    assert "unknown label folder 'misc'" in reasons[str(root / "misc" / "x.png")]
    assert reasons[str(root / "typed" / "notes.txt")] == "not a PDF or supported image"
    assert reasons[str(root / "typed" / "empty.png")] == "empty file"
    assert len(ds.manifest_hash()) == 64


def test_discover_manifest(tiny_dataset: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    rows = ["path,label,group,split"]
    rows += [f"{tiny_dataset}/handwritten/h{i}.png,handwritten,w{i % 3}," for i in range(6)]
    rows.append(f"{tiny_dataset}/typed/t1.png,typed,d1,test")
    rows.append(f"{tiny_dataset}/typed/t2.png,Typed,d2,train")
    rows.append("missing.png,typed,d3,")
    rows.append(f"{tiny_dataset}/typed/t3.png,banana,d4,")
    rows.append(f"{tiny_dataset}/typed/t4.png,typed,d5,validation")
    rows.append(",typed,,")
    manifest.write_text("\n".join(rows) + "\n")
    ds = discover(manifest)
    assert ds.counts() == {"handwritten": 6, "typed": 2, "mixed": 0}
    assert {d.split for d in ds.documents} == {"", "test", "train"}
    reasons = [r for _, r in ds.skipped]
    assert "file not found" in reasons
    assert "unknown label 'banana'" in reasons
    assert "unknown split 'validation'" in reasons
    assert "empty path" in reasons


def test_the_label_audit_beside_a_manifest_marks_unsure_pages(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    rows = ["path,label,source,group"]
    rows += [f"{tiny_dataset}/typed/t{i}.png,typed,s{i % 2},d{i}" for i in range(1, 4)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "AUDIT.csv").write_text(
        "path,old_label,label,certainty,note\n"
        f"{tiny_dataset}/typed/t2.png,typed,typed,unsure,a short handwritten note\n"
        f"{tiny_dataset}/typed/t3.png,typed,typed,sure,checked\n"
    )
    docs = discover(tmp_path / "manifest.csv").documents
    assert [d.path.name for d in docs if d.unsure] == ["t2.png"]
    (tmp_path / "AUDIT.csv").unlink()  # no audit: nothing is unsure
    assert not any(d.unsure for d in discover(tmp_path / "manifest.csv").documents)


def test_discover_refusals(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        discover(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no labelled document"):
        discover(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,kind\na,b\n")
    with pytest.raises(DatasetError, match="path,label"):
        discover(bad)


def _docs(n: int, label: str, groups: int, split: str = "") -> list[Document]:
    tag = f"{label}{split}"
    return [
        Document(Path(f"{tag}{i}"), label, f"{tag}{i}", "src", f"{tag}-g{i % groups}", split)
        for i in range(n)
    ]


def test_split_is_group_disjoint_stratified_and_respects_manifest() -> None:
    docs = _docs(40, "handwritten", 13) + _docs(60, "typed", 30) + _docs(5, "typed", 5, "test")
    train_docs, test_docs = split_documents(docs, test_size=0.25, seed=1)
    assert not {d.group for d in train_docs} & {d.group for d in test_docs}
    assert len(train_docs) + len(test_docs) == len(docs)
    assert all(d in test_docs for d in docs if d.split == "test")
    assert {d.label for d in test_docs} == {"handwritten", "typed"}
    again = split_documents(docs, test_size=0.25, seed=1)
    assert [d.sha256 for d in again[1]] == [d.sha256 for d in test_docs]


def test_split_moves_groups_on_both_sides_of_a_manifest_to_train() -> None:
    a = Document(Path("a"), "typed", "a", "s", "g", "train")
    b = Document(Path("b"), "typed", "b", "s", "g", "test")
    train_docs, test_docs = split_documents([a, b], test_size=0.25, seed=0)
    assert test_docs == [] and len(train_docs) == 2


def test_training_refuses_too_few_pages(tmp_path: Path, tiny_dataset: Path) -> None:
    root = tmp_path / "few"
    (root / "typed").mkdir(parents=True)
    shutil.copytree(tiny_dataset / "handwritten", root / "handwritten")
    shutil.copy(tiny_dataset / "typed" / "t1.png", root / "typed" / "t1.png")
    with pytest.raises(DatasetError, match="too few 'typed' documents"):
        train(root, out_dir=tmp_path / "models", cache_dir=None)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    with pytest.raises(DatasetError, match="unknown algorithm"):
        train(root, out_dir=tmp_path / "m", cache_dir=None, cfg=TrainConfig(algorithms=("knn",)))


def test_trained_version_has_every_artefact(tiny_model: TrainResult) -> None:
    folder = tiny_model.path
    for name in (
        "catboost.cbm",
        "lines.cbm",
        "svm.joblib",
        "metadata.json",
        "report.json",
        "report.md",
        "confusion_matrices.png",
        "roc_curves.png",
        "feature_importance.png",
    ):
        assert (folder / name).is_file(), name
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["feature_version"] and meta["feature_names"]
    assert set(meta["artefacts"]) == {"catboost", "svm", "lines"}
    for algo in ("catboost", "svm"):
        rule = meta["verdict_rules"][algo]
        assert rule["a"] >= 0 and rule["b"] >= 0 and rule["a"] + rule["b"] > 0
        # the mixed detector travels with the rule (a two-folder dataset has no mixed page:
        # a detector that never says mixed)
        assert set(rule["mixed"]) >= {"names", "weights", "threshold"}
    assert len(meta["training_manifest_sha256"]) == 64
    assert "scikit-learn" in meta["library_versions"]
    report = tiny_model.report
    assert report["dataset"]["groups_on_both_sides"] == 0
    for algo in ("catboost", "svm"):
        res = report["algorithms"][algo]
        assert set(res["test"]) >= {
            "accuracy",
            "balanced_accuracy",
            "roc_auc",
            "brier",
            "per_class",
            "confusion_matrix",
            "ci95",
        }
        assert "robustness" in res and res["cv"]
    assert set(report["references"]) >= {"majority_class", "geometry_probe"}
    assert report["mcnemar_catboost_vs_svm"]["p_value"] <= 1.0
    assert not list(folder.parent.glob(".tmp-*"))


def test_version_loads_and_predicts(tiny_model: TrainResult) -> None:
    version = load_version(tiny_model.path)
    x = np.zeros((2, len(version.metadata["feature_names"])))
    for algo in ("catboost", "svm"):
        p = version.predict(x, algo)
        assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
    with pytest.raises(ModelNotFoundError):
        version.predict(x, "knn")
    assert version.summary()["algorithms"] == ["catboost", "svm"]


def test_tampered_model_is_refused(tiny_model: TrainResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model.path, copy)
    with (copy / "svm.joblib").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_version(copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["feature_version"] = "0.0"
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="retrain"):
        load_version(copy)
    meta["feature_names"] = ["x"]
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="other features"):
        load_version(copy)
    (copy / "metadata.json").write_text("{")
    with pytest.raises(ModelIntegrityError, match="unreadable"):
        load_version(copy)
    with pytest.raises(ModelNotFoundError):
        load_version(tmp_path / "nowhere")


def test_failed_training_leaves_no_partial_version(
    tiny_dataset: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "models"
    out.mkdir()
    (out / "ACTIVE").write_text("previous\n")

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("app.training.train.write_reports", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        train(
            tiny_dataset,
            out_dir=out,
            cache_dir=cache_dir,
            version_id="v1",
            cfg=TrainConfig(fullpage_baseline=False, augment=False, test_size=0.34),
        )
    assert sorted(p.name for p in out.iterdir()) == ["ACTIVE"]
    assert (out / "ACTIVE").read_text() == "previous\n"


def test_staging_refuses_bad_or_existing_ids(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="invalid"), staging_dir(tmp_path, "../evil"):
        pass
    (tmp_path / "v1").mkdir()
    with pytest.raises(ModelError, match="exists"), staging_dir(tmp_path, "v1"):
        pass


def test_registry_activate_and_ids(tiny_model: TrainResult, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_model.path, models / "v2")
    reg = Registry(models, tiny_model.path)
    assert reg.ids() == ["default", "v2"]
    assert reg.active_id() == "default"
    reg.activate("v2")
    assert reg.active_id() == "v2"
    with pytest.raises(ModelNotFoundError):
        reg.load("../etc")
    with pytest.raises(ModelNotFoundError):
        reg.activate("v3")
    (models / "ACTIVE").write_text("gone\n")
    assert reg.active_id() == "default"


def test_evaluate_scores_page_and_final_labels(
    tiny_model: TrainResult, tiny_dataset: Path, cache_dir: Path, tmp_path: Path
) -> None:
    version = load_version(tiny_model.path)
    summary = evaluate(tiny_dataset, version, split="test", cache_dir=cache_dir, out=tmp_path / "r")
    assert summary["pages"] == tiny_model.report["dataset"]["test_pages"]
    assert (tmp_path / "r" / "report.json").is_file()
    table = summary_table(summary)
    assert "catboost" in table and "false mixed" in table
    everything = evaluate(tiny_dataset, version, cache_dir=cache_dir)
    assert everything["pages"] == 12
    for algo in ("catboost", "svm"):
        m = everything["algorithms"][algo]
        # the shipped models were fitted on every one of these pages
        assert m["accuracy"] >= 0.9
        assert m["final_label"]["mixed_pages"] == 0
        assert 0.0 <= m["final_label"]["accuracy"] <= m["accuracy"] + 1e-9


def test_metrics_and_mcnemar() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
    m = classification_metrics(
        y, p, sources=np.array(["a", "a", "b", "b", "b", "a"]), bootstrap=200
    )
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["per_source"]["a"]["n"] == 3
    assert fast_auc(y, p) == pytest.approx(8 / 9)
    assert fast_auc(np.ones(3, int), p[:3]) is None
    lo, hi = m["ci95"]["accuracy"]
    assert lo <= m["accuracy"] <= hi
    res = mcnemar(y, (p >= 0.5).astype(int), y)
    assert res["a_wrong_b_right"] == 2 and res["a_right_b_wrong"] == 0
    assert mcnemar(y, y, y)["p_value"] == 1.0


def test_augment_and_robustness_variants_are_reproducible() -> None:
    page = Page(image=typed_page(100), number=1, dpi=None)
    a1, a2 = augment(page, "seed"), augment(page, "seed")
    assert np.array_equal(a1.image, a2.image)
    rob = robustness_variant(page)
    # resampled to 300 dpi (the page's long side read as 11 in), then turned 3 degrees
    h, w = (n * 300 / (page.image.shape[0] / 11) for n in page.image.shape)
    turned = np.deg2rad(ROBUSTNESS_SKEW)
    assert rob.image.shape[0] == pytest.approx(h * np.cos(turned) + w * np.sin(turned), rel=0.01)
    assert rob.image.shape[1] == pytest.approx(w * np.cos(turned) + h * np.sin(turned), rel=0.01)
    hi = Page(image=typed_page(100), number=1, dpi=300.0)
    assert robustness_variant(hi).dpi == 100.0


def test_iam_like_form_is_cut_at_its_rules() -> None:
    form = np.full((1000, 600), 255, np.uint8)
    form[150:153, 40:560] = 0
    form[300:303, 40:560] = 0
    form[900:903, 40:560] = 0
    form[200:220, 100:300] = 0  # printed header text
    body = body_between_rules(form)
    assert body.shape[0] == pytest.approx(600, abs=20)
    header = header_above_rules(form)
    assert header is not None and header.shape[0] == pytest.approx(300, abs=10)
    plain = np.full((500, 400), 255, np.uint8)
    assert body_between_rules(plain).shape == plain.shape
    assert header_above_rules(plain) is None


def test_featurize_reports_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 40)
    job = Job(path=bad, sha256="x", variant="orig", crop_body=False, lang="eng", timeout=5)
    good = tmp_path / "good.png"
    good.write_bytes(encode(typed_page(100), "PNG"))
    job2 = Job(path=good, sha256="y", variant="orig", crop_body=False, lang="eng", timeout=5)
    results, failures = featurize([job, job2], cache=FeatureCache(None), workers=1)
    assert failures and failures[0][0] == str(bad)
    assert job2 in results


def _die_on_bad(job: Job) -> tuple[None, str | None]:
    import os

    if job.sha256 == "x":
        os._exit(1)  # a worker killed mid-page
    return None, "skipped"


def test_featurize_maps_a_dead_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.training.featurize as fz

    monkeypatch.setattr(fz, "_safe_run", _die_on_bad)  # forked workers see the patch
    jobs = [
        Job(
            path=tmp_path / f"{k}.png",
            sha256=k,
            variant="orig",
            crop_body=False,
            lang="eng",
            timeout=5,
        )
        for k in ("x", "y", "z")
    ]
    with pytest.raises(WorkerCrashedError, match="run again to resume"):
        featurize(jobs, cache=FeatureCache(None), workers=2)


def test_progress_bar_writes(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    bar = ProgressBar("x", stream=sys.stderr)
    for i in range(11):
        bar(i, 10)
    assert "10/10" in capsys.readouterr().err
    # a second run of the same size (an ablation's second LOSO) draws a bar again
    for i in range(11):
        bar(i, 10)
    assert "10/10" in capsys.readouterr().err


def test_report_table_lists_every_scorer(tiny_model: TrainResult) -> None:
    table = report_mod.results_table(tiny_model.report)
    for name in ("catboost", "svm", "majority class", "geometry probe"):
        assert name in table


def test_unknown_algorithm_model() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_model("knn", {}, seed=0)


def test_smallest_dataset_trains(tiny_dataset: Path, tmp_path: Path, cache_dir: Path) -> None:
    """Three documents a class in training: CV folds that cannot train a learner are skipped."""
    result = train(
        tiny_dataset,
        out_dir=tmp_path,
        cache_dir=cache_dir,
        version_id="small",
        cfg=TrainConfig(test_size=0.5, augment=False, fullpage_baseline=False),
    )
    assert result.report["dataset"]["train_documents"] <= 8
    for algo in ("catboost", "svm"):
        assert result.report["algorithms"][algo]["test"]["n"] >= 4


def test_report_lists_importances_by_value_after_a_json_round_trip(
    tiny_model: TrainResult,
) -> None:
    """report.json sorts its keys; the README section must still rank features by importance."""
    stored = json.loads((tiny_model.path / "report.json").read_text())
    text = report_mod.markdown_report(stored)
    section = text.split("## CatBoost feature importances (top 12)")[1].split("##")[0]
    values = [
        float(line.rsplit(":", 1)[1]) for line in section.splitlines() if line.startswith("- ")
    ]
    assert len(values) == 12
    assert values == sorted(values, reverse=True)
    assert values[0] > 0


def test_default_algorithm_is_chosen_by_loso_else_cv_with_a_tie_rule() -> None:
    from app.training.fold import weighted_log_loss
    from app.training.train import choose_default

    clear = {
        "catboost": {"cv_macro_source_accuracy": 0.95, "cv_log_loss": 0.10},
        "svm": {"cv_macro_source_accuracy": 0.99, "cv_log_loss": 0.30},
    }
    assert choose_default(clear)[0] == "svm"
    tied = {
        "catboost": {"cv_macro_source_accuracy": 0.993, "cv_log_loss": 0.03},
        "svm": {"cv_macro_source_accuracy": 0.994, "cv_log_loss": 0.05},
    }
    algo, reason = choose_default(tied)
    assert algo == "catboost"
    assert "log-loss" in reason

    def loso(cb: float, svm: float, fm_cb: float = 0.0, fm_svm: float = 0.0) -> dict[str, Any]:
        return {
            "scorers": {
                "catboost": {"overall": {"macro_final_accuracy": cb, "false_mixed_rate": fm_cb}},
                "svm": {"overall": {"macro_final_accuracy": svm, "false_mixed_rate": fm_svm}},
            }
        }

    # LOSO outranks CV: CV prefers svm, the left-out sources prefer catboost
    assert choose_default(clear, loso(0.96, 0.90))[0] == "catboost"
    algo, reason = choose_default(clear, loso(0.951, 0.953, fm_cb=0.01, fm_svm=0.03))
    assert algo == "catboost" and "false mixed" in reason
    y = np.array([1, 0, 1])
    w = np.ones(3)
    assert weighted_log_loss(y, np.array([0.9, 0.1, 0.8]), w) < weighted_log_loss(
        y, np.array([0.6, 0.4, 0.5]), w
    )
    assert np.isfinite(weighted_log_loss(y, np.array([0.0, 1.0, 0.0]), w))


def test_concat_rows_joins_every_column() -> None:
    from app.training.corpus import Rows
    from app.training.lines import LineRows
    from app.training.rows import concat_rows

    a = Rows(
        np.ones((2, 3)),
        np.array([0, 1]),
        np.array(["g", "h"]),
        np.array(["s", "s"]),
        np.zeros((2, 3)),
        [("p", 1), ("q", 1)],
    )
    b = Rows(
        np.zeros((1, 3)),
        np.array([1]),
        np.array(["k"]),
        np.array(["t"]),
        np.ones((1, 3)),
        [("r", 2)],
    )
    c = concat_rows(a, b)
    assert c.x.shape == (3, 3) and c.geometry.shape == (3, 3)
    assert c.y.tolist() == [0, 1, 1] and c.groups.tolist() == ["g", "h", "k"]
    assert c.keys == [("p", 1), ("q", 1), ("r", 2)]
    lines = LineRows(
        np.ones((1, 2)),
        np.array([1]),
        np.array(["g"]),
        np.array(["s"]),
        np.array([5.0]),
        [("p", 1)],
    )
    both = lines.extend(lines, page_prefix="aug:")
    assert both.x.shape == (2, 2) and both.areas.tolist() == [5.0, 5.0]
    assert both.pages == [("p", 1), ("aug:p", 1)]
