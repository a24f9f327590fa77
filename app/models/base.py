"""What serving needs of a model, without importing any learning library."""

from __future__ import annotations

from typing import Protocol

import numpy as np

ALGORITHMS = ("catboost", "svm")


class ProbaModel(Protocol):
    """What the service needs of a fitted model."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, columns ordered as classes_ (0 = typed, 1 = handwritten)."""
        ...  # pragma: no cover


def proba_handwritten(model: ProbaModel, x: np.ndarray) -> np.ndarray:
    """Probability of the handwritten class (label 1) for each row."""
    if x.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(model.predict_proba(x), dtype=np.float64)[:, 1]
