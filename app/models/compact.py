"""Trained models in plain arrays, evaluated with NumPy alone.

Serving needs only each model's ``predict_proba``, but importing scikit-learn takes about 4 s and
CatBoost about 2 s on a small machine, and both stay in memory. So every version also stores its
models as arrays (``.npz``, no pickle), written and checked at save time:

- :class:`CompactSvm`: the fitted ``CalibratedClassifierCV`` of scaled RBF SVCs as arrays: per
  calibration fold the scaler's mean and scale, the support vectors, dual coefficients, intercept,
  gamma and the sigmoid's ``a``/``b``; probability = mean over folds of
  ``1 / (1 + exp(a f(x) + b))``, ``f`` the SVC's decision function.
- :class:`CompactTrees`: a CatBoost model of oblivious trees (from CatBoost's own JSON export): per
  tree its split features, float32 borders and leaf values; raw score = scale * sum of leaves +
  bias, probability = sigmoid(raw).

:func:`export` refuses a model whose compact form differs from the library's probabilities by more
than ``TOLERANCE`` on the rows given and on rows drawn around the model's own support vectors or
borders; the version then keeps only the library form and is served from it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 1e-6
_CHUNK = 4096


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any z
    return out


def _two_columns(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p, p])


@dataclass(frozen=True)
class CompactSvm:
    """Calibrated RBF SVMs (one per calibration fold) as arrays."""

    mean: np.ndarray  # (folds, features)
    scale: np.ndarray  # (folds, features)
    vectors: list[np.ndarray]  # per fold (support vectors, features), scaled space
    coef: list[np.ndarray]  # per fold (support vectors,)
    intercept: np.ndarray  # (folds,)
    gamma: np.ndarray  # (folds,)
    a: np.ndarray  # (folds,)
    b: np.ndarray  # (folds,)

    kind = "svm"

    @classmethod
    def from_sklearn(cls, model: Any) -> CompactSvm:
        """From a fitted ``CalibratedClassifierCV`` over :class:`ScaledSVC` (binary, sigmoid)."""
        folds = model.calibrated_classifiers_
        if list(model.classes_) != [0, 1] or model.method != "sigmoid":
            raise ValueError("only binary sigmoid-calibrated SVMs are exported")
        mean, scale, vectors, coef, intercept, gamma, a, b = [], [], [], [], [], [], [], []
        for fold in folds:
            est, (cal,) = fold.estimator, fold.calibrators
            svc = est.svc_
            if svc.kernel != "rbf":
                raise ValueError("only RBF kernels are exported")
            mean.append(est.scaler_.mean_)
            scale.append(est.scaler_.scale_)
            vectors.append(np.asarray(svc.support_vectors_, dtype=np.float64))
            coef.append(np.asarray(svc.dual_coef_, dtype=np.float64)[0])
            intercept.append(float(svc.intercept_[0]))
            gamma.append(float(svc._gamma))
            a.append(float(cal.a_))
            b.append(float(cal.b_))
        return cls(
            mean=np.array(mean),
            scale=np.array(scale),
            vectors=vectors,
            coef=coef,
            intercept=np.array(intercept),
            gamma=np.array(gamma),
            a=np.array(a),
            b=np.array(b),
        )

    def decision(self, fold: int, x: np.ndarray) -> np.ndarray:
        """The SVC's decision function of one calibration fold."""
        z = (x - self.mean[fold]) / self.scale[fold]
        sv = self.vectors[fold]
        d2 = (z * z).sum(1)[:, None] + (sv * sv).sum(1)[None, :] - 2.0 * z @ sv.T
        k = np.exp(-self.gamma[fold] * np.maximum(d2, 0.0))
        out: np.ndarray = k @ self.coef[fold] + self.intercept[fold]
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Columns: typed, handwritten (as the library model)."""
        x = np.asarray(x, dtype=np.float64)
        p = np.zeros(x.shape[0])
        for f in range(len(self.vectors)):
            p += _sigmoid(-(self.a[f] * self.decision(f, x) + self.b[f]))
        return _two_columns(p / len(self.vectors))

    def arrays(self) -> dict[str, np.ndarray]:
        """What the .npz file holds."""
        out = {
            "kind": np.array("svm"),
            "mean": self.mean,
            "scale": self.scale,
            "intercept": self.intercept,
            "gamma": self.gamma,
            "a": self.a,
            "b": self.b,
        }
        for i, (v, c) in enumerate(zip(self.vectors, self.coef, strict=True)):
            out[f"vectors_{i}"], out[f"coef_{i}"] = v, c
        return out

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray]) -> CompactSvm:
        """Inverse of :meth:`arrays`."""
        n = int(z["intercept"].shape[0])
        return cls(
            mean=z["mean"],
            scale=z["scale"],
            vectors=[z[f"vectors_{i}"] for i in range(n)],
            coef=[z[f"coef_{i}"] for i in range(n)],
            intercept=z["intercept"],
            gamma=z["gamma"],
            a=z["a"],
            b=z["b"],
        )

    def probe_rows(self, rng: np.random.Generator, n: int = 400) -> np.ndarray:
        """Rows around the support vectors, in input space (where the model is defined)."""
        rows = []
        for f, sv in enumerate(self.vectors):
            pick = sv[rng.integers(0, sv.shape[0], n // len(self.vectors) + 1)]
            z = pick + rng.normal(0.0, 0.5, pick.shape)
            rows.append(z * self.scale[f] + self.mean[f])
        return np.vstack(rows)


@dataclass(frozen=True)
class CompactTrees:
    """A binary CatBoost model of oblivious trees (float features only) as arrays."""

    features: np.ndarray  # (trees, depth) feature index of each split
    borders: np.ndarray  # (trees, depth) float32 border of each split
    leaves: np.ndarray  # (trees, 2**depth) leaf values
    scale: float
    bias: float
    n_features: int

    kind = "trees"

    @classmethod
    def from_catboost(cls, model: Any) -> CompactTrees:
        """From a fitted binary ``CatBoostClassifier`` (via its JSON export)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.json"
            model.save_model(str(path), format="json")
            spec = json.loads(path.read_text(encoding="utf-8"))
        info = spec["features_info"]
        if set(info) - {"float_features"}:
            raise ValueError("only float features are exported")
        if any(f.get("nan_value_treatment") == "AsTrue" for f in info["float_features"]):
            raise ValueError("NaN treated as the largest value is not exported")
        trees = spec["oblivious_trees"]
        depth = max(len(t["splits"]) for t in trees)
        features = np.zeros((len(trees), depth), dtype=np.int64)
        # a shallower tree is padded with splits that never fire (x > inf): its high bits stay 0
        borders = np.full((len(trees), depth), np.inf, dtype=np.float32)
        leaves = np.zeros((len(trees), 1 << depth))
        for i, t in enumerate(trees):
            if any(s["split_type"] != "FloatFeature" for s in t["splits"]):
                raise ValueError("only float-feature splits are exported")
            for d, split in enumerate(t["splits"]):
                features[i, d] = split["float_feature_index"]
                borders[i, d] = split["border"]
            leaves[i, : len(t["leaf_values"])] = t["leaf_values"]
        scale, biases = spec["scale_and_bias"]
        return cls(
            features=features,
            borders=borders,
            leaves=leaves,
            scale=float(scale),
            bias=float(biases[0]) if biases else 0.0,
            n_features=len(info["float_features"]),
        )

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw score (log-odds of handwritten); features compared in float32, as CatBoost."""
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as in CatBoost
            xf = np.asarray(x, dtype=np.float32)
        out = np.empty(xf.shape[0])
        weights = (1 << np.arange(self.features.shape[1], dtype=np.int64))[None, :, None]
        for start in range(0, xf.shape[0], _CHUNK):
            chunk = xf[start : start + _CHUNK]
            # (trees, depth, rows): bit d of a tree's leaf index is "feature > border" of split d
            bits = chunk.T[self.features] > self.borders[:, :, None]
            index = (bits * weights).sum(1)  # (trees, rows)
            total = np.take_along_axis(self.leaves, index, axis=1).sum(0)
            out[start : start + _CHUNK] = self.scale * total + self.bias
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Columns: typed, handwritten (as the library model)."""
        return _two_columns(_sigmoid(self.raw(x)))

    def arrays(self) -> dict[str, np.ndarray]:
        """What the .npz file holds."""
        return {
            "kind": np.array("trees"),
            "features": self.features,
            "borders": self.borders,
            "leaves": self.leaves,
            "scale_bias_n": np.array([self.scale, self.bias, float(self.n_features)]),
        }

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray]) -> CompactTrees:
        """Inverse of :meth:`arrays`."""
        scale, bias, n = (float(v) for v in z["scale_bias_n"])
        return cls(
            features=z["features"],
            borders=z["borders"],
            leaves=z["leaves"],
            scale=scale,
            bias=bias,
            n_features=int(n),
        )

    def probe_rows(self, rng: np.random.Generator, n: int = 400) -> np.ndarray:
        """Rows on, just beside and between the borders (where float32 rounding matters)."""
        rows = np.zeros((n, self.n_features))
        for f in range(self.n_features):
            b = self.borders[(self.features == f) & np.isfinite(self.borders)].astype(np.float64)
            if b.size == 0:
                rows[:, f] = rng.normal(0.0, 1.0, n)
                continue
            pick = rng.choice(b, n)
            step = np.abs(pick) * 1e-6 + 1e-9
            rows[:, f] = pick + rng.choice([-1.0, 0.0, 1.0], n) * step
            rows[: n // 4, f] = rng.uniform(b.min() - 1.0, b.max() + 1.0, n // 4)
        return rows


CompactModel = CompactSvm | CompactTrees


def compact_of(model: Any) -> CompactModel:
    """The compact form of a fitted library model."""
    if type(model).__name__ == "CatBoostClassifier":
        return CompactTrees.from_catboost(model)
    if type(model).__name__ == "CalibratedClassifierCV":
        return CompactSvm.from_sklearn(model)
    raise ValueError(f"no compact form for {type(model).__name__}")


def max_difference(model: Any, compact: CompactModel, rows: np.ndarray) -> float:
    """Largest absolute difference of P(handwritten) between library and compact forms."""
    if rows.shape[0] == 0:
        return 0.0
    lib = np.asarray(model.predict_proba(rows), dtype=np.float64)[:, 1]
    return float(np.max(np.abs(lib - compact.predict_proba(rows)[:, 1])))


def export(model: Any, path: Path, rows: np.ndarray | None = None, seed: int = 0) -> float:
    """Write ``model``'s compact form to ``path`` (.npz) if it agrees with the library.

    Returns:
        The largest probability difference seen on ``rows`` and on probe rows.

    Raises:
        ValueError: the model has no compact form, or it disagrees by more than TOLERANCE.
    """
    compact = compact_of(model)
    probe = compact.probe_rows(np.random.default_rng(seed))
    check = probe if rows is None or rows.shape[0] == 0 else np.vstack([rows, probe])
    diff = max_difference(model, compact, check)
    if not diff <= TOLERANCE:
        raise ValueError(f"compact form differs from the library by {diff:.3g}")
    with path.open("wb") as fh:
        np.savez(fh, **compact.arrays())  # type: ignore[arg-type]  # numpy's stub is too narrow
    return diff


def load(path: Path) -> CompactModel:
    """Read a compact model (.npz, no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    kind = str(arrays.pop("kind"))
    if kind == "svm":
        return CompactSvm.from_arrays(arrays)
    if kind == "trees":
        return CompactTrees.from_arrays(arrays)
    raise ValueError(f"unknown compact model kind {kind!r}")
