"""Model versions on disk: one folder each, with metadata.json checked on load.

A version folder holds ``catboost.cbm`` (CatBoost's native format), ``svm.joblib`` (the scikit-learn
pipeline), ``lines.cbm`` (the line model), their compact NumPy forms (``*.npz``, see
:mod:`app.models.compact`: what serving loads, so it never imports scikit-learn or CatBoost),
``metadata.json`` (feature names and version, parameters, library versions, training-data hash,
metrics, sha256 of every artefact) and the reports. Folders are written under a temporary name and
renamed into place, so a failed or interrupted training never leaves a partial version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ModelError, ModelIntegrityError, ModelNotFoundError, ModelOutdatedError
from app.features import FEATURE_NAMES, FEATURE_VERSION
from app.features.lines import LINE_MODEL_FEATURES
from app.models import compact
from app.models.base import ALGORITHMS, ProbaModel, proba_handwritten
from app.models.verdict import VerdictRule
from app.processes import pid_alive

log = logging.getLogger(__name__)

ARTEFACTS = {"catboost": "catboost.cbm", "svm": "svm.joblib", "lines": "lines.cbm"}
COMPACT = {"catboost": "catboost.npz", "svm": "svm.npz", "lines": "lines.npz"}
VERIFY_ROWS = 5000
ACTIVE_FILE = "ACTIVE"
STAGING = ".tmp-"  # + "<pid>-<version id>-<random>": a version being written
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temp file in the same folder, then rename)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (temp file in the same folder, fsync, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(0o644)  # mkstemp makes 0600; models and reports are read by other users
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class ModelVersion:
    """A loaded, verified model version."""

    id: str
    path: Path
    metadata: dict[str, Any]
    models: dict[str, ProbaModel]
    line_model: ProbaModel | None = None

    def verdict_rule(self, algorithm: str | None = None) -> VerdictRule:
        """How page probability and handwritten share make the page label, for ``algorithm``."""
        rules = self.metadata.get("verdict_rules") or {}
        return VerdictRule.from_dict(rules.get(algorithm or self.default_algorithm))

    def predict_lines(self, x: np.ndarray) -> np.ndarray | None:
        """Probability of handwritten for each line row (None without a line model)."""
        if self.line_model is None:
            return None
        if x.shape[0] == 0:
            return np.zeros(0)
        return proba_handwritten(self.line_model, x)

    @property
    def default_algorithm(self) -> str:
        """The algorithm the service uses unless asked otherwise."""
        algo = str(self.metadata.get("default_algorithm", ""))
        return algo if algo in self.models else next(iter(self.models))

    def predict(self, x: np.ndarray, algorithm: str | None = None) -> np.ndarray:
        """Probability of handwritten for each row of ``x`` (FEATURE_NAMES columns)."""
        algo = algorithm or self.default_algorithm
        if algo not in self.models:
            raise ModelNotFoundError(
                f"model {self.id} has no {algo!r} classifier (it has: {', '.join(self.models)})"
            )
        return proba_handwritten(self.models[algo], x)

    def summary(self) -> dict[str, Any]:
        """What /models shows of a version."""
        meta = self.metadata
        return {
            "id": self.id,
            "algorithms": list(self.models),
            "default_algorithm": self.default_algorithm,
            "feature_version": meta.get("feature_version"),
            "created_at": meta.get("created_at"),
            "metrics": meta.get("metrics", {}),
        }


@contextlib.contextmanager
def staging_dir(models_dir: Path, version_id: str) -> Iterator[Path]:
    """A temporary folder renamed to ``models_dir/version_id`` only if the block succeeds."""
    if not _ID.match(version_id):
        raise ModelError(f"invalid model id {version_id!r}")
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / version_id
    if final.exists():
        raise ModelError(f"model version {version_id} already exists")
    tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=f"{STAGING}{os.getpid()}-{version_id}-"))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes 0700
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_compact(
    folder: Path, algo: str, model: Any, rows: np.ndarray | None = None
) -> dict[str, Any] | None:
    """Write ``model``'s compact form beside it; None (and a warning) when it has none."""
    if rows is not None and rows.shape[0] > VERIFY_ROWS:
        pick = np.random.default_rng(0).choice(rows.shape[0], VERIFY_ROWS, replace=False)
        rows = rows[np.sort(pick)]
    path = folder / COMPACT[algo]
    try:
        diff = compact.export(model, path, rows)
    except ValueError as e:
        log.warning("%s: served by its library (%s)", algo, e)
        path.unlink(missing_ok=True)
        return None
    return {"file": path.name, "sha256": sha256_file(path), "max_abs_difference": diff}


