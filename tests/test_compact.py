"""Compact (NumPy-only) model forms: equal to the library models, checked, and light to load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.errors import ModelIntegrityError
from app.features import FEATURE_NAMES
from app.features.lines import LINE_MODEL_FEATURES
from app.models import compact
from app.models.registry import add_compact_forms, load_version
from app.training.train import TrainResult
from tests.conftest import ROOT

SHIPPED = ROOT / "models" / "default"


def _rows(version_path: Path, n: int = 300, seed: int = 3) -> np.ndarray:
    """Realistic rows: around the support vectors and borders, plus wide noise."""
    lib = load_version(version_path, library=True)
    rng = np.random.default_rng(seed)
    probes = [compact.compact_of(m).probe_rows(rng, n) for m in lib.models.values()]
    noise = rng.normal(0.0, 5.0, (n, len(FEATURE_NAMES)))
    return np.vstack([*probes, noise])


@pytest.mark.parametrize("where", ["tiny", "shipped"])
def test_compact_forms_equal_the_library_models(where: str, tiny_model: TrainResult) -> None:
    path = tiny_model.path if where == "tiny" else SHIPPED
    fast, lib = load_version(path), load_version(path, library=True)
    assert all(type(m).__module__ == "app.models.compact" for m in fast.models.values())
    assert type(fast.line_model).__module__ == "app.models.compact"
    x = _rows(path)
    for algo in lib.models:
        assert np.max(np.abs(fast.predict(x, algo) - lib.predict(x, algo))) < 1e-9
    lines = np.random.default_rng(0).normal(0.0, 2.0, (500, len(LINE_MODEL_FEATURES)))
    got, want = fast.predict_lines(lines), lib.predict_lines(lines)
    assert got is not None and want is not None
    assert np.max(np.abs(got - want)) < 1e-9


def test_serving_imports_no_learning_library() -> None:
    """The CLI's and the service's start-up import neither scikit-learn nor CatBoost."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.models.registry import load_version\n"
        "import app.models.predict, app.documents, app.features\n"
        f"v = load_version(Path({str(SHIPPED)!r}))\n"
        "from fastapi.testclient import TestClient\n"
        "from app.api.main import create_app\n"
        "from app.config import Settings\n"
        f"cfg = Settings(workers=1, default_model_dir=Path({str(SHIPPED)!r}))\n"
        "with TestClient(create_app(cfg)) as c:\n"
        "    assert c.get('/models').status_code == 200\n"
        "heavy = [m for m in ('sklearn', 'catboost', 'pandas', 'joblib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_tampered_compact_form_is_refused(tiny_model: TrainResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model.path, copy)
    with (copy / "svm.npz").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelIntegrityError, match=r"svm\.npz"):
        load_version(copy)


def test_a_compact_form_that_disagrees_is_not_written(
    tiny_model: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model.path, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    for art in meta["artefacts"].values():
        art.pop("compact", None)
    (copy / "metadata.json").write_text(json.dumps(meta))
    for f in copy.glob("*.npz"):
        f.unlink()
    real = compact.CompactSvm.predict_proba

    def off_by_a_little(self: compact.CompactSvm, x: np.ndarray) -> np.ndarray:
        p = real(self, x)
        return np.column_stack([p[:, 0] - 1e-4, p[:, 1] + 1e-4])

    monkeypatch.setattr(compact.CompactSvm, "predict_proba", off_by_a_little)
    artefacts = add_compact_forms(copy)
    assert "compact" not in artefacts["svm"]  # refused: served by scikit-learn instead
    assert not (copy / "svm.npz").exists()
    assert artefacts["catboost"]["compact"]["max_abs_difference"] < 1e-9
    version = load_version(copy)
    assert type(version.models["svm"]).__name__ == "CalibratedClassifierCV"
    assert type(version.models["catboost"]).__module__ == "app.models.compact"


def test_compact_file_holds_no_pickle(tmp_path: Path) -> None:
    path = SHIPPED / "svm.npz"
    with np.load(path, allow_pickle=False) as z:  # would raise on an object array
        assert "kind" in z.files
    bad = tmp_path / "bad.npz"
    np.savez(bad, kind=np.array("forest"))
    with pytest.raises(ValueError, match="unknown compact model kind"):
        compact.load(bad)
