"""Training and honest evaluation: group-aware split, CV model selection, one final test.

The test part is touched once, at the end. Reference rows (majority class, full-page tesseract
confidence threshold, a geometry probe on page width/height/DPI) sit beside the two learners, and
every scorer is evaluated twice: on the test pages as they are, and on the robustness test (the
same pages with their resolution swapped and JPEG-compressed).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import catboost
import numpy as np
import sklearn
from sklearn.model_selection import StratifiedGroupKFold

import app
from app.errors import DatasetError
from app.features import FEATURE_NAMES, FEATURE_VERSION
from app.features.cache import FeatureCache
from app.models.classifiers import ALGORITHMS, CATBOOST_GRID, SVM_GRID, make_model
from app.models.registry import save_models, staging_dir
from app.training.dataset import Dataset, Document, discover
from app.training.featurize import Job, ProgressFn, featurize, jobs_for
from app.training.lines import (
    line_report,
    line_rows,
    make_line_model,
    mixed_band,
    out_of_fold,
    page_shares,
)
from app.training.metrics import balanced_accuracy, classification_metrics, mcnemar
from app.training.report import write_reports
from app.training.rows import concat_rows

log = logging.getLogger(__name__)

MIN_DOCS_PER_CLASS = 4
GEOMETRY_NAMES = ("width", "height", "dpi")
FULLPAGE_TRAIN_SAMPLE = 40


@dataclass
class TrainConfig:
    """What a training run does."""

    algorithms: tuple[str, ...] = ALGORITHMS
    seed: int = 42
    test_size: float = 0.25
    augment: bool = True
    iam_header: str = "split"
    """IAM forms in training: ``keep`` whole pages; ``crop`` to the handwritten body; ``split``:
    whole pages plus their printed header alone (labelled typed) and body alone (handwritten)."""
    fullpage_baseline: bool = True
    lang: str = "eng"
    ocr_timeout: float = 30.0
    workers: int = 1
    threads: int = 1


@dataclass
class Rows:
    """Page rows of one variant: features, labels, groups, sources, geometry."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    geometry: np.ndarray
    keys: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class TrainResult:
    """The version written and its report."""

    version_id: str
    path: Path
    report: dict[str, Any]


def split_documents(
    docs: list[Document], *, test_size: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Group-aware, stratified split; a manifest's split column wins where it is set."""
    fixed_train = [d for d in docs if d.split == "train"]
    fixed_test = [d for d in docs if d.split == "test"]
    free = [d for d in docs if d.split == ""]
    train, test = list(fixed_train), list(fixed_test)
    if free:
        n_splits = max(2, round(1 / max(min(test_size, 0.5), 0.05)))
        y = np.array([d.label == "handwritten" for d in free], dtype=int)
        groups = np.array([d.group for d in free])
        n_groups = min(len(set(groups[y == k])) for k in (0, 1) if (y == k).any())
        n_splits = max(2, min(n_splits, n_groups))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        tr_idx, te_idx = next(splitter.split(np.zeros(len(free)), y, groups))
        train += [free[i] for i in tr_idx]
        test += [free[i] for i in te_idx]
    overlap = {d.group for d in train} & {d.group for d in test}
    if overlap:  # a group that the manifest put on both sides: keep it in training only
        log.warning("groups on both sides of the manifest split moved to train: %s", overlap)
        train += [d for d in test if d.group in overlap]
        test = [d for d in test if d.group not in overlap]
    return train, test


def _check_counts(dataset: Dataset) -> None:
    counts = dataset.counts()
    for label, n in counts.items():
        if n < MIN_DOCS_PER_CLASS:
            raise DatasetError(
                f"too few '{label}' documents to split into train and test: {n} "
                f"(at least {MIN_DOCS_PER_CLASS} needed); counts: {counts}"
            )


def _rows(
    docs: list[Document],
    jobs: list[Job],
    results: dict[Job, list[dict[str, Any]]],
    label: str | None = None,
) -> Rows:
    x, y, groups, sources, geo, keys = [], [], [], [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            x.append([float(page["features"][n]) for n in FEATURE_NAMES])
            geo.append([float(page["width"]), float(page["height"]), float(page["dpi"])])
            y.append(int((label or doc.label) == "handwritten"))
            groups.append(doc.group)
            sources.append(doc.source)
            keys.append((doc.sha256, int(page["page"])))
    return Rows(
        x=np.array(x, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)),
        y=np.array(y, dtype=int),
        groups=np.array(groups),
        sources=np.array(sources),
        geometry=np.array(geo, dtype=np.float64).reshape(-1, 3),
        keys=keys,
    )


def _cv_splits(rows: Rows, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    k = max(2, min(5, _min_groups(rows)))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(rows.x, rows.y, rows.groups))


def _min_groups(rows: Rows) -> int:
    """The number of distinct groups of the rarer class."""
    return min(len(set(rows.groups[rows.y == k].tolist())) for k in (0, 1))


def _fit(
    algorithm: str,
    params: dict[str, Any],
    rows: Rows,
    cfg: TrainConfig,
    x: np.ndarray | None = None,
) -> Any:
    data = rows.x if x is None else x
    cv: list[tuple[np.ndarray, np.ndarray]] | int = 3
    if algorithm == "svm":
        k = min(3, _min_groups(rows))
        if k < 2:
            raise DatasetError(
                "too few documents to calibrate the SVM: each class needs documents from at "
                "least 2 groups in the training part"
            )
        cv = list(
            StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=cfg.seed).split(
                data, rows.y, rows.groups
            )
        )
    model = make_model(algorithm, params, seed=cfg.seed, cv=cv, threads=cfg.threads)
    model.fit(data, rows.y)
    return model