def save_models(
    folder: Path,
    models: dict[str, Any],
    metadata: dict[str, Any],
    verify_rows: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write the models, their compact forms and metadata.json (with checksums) into ``folder``.

    ``verify_rows`` (per artefact: feature rows, e.g. the training rows) are where each compact
    form is checked against its library model, besides rows drawn around the model itself.
    """
    artefacts: dict[str, dict[str, Any]] = {}
    for algo, model in models.items():
        name = ARTEFACTS[algo]
        if name.endswith(".cbm"):
            model.save_model(str(folder / name), format="cbm")
        else:
            import joblib  # noqa: PLC0415 - only training pays for it

            joblib.dump(model, folder / name)
        artefacts[algo] = {"file": name, "sha256": sha256_file(folder / name)}
        packed = write_compact(folder, algo, model, (verify_rows or {}).get(algo))
        if packed is not None:
            artefacts[algo]["compact"] = packed
    meta = {
        **metadata,
        "feature_names": list(FEATURE_NAMES),
        "line_feature_names": list(LINE_MODEL_FEATURES),
        "feature_version": FEATURE_VERSION,
        "artefacts": artefacts,
    }
    atomic_write_text(folder / "metadata.json", json.dumps(meta, indent=2, sort_keys=True))
    return meta


def add_compact_forms(path: Path) -> dict[str, Any]:
    """Give a version written before compact forms existed its ``*.npz`` files.

    Each is checked against the library model on rows drawn around the model (support vectors,
    split borders); metadata.json is rewritten atomically. Returns the new artefact entries.
    """
    version = load_version(path, library=True)
    meta = version.metadata
    models: dict[str, Any] = {**version.models}
    if version.line_model is not None:
        models["lines"] = version.line_model
    for algo, model in models.items():
        packed = write_compact(path, algo, model)
        if packed is not None:
            meta["artefacts"][algo]["compact"] = packed
    atomic_write_text(path / "metadata.json", json.dumps(meta, indent=2, sort_keys=True))
    return dict(meta["artefacts"])


def _verified(path: Path, entry: dict[str, Any]) -> Path:
    file = path / str(entry["file"])
    if not file.is_file() or sha256_file(file) != entry["sha256"]:
        raise ModelIntegrityError(f"{file} is missing or does not match its sha256")
    return file


def _load_artefact(path: Path, art: dict[str, Any], *, library: bool) -> ProbaModel:
    """The compact form when there is one (NumPy only), else the library's own model."""
    packed = art.get("compact")
    file = _verified(path, art)  # every artefact is checked, even the one not loaded
    try:
        if packed and not library:
            return compact.load(_verified(path, packed))
        if file.suffix == ".cbm":
            from catboost import CatBoostClassifier  # noqa: PLC0415 - 2 s: only when needed

            model: Any = CatBoostClassifier()
            model.load_model(str(file), format="cbm")
            return model  # type: ignore[no-any-return]  # catboost is untyped
        import joblib  # noqa: PLC0415 - pulls scikit-learn in: only when needed

        return joblib.load(file)  # type: ignore[no-any-return]  # joblib is untyped
    except ModelIntegrityError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad artefact
        raise ModelIntegrityError(f"{path / str(art['file'])} cannot be loaded: {e}") from e


def load_version(path: Path, *, library: bool = False) -> ModelVersion:
    """Load and verify a version folder (``library``: the library models, not compact ones).

    Raises:
        ModelNotFoundError: no metadata.json there.
        ModelIntegrityError: a checksum or the feature names do not match.
        ModelOutdatedError: the version was trained on another feature version.
    """
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise ModelNotFoundError(f"no model at {path} (metadata.json missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelIntegrityError(f"{meta_path} is unreadable: {e}") from e
    if meta.get("feature_names") != list(FEATURE_NAMES):
        raise ModelIntegrityError(f"model {path.name} was trained on other features")
    if "lines" in meta.get("artefacts", {}) and meta.get("line_feature_names") != list(
        LINE_MODEL_FEATURES
    ):
        raise ModelIntegrityError(f"model {path.name}'s line model was trained on other features")
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelOutdatedError(
            f"model {path.name} needs features v{meta.get('feature_version')}, "
            f"this inkwell computes v{FEATURE_VERSION}: retrain it (POST /train with a base, "
            "or `python -m app train`) or activate another version"
        )
    models: dict[str, ProbaModel] = {}
    line_model: ProbaModel | None = None
    for algo, art in meta.get("artefacts", {}).items():
        if algo not in (*ALGORITHMS, "lines"):
            continue
        model = _load_artefact(path, art, library=library)
        if algo == "lines":
            line_model = model
        else:
            models[algo] = model
    if not models:
        raise ModelIntegrityError(f"model {path.name} holds no classifier")
    return ModelVersion(
        id=path.name, path=path, metadata=meta, models=models, line_model=line_model
    )


class Registry:
    """The models directory: versions, plus the shipped default, plus which one is active."""

    def __init__(self, models_dir: Path, default_dir: Path) -> None:
        """Versions live in ``models_dir``; ``default_dir`` is the shipped model."""
        self.models_dir = models_dir
        self.default_dir = default_dir

    def folder(self, version_id: str) -> Path:
        """The folder of version ``version_id``.

        Raises:
            ModelNotFoundError: no such version.
        """
        if version_id == "default":
            return self.default_dir
        if not _ID.match(version_id) or version_id.startswith(".tmp"):
            raise ModelNotFoundError(f"no model version {version_id!r}")
        path = self.models_dir / version_id
        if not (path / "metadata.json").is_file():
            raise ModelNotFoundError(f"no model version {version_id!r}")
        return path

    def ids(self) -> list[str]:
        """Every version id, the default first."""
        found = []
        if (self.default_dir / "metadata.json").is_file():
            found.append("default")
        if self.models_dir.is_dir():
            found += sorted(
                p.name
                for p in self.models_dir.iterdir()
                if p.is_dir()
                and not p.name.startswith(".")
                and p.resolve() != self.default_dir.resolve()
                and (p / "metadata.json").is_file()
            )
        return found

    def remove_stale_staging(self) -> int:
        """Delete half-written versions whose training process is gone; how many."""
        removed = 0
        if not self.models_dir.is_dir():
            return 0
        for path in self.models_dir.glob(f"{STAGING}*"):
            pid_text = path.name.removeprefix(STAGING).split("-", 1)[0]
            if not path.is_dir() or not pid_text.isdigit() or pid_alive(int(pid_text)):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        return removed

    def load(self, version_id: str) -> ModelVersion:
        """Load one version by id."""
        version = load_version(self.folder(version_id))
        version.id = version_id
        return version

    def active_id(self) -> str:
        """The active version id (``default`` unless another was activated)."""
        marker = self.models_dir / ACTIVE_FILE
        if marker.is_file():
            value = marker.read_text(encoding="utf-8").strip()
            if value and value in self.ids():
                return value
        return "default"

    def activate(self, version_id: str) -> ModelVersion:
        """Verify ``version_id`` loads, then mark it active (atomically)."""
        version = self.load(version_id)
        atomic_write_text(self.models_dir / ACTIVE_FILE, version_id + "\n")
        return version
