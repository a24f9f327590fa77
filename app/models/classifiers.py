"""The two learners compared: CatBoost and an RBF SVM with calibrated probabilities."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from catboost import CatBoostClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

ALGORITHMS = ("catboost", "svm")

CATBOOST_GRID: list[dict[str, Any]] = [
    {"depth": 4, "learning_rate": 0.05, "iterations": 300, "l2_leaf_reg": 3.0},
    {"depth": 6, "learning_rate": 0.05, "iterations": 300, "l2_leaf_reg": 3.0},
    {"depth": 4, "learning_rate": 0.1, "iterations": 200, "l2_leaf_reg": 10.0},
]
SVM_GRID: list[dict[str, Any]] = [
    {"C": c, "gamma": g} for c in (0.3, 1.0, 3.0, 10.0) for g in ("scale", 0.01)
]


class ProbaModel(Protocol):
    """What the service needs of a fitted model."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, columns ordered as classes_ (0 = typed, 1 = handwritten)."""
        ...  # pragma: no cover


def make_model(
    algorithm: str,
    params: dict[str, Any],
    *,
    seed: int,
    cv: Iterable[tuple[np.ndarray, np.ndarray]] | int = 3,
    threads: int = 1,
) -> Any:
    """An unfitted estimator for ``algorithm`` with ``params``."""
    if algorithm == "catboost":
        return CatBoostClassifier(
            **params,
            random_seed=seed,
            verbose=False,
            thread_count=threads,
            auto_class_weights="Balanced",
            allow_writing_files=False,
        )
    if algorithm == "svm":
        svc = SVC(kernel="rbf", class_weight="balanced", random_state=seed, **params)
        pipe = Pipeline([("scale", StandardScaler()), ("svm", svc)])
        splits: Sequence[tuple[np.ndarray, np.ndarray]] | int = (
            cv if isinstance(cv, int) else list(cv)
        )
        return CalibratedClassifierCV(pipe, method="sigmoid", cv=splits)
    raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")


def proba_handwritten(model: ProbaModel, x: np.ndarray) -> np.ndarray:
    """Probability of the handwritten class (label 1) for each row."""
    return np.asarray(model.predict_proba(x), dtype=np.float64)[:, 1]