def select_params(
    algorithm: str, rows: Rows, cfg: TrainConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick hyper-parameters by group k-fold CV on the training part (balanced accuracy)."""
    grid = CATBOOST_GRID if algorithm == "catboost" else SVM_GRID
    splits = _cv_splits(rows, cfg.seed)
    table: list[dict[str, Any]] = []
    for params in grid:
        scores = []
        losses = []
        for tr, va in splits:
            sub = Rows(rows.x[tr], rows.y[tr], rows.groups[tr], rows.sources[tr], rows.geometry[tr])
            if len(np.unique(sub.y)) < 2 or _min_groups(sub) < 2:
                continue  # a fold of a tiny dataset that cannot train this learner
            model = _fit(algorithm, params, sub, cfg)
            proba = np.asarray(model.predict_proba(rows.x[va]))[:, 1]
            pred = (proba >= 0.5).astype(int)
            score = balanced_accuracy(rows.y[va], pred)
            scores.append(score if score is not None else float(np.mean(pred == rows.y[va])))
            losses.append(log_loss(rows.y[va], proba))
        table.append(
            {
                "params": params,
                "cv_balanced_accuracy": float(np.mean(scores)) if scores else 0.0,
                "cv_log_loss": float(np.mean(losses)) if losses else float("inf"),
                "cv_folds_used": len(scores),
            }
        )
    best = max(table, key=lambda r: float(r["cv_balanced_accuracy"]))
    return dict(best["params"]), table


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped to [1e-6, 1 - 1e-6])."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


CV_TIE = 0.005
"""CV balanced accuracies closer than this (one page in 200) do not tell two learners apart."""


def choose_default(algorithms: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The algorithm the service uses by default, and why (CV only: never the test part).

    The best group-CV balanced accuracy wins; when the runner-up is within :data:`CV_TIE`, the
    two are tied and the lower CV log-loss (the better probabilities, on the same folds) decides.
    """
    ranked = sorted(algorithms, key=lambda a: -algorithms[a]["cv_balanced_accuracy"])
    best = ranked[0]
    tied = [
        a
        for a in ranked
        if algorithms[best]["cv_balanced_accuracy"] - algorithms[a]["cv_balanced_accuracy"] < CV_TIE
    ]
    if len(tied) == 1:
        return best, "best group-CV balanced accuracy on the training part"
    choice = min(tied, key=lambda a: algorithms[a]["cv_log_loss"])
    return choice, (
        f"group-CV balanced accuracies within {CV_TIE} ({', '.join(tied)}): lowest CV log-loss"
    )


def _fullpage_threshold(conf: np.ndarray, y: np.ndarray) -> float:
    """The confidence threshold (below = handwritten) with the best balanced accuracy."""
    best_t, best = 50.0, -1.0
    for t in np.arange(5, 100, 1.0):
        pred = (conf < t).astype(int)
        tpr = np.mean(pred[y == 1] == 1) if (y == 1).any() else 0
        tnr = np.mean(pred[y == 0] == 0) if (y == 0).any() else 0
        score = (tpr + tnr) / 2
        if score > best:
            best, best_t = score, float(t)
    return best_t


def _conf_to_proba(conf: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp((conf - threshold) / 5.0)))


