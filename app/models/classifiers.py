"""The two learners compared: CatBoost and an RBF SVM with calibrated probabilities."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from catboost import CatBoostClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from app.models.base import ALGORITHMS, ProbaModel, proba_handwritten

__all__ = ["ALGORITHMS", "ProbaModel", "ScaledSVC", "make_model", "proba_handwritten"]

CATBOOST_GRID: list[dict[str, Any]] = [
    {"depth": 4, "learning_rate": 0.05, "iterations": 300, "l2_leaf_reg": 3.0},
    {"depth": 6, "learning_rate": 0.05, "iterations": 300, "l2_leaf_reg": 3.0},
    {"depth": 4, "learning_rate": 0.1, "iterations": 200, "l2_leaf_reg": 10.0},
]
SVM_GRID: list[dict[str, Any]] = [
    {"C": c, "gamma": g} for c in (0.3, 1.0, 3.0, 10.0) for g in ("scale", 0.01)
]


class ScaledSVC(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """``StandardScaler`` then an RBF ``SVC``, as one estimator that takes ``sample_weight``.

    A ``Pipeline`` would not pass sample weights through ``CalibratedClassifierCV`` (it has no
    ``sample_weight`` fit parameter), and training weights every page by its source. The scaler is
    fitted inside ``fit`` on the training rows only (with the same weights): no scaling leak.
    """

    def __init__(
        self,
        C: float = 1.0,  # noqa: N803  # scikit-learn's name
        gamma: float | str = "scale",
        class_weight: str | None = None,
        random_state: int | None = None,
    ) -> None:
        """Store the parameters (scikit-learn convention: no logic here)."""
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(
        self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> ScaledSVC:
        """Fit the scaler and the SVC on the same (weighted) rows."""
        self.scaler_ = StandardScaler().fit(x, sample_weight=sample_weight)
        self.svc_ = SVC(
            kernel="rbf",
            C=self.C,
            gamma=self.gamma,
            class_weight=self.class_weight,
            random_state=self.random_state,
        ).fit(self.scaler_.transform(x), y, sample_weight=sample_weight)
        self.classes_ = self.svc_.classes_
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Signed distance to the margin (what the sigmoid calibration reads)."""
        return np.asarray(self.svc_.decision_function(self.scaler_.transform(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Hard labels of the uncalibrated SVC."""
        return np.asarray(self.svc_.predict(self.scaler_.transform(x)))


def make_model(
    algorithm: str,
    params: dict[str, Any],
    *,
    seed: int,
    cv: Iterable[tuple[np.ndarray, np.ndarray]] | int = 3,
    threads: int = 1,
    balanced: bool = True,
) -> Any:
    """An unfitted estimator for ``algorithm`` with ``params``.

    ``balanced`` weights the classes inside the learner; training passes ``balanced=False`` with
    sample weights that already balance classes and sources.
    """
    if algorithm == "catboost":
        return CatBoostClassifier(
            **params,
            random_seed=seed,
            verbose=False,
            thread_count=threads,
            auto_class_weights="Balanced" if balanced else None,
            allow_writing_files=False,
        )
    if algorithm == "svm":
        svc = ScaledSVC(
            class_weight="balanced" if balanced else None, random_state=seed, **params
        )
        splits: Sequence[tuple[np.ndarray, np.ndarray]] | int = (
            cv if isinstance(cv, int) else list(cv)
        )
        return CalibratedClassifierCV(svc, method="sigmoid", cv=splits)
    raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
