"""Shared fixtures: generated files, a tiny dataset and a model trained on it once per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.training.train import TrainConfig, TrainResult, train
from tests.helpers import fonts_available, make_folder_dataset, make_manifest_dataset

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DEV_DATA = ROOT.parent / "shared" / "datasets"

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract is not installed"
)
needs_fonts = pytest.mark.skipif(
    not fonts_available(),
    reason="fonts-dejavu-core, fonts-dkg-handwriting, fonts-ecolier-court not installed",
)
needs_dev_data = pytest.mark.skipif(
    not (DEV_DATA / "manifest.csv").is_file(),
    reason=f"the dev datasets are not at {DEV_DATA} (../shared/datasets beside the checkout)",
)


SMALL_LINE_PARAMS = {"depth": 4, "learning_rate": 0.2, "iterations": 100, "border_count": 32}
"""The line models the tests fit: a generated page's fragments are told apart by far smaller
models than the dev set's, and the line model is most of a fit's time: 400 trees of depth 6 over
254 borders per feature take about 2 s even on a few hundred fragments (their cost is the split
search, not the rows), these under 0.1 s. Measured: 88 % of a leave-one-source-out run on the
generated sources went to line models, and the test session took 20 min instead of 10."""


@pytest.fixture(scope="session", autouse=True)
def small_line_models() -> Iterator[None]:
    """Tests train with :data:`SMALL_LINE_PARAMS` (the procedure is the same; its sizes are
    not what the tests check). It reaches the fits made in this process: a leave-one-source-out
    run with ``workers > 1`` fits in fork-server workers, which import the shipped sizes."""
    mp = pytest.MonkeyPatch()
    mp.setattr("app.training.fold.LINE_PARAMS", SMALL_LINE_PARAMS)
    mp.setattr("app.training.fold.CLEAN_PARAMS", {**SMALL_LINE_PARAMS, "iterations": 50})
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not fonts_available():
        pytest.skip("fonts needed to generate the tiny dataset are not installed")
    return make_folder_dataset(tmp_path_factory.mktemp("tiny") / "data" / "tiny")


@pytest.fixture(scope="session")
def multi_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest over five generated sources (two typed, two handwritten, one mixed)."""
    if not fonts_available():
        pytest.skip("fonts needed to generate the multi-source dataset are not installed")
    return make_manifest_dataset(tmp_path_factory.mktemp("multi"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def tiny_model(
    tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> TrainResult:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    out = tmp_path_factory.mktemp("models")
    return train(
        tiny_dataset,
        out_dir=out,
        cache_dir=cache_dir,
        cfg=TrainConfig(fullpage_baseline=True, workers=2, test_size=0.34),
        version_id="tiny",
    )


@pytest.fixture
def settings(
    tmp_path: Path, tiny_model: TrainResult, tiny_dataset: Path, cache_dir: Path
) -> Settings:
    models = tmp_path / "models"
    models.mkdir()
    return Settings(
        data_dir=tiny_dataset.parent,
        models_dir=models,
        default_model_dir=tiny_model.path,
        cache_dir=cache_dir,
        workers=1,
    )