def train(
    data: Path,
    *,
    out_dir: Path,
    cache_dir: Path | None,
    cfg: TrainConfig | None = None,
    version_id: str | None = None,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train every algorithm on ``data``, evaluate, and write a new version folder atomically."""
    cfg = cfg or TrainConfig()
    stage = on_stage or (lambda s: log.info("%s", s))
    for algo in cfg.algorithms:
        if algo not in ALGORITHMS:
            raise DatasetError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    t_start = time.perf_counter()
    stage("discovering dataset")
    dataset = discover(data)
    _check_counts(dataset)
    train_docs, test_docs = split_documents(
        dataset.documents, test_size=cfg.test_size, seed=cfg.seed
    )
    for label in ("handwritten", "typed"):
        if not any(d.label == label for d in test_docs) or not any(
            d.label == label for d in train_docs
        ):
            raise DatasetError(f"the split left no '{label}' document on one side; add more data")
        if len({d.group for d in train_docs if d.label == label}) < 2:
            raise DatasetError(
                f"the training part has '{label}' documents from fewer than 2 groups "
                "(writers/documents); add more data or lower test_size"
            )

    if cfg.iam_header not in ("keep", "crop", "split"):
        raise DatasetError(f"iam_header must be keep, crop or split, not {cfg.iam_header!r}")

    def jobs(docs: list[Document], variant: str, *, crop: bool = False) -> list[Job]:
        return jobs_for(docs, variant, lang=cfg.lang, timeout=cfg.ocr_timeout, crop_iam=crop)

    crop = cfg.iam_header == "crop"
    train_jobs = jobs(train_docs, "orig", crop=crop)
    aug_jobs = jobs(train_docs, "aug0", crop=crop) if cfg.augment else []
    iam_train = [d for d in train_docs if d.source.startswith("iam")]
    split_iam = cfg.iam_header == "split" and bool(iam_train)
    part_jobs = (
        (jobs(iam_train, "iam_header"), jobs(iam_train, "iam_body")) if split_iam else ([], [])
    )
    test_jobs = jobs(test_docs, "orig")
    robust_jobs = jobs(test_docs, "robust")
    rng = np.random.default_rng(cfg.seed)
    fp_train_docs = [
        train_docs[i]
        for i in sorted(
            rng.choice(len(train_docs), min(FULLPAGE_TRAIN_SAMPLE, len(train_docs)), replace=False)
        )
    ]
    fp_train_jobs = jobs(fp_train_docs, "fullpage") if cfg.fullpage_baseline else []
    fp_test_jobs = jobs(test_docs, "fullpage") if cfg.fullpage_baseline else []
    iam_test = [d for d in test_docs if d.source.startswith("iam")]
    header_jobs = jobs(iam_test, "iam_header")
    body_jobs = jobs(iam_test, "iam_body")
    all_jobs = (
        train_jobs
        + aug_jobs
        + test_jobs
        + robust_jobs
        + fp_train_jobs
        + fp_test_jobs
        + header_jobs
        + body_jobs
        + part_jobs[0]
        + part_jobs[1]
    )
    stage(f"extracting features: {len(train_docs)} train / {len(test_docs)} test documents")
    t_feat = time.perf_counter()
    results, failures = featurize(
        all_jobs, cache=FeatureCache(cache_dir), workers=cfg.workers, progress=progress
    )
    feature_seconds = time.perf_counter() - t_feat
    skipped = list(dataset.skipped) + [(p, f"feature extraction failed: {r}") for p, r in failures]

    tr = _rows(train_docs, train_jobs, results)
    tr_all = tr
    if aug_jobs:
        tr_all = concat_rows(tr_all, _rows(train_docs, aug_jobs, results))
    if split_iam:
        tr_all = concat_rows(tr_all, _rows(iam_train, part_jobs[0], results, label="typed"))
        tr_all = concat_rows(tr_all, _rows(iam_train, part_jobs[1], results, label="handwritten"))
    te = _rows(test_docs, test_jobs, results)
    te_rob = _rows(test_docs, robust_jobs, results)
    if te.y.size == 0 or len(np.unique(tr_all.y)) < 2:
        raise DatasetError("no usable page left after feature extraction")

    stage("selecting hyper-parameters by group k-fold CV on the training part")
    algorithms: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for algo in cfg.algorithms:
        params, cv_table = select_params(algo, tr_all, cfg)
        t0 = time.perf_counter()
        model = _fit(algo, params, tr_all, cfg)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p_test = np.asarray(model.predict_proba(te.x))[:, 1]
        infer_ms = 1000 * (time.perf_counter() - t0) / max(te.y.size, 1)
        p_rob = np.asarray(model.predict_proba(te_rob.x))[:, 1]
        models[algo] = model
        algorithms[algo] = {
            "params": params,
            "cv": cv_table,
            "cv_balanced_accuracy": max(r["cv_balanced_accuracy"] for r in cv_table),
            "cv_log_loss": next(r["cv_log_loss"] for r in cv_table if r["params"] == params),
            "fit_seconds": fit_s,
            "inference_ms_per_page": infer_ms,
            "test": classification_metrics(te.y, p_test, sources=te.sources, seed=cfg.seed),
            "robustness": classification_metrics(
                te_rob.y, p_rob, sources=te_rob.sources, seed=cfg.seed
            ),
            "_p_test": p_test,
        }
        if algo == "catboost":
            imp = model.get_feature_importance()
            algorithms[algo]["feature_importance"] = dict(
                sorted(
                    zip(FEATURE_NAMES, map(float, imp), strict=True),
                    key=lambda kv: -kv[1],
                )
            )

    stage("line model")
    line_model, line_section = _line_stage(
        cfg,
        train_docs=train_docs,
        train_jobs=train_jobs,
        aug_jobs=aug_jobs,
        test_docs=test_docs,
        test_jobs=test_jobs,
        results=results,
    )

    stage("reference rows")
    references = _references(
        cfg,
        test_docs=test_docs,
        tr=tr,
        te=te,
        te_rob=te_rob,
        results=results,
        fp_train_jobs=fp_train_jobs,
        fp_test_jobs=fp_test_jobs,
        fp_train_docs=fp_train_docs,
    )
    comparison = None
    if "catboost" in algorithms and "svm" in algorithms:
        comparison = mcnemar(
            te.y,
            (algorithms["catboost"]["_p_test"] >= 0.5).astype(int),
            (algorithms["svm"]["_p_test"] >= 0.5).astype(int),
        )
    roc_data = {a: (te.y, v.pop("_p_test")) for a, v in algorithms.items()}
    diagnostics = _header_diagnostics(models, iam_test, header_jobs, body_jobs, results)
    default_algo, default_reason = choose_default(algorithms)

    version_id = version_id or datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "version": version_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": {
            "path": str(data),
            "manifest_sha256": dataset.manifest_hash(),
            "documents": len(dataset.documents),
            "train_documents": len(train_docs),
            "test_documents": len(test_docs),
            "train_pages": int(tr.y.size),
            "train_rows_with_augmentation": int(tr_all.y.size),
            "test_pages": int(te.y.size),
            "train_groups": len({d.group for d in train_docs}),
            "test_groups": len({d.group for d in test_docs}),
            "groups_on_both_sides": len(
                {d.group for d in train_docs} & {d.group for d in test_docs}
            ),
            "test_by_source": {
                s: int((te.sources == s).sum()) for s in sorted(set(te.sources.tolist()))
            },
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
        },
        "config": {
            "seed": cfg.seed,
            "test_size": cfg.test_size,
            "augment": cfg.augment,
            "iam_header": cfg.iam_header,
            "lang": cfg.lang,
        },
        "algorithms": algorithms,
        "references": references,
        "mcnemar_catboost_vs_svm": comparison,
        "iam_header_diagnostics": diagnostics,
        "lines": line_section,
        "default_algorithm": default_algo,
        "default_algorithm_reason": default_reason,
        "timing": {
            "feature_seconds": feature_seconds,
            "total_seconds": time.perf_counter() - t_start,
        },
    }
    metadata = {
        "id": version_id,
        "created_at": report["created_at"],
        "default_algorithm": default_algo,
        "algorithms": {a: {"params": v["params"]} for a, v in algorithms.items()},
        "training_manifest_sha256": dataset.manifest_hash(),
        "mixed_band": line_section.get("mixed_band"),
        "feature_version": FEATURE_VERSION,
        "ocr_lang": cfg.lang,
        "library_versions": {
            "inkwell": app.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "catboost": catboost.__version__,
        },
        "metrics": {
            a: {
                "test_balanced_accuracy": v["test"]["balanced_accuracy"],
                "robustness_balanced_accuracy": v["robustness"]["balanced_accuracy"],
                "test_roc_auc": v["test"]["roc_auc"],
            }
            for a, v in algorithms.items()
        },
    }
    stage("writing the version")
    with staging_dir(out_dir, version_id) as folder:
        save_models(folder, {**models, "lines": line_model} if line_model else models, metadata)
        write_reports(folder, report, roc_data)
    return TrainResult(version_id=version_id, path=out_dir / version_id, report=report)


def _line_stage(
    cfg: TrainConfig,
    *,
    train_docs: list[Document],
    train_jobs: list[Job],
    aug_jobs: list[Job],
    test_docs: list[Document],
    test_jobs: list[Job],
    results: dict[Job, list[dict[str, Any]]],
) -> tuple[Any, dict[str, Any]]:
    """Train the line model, pick the mixed band on training pages, report test line metrics.

    The model learns from the training pages and their augmented copies (every resolution from
    75 to 400 dpi), so a line's look at one resolution cannot stand in for its label; the mixed
    band is chosen on the original pages only.
    """
    rows = line_rows(train_docs, train_jobs, results)
    fit_rows = rows
    if aug_jobs:
        fit_rows = rows.extend(line_rows(train_docs, aug_jobs, results), page_prefix="aug:")
    if rows.y.size < 20 or len(np.unique(rows.y)) < 2 or len(set(rows.groups.tolist())) < 4:
        return None, {"skipped": "too few labelled lines"}
    oof = out_of_fold(rows, cfg.seed, cfg.threads)
    labels = {
        (d.sha256, int(p["page"])): int(d.label == "handwritten")
        for d, j in zip(train_docs, train_jobs, strict=True)
        for p in results.get(j, [])
    }
    low, high = mixed_band(page_shares(rows, oof), labels)
    model = make_line_model(cfg.seed, cfg.threads)
    model.fit(fit_rows.x, fit_rows.y)
    section: dict[str, Any] = {
        "train_lines": int(fit_rows.y.size),
        "mixed_band": [low, high],
        "train_out_of_fold": line_report(rows, oof, cfg.seed)["all"],
    }
    test = line_rows(test_docs, test_jobs, results)
    if test.y.size:
        p = model.predict_proba(test.x)[:, 1]
        section["test_lines"] = int(test.y.size)
        section["test"] = line_report(test, p, cfg.seed)
        test_labels = {
            (d.sha256, int(pg["page"])): int(d.label == "handwritten")
            for d, j in zip(test_docs, test_jobs, strict=True)
            for pg in results.get(j, [])
        }
        shares = page_shares(test, p)
        section["test_page_shares"] = {
            name: _share_summary([s for k, s in shares.items() if test_labels.get(k) == lab])
            for name, lab in (("typed", 0), ("handwritten", 1))
        }
    return model, section


def _share_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return {
        "n": len(values),
        **{f"p{k}": float(v) for k, v in zip((5, 25, 50, 75, 95), q, strict=True)},
    }


def _header_diagnostics(
    models: dict[str, Any],
    docs: list[Document],
    header_jobs: list[Job],
    body_jobs: list[Job],
    results: dict[Job, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Does the model read handwriting, or the IAM header? Score the two parts of each test form.

    The printed header alone must be called typed and the handwritten body alone handwritten;
    a model that learned "IAM header means handwritten" fails the first.
    """
    header = _rows(docs, header_jobs, results)
    body = _rows(docs, body_jobs, results)
    out: dict[str, Any] = {"forms": len(docs)}
    for algo, model in models.items():
        entry: dict[str, Any] = {}
        if header.y.size:
            p = np.asarray(model.predict_proba(header.x))[:, 1]
            entry["header_only_called_typed"] = float(np.mean(p < 0.5))
            entry["header_pages"] = int(header.y.size)
        if body.y.size:
            p = np.asarray(model.predict_proba(body.x))[:, 1]
            entry["body_only_called_handwritten"] = float(np.mean(p >= 0.5))
            entry["body_pages"] = int(body.y.size)
        out[algo] = entry
    return out


def _geometry_probe(cfg: TrainConfig, tr: Rows, te: Rows, te_rob: Rows) -> dict[str, Any]:
    """The same learner on page width, height and DPI only: what a shortcut would score."""
    probe = make_model("catboost", CATBOOST_GRID[0], seed=cfg.seed, threads=cfg.threads)
    probe.fit(tr.geometry, tr.y)
    return {
        "features": list(GEOMETRY_NAMES),
        "test": classification_metrics(
            te.y, np.asarray(probe.predict_proba(te.geometry))[:, 1], sources=te.sources
        ),
        "robustness": classification_metrics(
            te_rob.y, np.asarray(probe.predict_proba(te_rob.geometry))[:, 1], sources=te_rob.sources
        ),
    }


def _references(
    cfg: TrainConfig,
    *,
    test_docs: list[Document],
    tr: Rows,
    te: Rows,
    te_rob: Rows,
    results: dict[Job, list[dict[str, Any]]],
    fp_train_jobs: list[Job],
    fp_test_jobs: list[Job],
    fp_train_docs: list[Document],
) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    majority = int(np.mean(tr.y) >= 0.5)
    refs["majority_class"] = {
        "test": classification_metrics(
            te.y, np.full(te.y.size, float(majority)), sources=te.sources
        ),
        "robustness": classification_metrics(
            te_rob.y, np.full(te_rob.y.size, float(majority)), sources=te_rob.sources
        ),
    }
    if np.ptp(tr.geometry, axis=0).max() == 0:
        refs["geometry_probe"] = {"skipped": "every training page has the same size and DPI"}
    else:
        refs["geometry_probe"] = _geometry_probe(cfg, tr, te, te_rob)
    if fp_test_jobs:

        def conf(
            docs: list[Document], jobs: list[Job]
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            c, y, s = [], [], []
            for d, j in zip(docs, jobs, strict=True):
                for page in results.get(j, []):
                    c.append(float(page["features"]["fullpage_conf"]))
                    y.append(int(d.label == "handwritten"))
                    s.append(d.source)
            return np.array(c), np.array(y, dtype=int), np.array(s)

        c_tr, y_tr, _ = conf(fp_train_docs, fp_train_jobs)
        c_te, y_te, s_te = conf(test_docs, fp_test_jobs)
        if c_tr.size and c_te.size:
            threshold = _fullpage_threshold(c_tr, y_tr)
            refs["tesseract_fullpage_confidence"] = {
                "threshold": threshold,
                "fit_on_train_pages": int(c_tr.size),
                "test": classification_metrics(y_te, _conf_to_proba(c_te, threshold), sources=s_te),
            }
    return refs
