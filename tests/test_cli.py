"""The command line, end to end."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli
from app.config import Settings
from app.errors import ExitCode
from app.training.train import TrainResult
from tests.conftest import ROOT, SAMPLES, needs_tesseract
from tests.helpers import die_on_blank


@pytest.fixture
def use_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    return settings


def test_help_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    for command in ("classify", "train", "evaluate", "features", "serve"):
        assert command in out.stdout


@needs_tesseract
@pytest.mark.usefixtures("use_settings")
def test_classify_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["classify", str(SAMPLES / "typed_report.pdf"), "--format", "json", "--jobs", "1"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["page"] for r in rows] == [1, 2]
    assert cli.main(["classify", str(SAMPLES), "--format", "csv", "--jobs", "1"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {Path(r["path"]).name for r in table} >= {
        "typed_minutes.png",
        "typed_script_font_note.png",
    }
    assert all(0 <= float(r["p_handwritten"]) <= 1 for r in table)
    assert cli.main(["classify", str(SAMPLES / "typed_minutes.png"), "--jobs", "1"]) == 0
    assert "p(handwritten)" in capsys.readouterr().out


@needs_tesseract
@pytest.mark.usefixtures("use_settings")
def test_classify_survives_a_dead_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from PIL import Image

    from app.models import predict

    Image.fromarray(np.full((300, 300), 255, np.uint8)).save(tmp_path / "a_blank.png")
    for name in ("b_typed.png", "c_typed.png"):  # three files: a worker pool is used
        (tmp_path / name).write_bytes((SAMPLES / "typed_minutes.png").read_bytes())
    monkeypatch.setattr(predict, "featurise_page", die_on_blank)  # workers import it by name
    code = cli.main(["classify", str(tmp_path), "--format", "json", "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT
    rows = {Path(r["path"]).name: r for r in json.loads(captured.out)}
    assert rows["a_blank.png"]["label"] == "error"
    assert "worker process died" in rows["a_blank.png"]["error"]
    assert rows["b_typed.png"]["label"] == "typed"  # the next file ran on fresh workers
    assert rows["c_typed.png"]["label"] == "typed"


@needs_tesseract
@pytest.mark.usefixtures("use_settings")
def test_classify_lines_and_overlay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = str(SAMPLES / "typed_script_font_and_report.pdf")
    assert (
        cli.main(
            [
                "classify",
                doc,
                "--lines",
                "--format",
                "json",
                "--jobs",
                "1",
                "--overlay",
                str(tmp_path / "ov"),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert all(r["lines"] and 0 <= r["handwritten_share"] <= 1 for r in rows)
    overlays = sorted(p.name for p in (tmp_path / "ov").iterdir())
    assert overlays == [
        "typed_script_font_and_report-p1.png",
        "typed_script_font_and_report-p2.png",
    ]
    assert cli.main(["classify", doc, "--lines", "--jobs", "1"]) == 0
    table = capsys.readouterr().out
    assert "handwritten share" in table and " line " in table
    assert cli.main(["classify", doc, "--lines", "--format", "csv", "--jobs", "1"]) == 0
    assert "line:" in capsys.readouterr().out


@needs_tesseract
@pytest.mark.usefixtures("use_settings")
def test_classify_bad_file_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_text("not a pdf")
    assert cli.main(["classify", str(bad), "--jobs", "1"]) == ExitCode.BAD_INPUT
    assert "error" in capsys.readouterr().out
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    assert cli.main(["classify", str(empty_dir)]) == ExitCode.INTERNAL
    assert "no document found" in capsys.readouterr().err


@needs_tesseract
@pytest.mark.usefixtures("use_settings")
def test_unknown_model_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["classify", str(SAMPLES / "typed_minutes.png"), "--model", "v-none"])
    assert code == ExitCode.MODEL
    assert "no model version" in capsys.readouterr().err


@needs_tesseract
def test_train_evaluate_features(
    use_settings: Settings,
    tiny_dataset: Path,
    tmp_path: Path,
    tiny_model: TrainResult,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "models"
    code = cli.main(
        [
            "train",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--version",
            "cli1",
            "--test-size",
            "0.34",
            "--no-fullpage-baseline",
            "--activate",
            "--jobs",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "cli1" in printed and "catboost" in printed and "activated" in printed
    assert (out / "cli1" / "catboost.cbm").is_file()
    assert (out / "ACTIVE").read_text().strip() == "cli1"

    code = cli.main(
        [
            "evaluate",
            "--data",
            str(tiny_dataset),
            "--model",
            str(out / "cli1"),
            "--json",
            "--split",
            "test",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == "test" and summary["algorithms"]["svm"]["n"] >= 2
    assert cli.main(["evaluate", "--data", str(tiny_dataset), "--model", str(out / "cli1")]) == 0
    assert "catboost" in capsys.readouterr().out

    csv_out = tmp_path / "features.csv"
    assert cli.main(["features", str(tiny_dataset), "--out", str(csv_out), "--jobs", "1"]) == 0
    rows = list(csv.DictReader(csv_out.open()))
    assert len(rows) == 12 and "ocr_conf_mean" in rows[0]


@pytest.mark.usefixtures("use_settings")
def test_train_refusal_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")])
    assert code == ExitCode.DATASET
    assert "dataset not found" in capsys.readouterr().err


def test_report_prints_and_updates_readme(
    tiny_model: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tiny_model.path)]) == 0
    assert "| catboost |" in capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{cli.README_START}\nstale table\n{cli.README_END}\n\ntail\n")
    assert cli.main(["report", str(tiny_model.path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale table" not in text and "| svm |" in text and text.endswith("tail\n")
    readme.write_text("no markers")
    assert cli.main(["report", str(tiny_model.path), "--readme", str(readme)]) == ExitCode.INTERNAL
    assert cli.main(["report", str(tmp_path / "nope")]) == ExitCode.INTERNAL
