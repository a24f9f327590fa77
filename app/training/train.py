"""Training and honest evaluation: split figures, leave-one-source-out figures, shipped models.

The headline figure is leave-one-source-out (LOSO, :mod:`app.training.loso`): most sources carry a
single label and differ in resolution, paper and scanning, so a split that keeps a source on both
sides can reward learning the collection instead of the writing. The group-aware split of earlier
versions stays beside it (its test part is touched once, at the end), with the reference rows:
majority class, full-page tesseract confidence threshold, and a geometry probe on page width,
height and DPI, each scored on the test pages as they are and on the robustness test.
"""

from __future__ import annotations

import csv
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from app.models.classifiers import ALGORITHMS, CATBOOST_GRID, make_model, proba_handwritten
from app.models.registry import save_models, staging_dir
from app.training.basepack import PACK_FILE, write_pack
from app.training.corpus import LABEL_CODE, Corpus, Rows, build_corpus, corpus_jobs
from app.training.dataset import PURE_LABELS, Dataset, Document, discover
from app.training.featurize import Job, ProgressFn, featurize, jobs_for
from app.training.fold import (
    FitOptions,
    FoldModels,
    cap_lines,
    fit_fold,
    of_docs,
    predict_rows,
    source_weights,
)
from app.training.lines import line_report
from app.training.loso import conf_to_proba, final_label_counts, fullpage_threshold, run_loso
from app.training.metrics import classification_metrics, mcnemar
from app.training.report import write_reports
from app.training.rows import select_rows

log = logging.getLogger(__name__)

MIN_DOCS_PER_CLASS = 4
GEOMETRY_NAMES = ("width", "height", "dpi")
FULLPAGE_TRAIN_SAMPLE = 40
LOSO_TIE = 0.005
"""LOSO macro accuracies closer than this do not tell the two learners apart."""


@dataclass
class TrainConfig:
    """What a training run does."""

    algorithms: tuple[str, ...] = ALGORITHMS
    seed: int = 42
    test_size: float = 0.25
    augment: bool = True
    iam_header: str = "split"
    """IAM forms in training: ``keep`` whole pages; ``split``: whole pages plus their printed
    header alone (labelled typed) and body alone (handwritten)."""
    fullpage_baseline: bool = True
    lang: str = "eng"
    ocr_timeout: float = 30.0
    workers: int = 1
    threads: int = 1
    loso: bool = False
    """Also run the leave-one-source-out evaluation (one fit per source)."""
    composites: bool = False
    """Also learn from letterhead/signature composites (measured, not the default)."""
    loso_progress: ProgressFn | None = None


@dataclass
class TrainResult:
    """The version written and its report."""

    version_id: str
    path: Path
    report: dict[str, Any]


def split_documents(
    docs: list[Document], *, test_size: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Group-aware split stratified by label; a manifest's split column wins where it is set."""
    fixed_train = [d for d in docs if d.split == "train"]
    fixed_test = [d for d in docs if d.split == "test"]
    free = [d for d in docs if d.split == ""]
    train, test = list(fixed_train), list(fixed_test)
    if free:
        n_splits = max(2, round(1 / max(min(test_size, 0.5), 0.05)))
        y = np.array([LABEL_CODE[d.label] for d in free], dtype=int)
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
    for label in PURE_LABELS:
        n = counts[label]
        if n < MIN_DOCS_PER_CLASS:
            raise DatasetError(
                f"too few '{label}' documents to split into train and test: {n} "
                f"(at least {MIN_DOCS_PER_CLASS} needed); counts: {counts}"
            )


def check_loso_sources(docs: list[Document]) -> None:
    """Refuse a leave-one-source-out run that some fold could not train.

    Raises:
        DatasetError: fewer than 3 sources, or a class held by a single source.
    """
    sources = {d.source for d in docs}
    if len(sources) < 3:
        raise DatasetError(f"leave-one-source-out needs at least 3 sources, not {len(sources)}")
    for label in PURE_LABELS:
        held = {d.source for d in docs if d.label == label}
        if len(held) < 2:
            raise DatasetError(
                f"leave-one-source-out needs '{label}' pages in at least 2 sources "
                f"(found: {', '.join(sorted(held)) or 'none'})"
            )


def choose_default(
    algorithms: dict[str, dict[str, Any]], loso: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The algorithm the service uses by default, and why (never the split's test part).

    With LOSO figures: the best macro final-label accuracy over left-out sources; within
    :data:`LOSO_TIE`, the lower false-``mixed`` rate, then the source-grouped CV log-loss.
    Without: the best source-grouped CV accuracy, ties (within the CV's tie) to lower log-loss.
    """
    names = list(algorithms)
    if loso:
        score = {a: loso["scorers"][a]["overall"]["macro_final_accuracy"] for a in names}
        best = max(names, key=lambda a: score[a])
        tied = [a for a in names if score[best] - score[a] < LOSO_TIE]
        if len(tied) == 1:
            return best, "best leave-one-source-out macro accuracy of the final label"
        choice = min(
            tied,
            key=lambda a: (
                loso["scorers"][a]["overall"]["false_mixed_rate"] or 0.0,
                algorithms[a]["cv_log_loss"],
            ),
        )
        return choice, (
            f"leave-one-source-out macro accuracies within {LOSO_TIE} ({', '.join(tied)}): "
            "fewer false mixed, then lower CV log-loss"
        )
    cv = {a: algorithms[a]["cv_macro_source_accuracy"] or 0.0 for a in names}
    best = max(names, key=lambda a: cv[a])
    tied = [a for a in names if cv[best] - cv[a] < LOSO_TIE]
    if len(tied) == 1:
        return best, "best source-grouped CV accuracy on the training pages"
    choice = min(tied, key=lambda a: algorithms[a]["cv_log_loss"])
    return choice, (
        f"source-grouped CV accuracies within {LOSO_TIE} ({', '.join(tied)}): lowest CV log-loss"
    )


def _fullpage_docs(
    cfg: TrainConfig, docs: list[Document], train_docs: list[Document], test_docs: list[Document]
) -> list[Document]:
    """Documents the full-page OCR reference reads.

    Every pure one with LOSO, else a training sample (to fit its threshold) and the test part.
    """
    if not cfg.fullpage_baseline:
        return []
    if cfg.loso:
        return [d for d in docs if d.label in PURE_LABELS]
    rng = np.random.default_rng(cfg.seed)
    pick = rng.choice(len(train_docs), min(FULLPAGE_TRAIN_SAMPLE, len(train_docs)), replace=False)
    sample = [train_docs[i] for i in sorted(pick)]
    return [d for d in sample + test_docs if d.label in PURE_LABELS]


def _fullpage_conf(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> dict[tuple[str, int], float]:
    return {
        (d.sha256, int(page["page"])): float(page["features"]["fullpage_conf"])
        for d, j in zip(docs, jobs, strict=True)
        for page in results.get(j, [])
    }


def _loso_for_report(loso: dict[str, Any] | None) -> dict[str, Any] | None:
    """The LOSO summary without its per-page rows (those go to loso_pages.csv)."""
    if loso is None:
        return None
    return {k: v for k, v in loso.items() if k != "pages"}


def _metadata_metrics(
    algorithms: dict[str, Any], loso: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for a, v in algorithms.items():
        out[a] = {
            "test_balanced_accuracy": v["test"]["balanced_accuracy"],
            "robustness_balanced_accuracy": v["robustness"]["balanced_accuracy"],
            "test_roc_auc": v["test"]["roc_auc"],
        }
        if loso:
            overall = loso["scorers"][a]["overall"]
            out[a]["loso_macro_final_accuracy"] = overall["macro_final_accuracy"]
            out[a]["loso_false_mixed_rate"] = overall["false_mixed_rate"]
    return out


def write_loso_pages(path: Path, loso: dict[str, Any], docs: list[Document]) -> None:
    """Every left-out page with its true label, share and each scorer's probability and label."""
    by_sha = {d.sha256: d for d in docs}
    rows = loso["pages"]
    fields = sorted({k for r in rows for k in r if ":" in k})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "path", "page", "label", "unsure", "share", *fields])
        for r in rows:
            doc = by_sha.get(r["sha256"])
            share = r["share"]
            writer.writerow(
                [
                    r["source"],
                    doc.path.name if doc else r["sha256"][:12],
                    r["page"],
                    r["label"],
                    "yes" if r.get("unsure") else "",
                    "" if share is None else f"{share:.3f}",
                    *(
                        f"{r[f]:.4f}" if isinstance(r.get(f), float) else r.get(f, "")
                        for f in fields
                    ),
                ]
            )


def library_versions() -> dict[str, str]:
    """The versions a model file depends on (recorded in its metadata)."""
    return {
        "inkwell": app.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "catboost": catboost.__version__,
    }


def save_fold(folder: Path, final: FoldModels, corpus: Corpus, metadata: dict[str, Any]) -> None:
    """Write a fold's page and line models with ``metadata`` (compact forms checked on rows)."""
    models: dict[str, Any] = dict(final.page_models)
    if final.line_model is not None:
        models["lines"] = final.line_model
    verify = dict.fromkeys(final.page_models, corpus.pages.x)
    verify["lines"] = corpus.lines.x
    save_models(folder, models, metadata, verify)


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
    """Train every algorithm on ``data``, evaluate, and write a new version folder atomically.

    Three fits of one procedure (:func:`~app.training.fold.fit_fold`): on the training part of a
    group-aware split (the split figures), on all sources but one for every source (the
    leave-one-source-out figures, when ``cfg.loso``), and on every page (the shipped models).
    """
    cfg = cfg or TrainConfig()
    stage = on_stage or (lambda s: log.info("%s", s))
    for algo in cfg.algorithms:
        if algo not in ALGORITHMS:
            raise DatasetError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    if cfg.iam_header not in ("keep", "split"):
        raise DatasetError(f"iam_header must be keep or split, not {cfg.iam_header!r}")
    t_start = time.perf_counter()
    stage("discovering dataset")
    dataset = discover(data)
    _check_counts(dataset)
    train_docs, test_docs = split_documents(
        dataset.documents, test_size=cfg.test_size, seed=cfg.seed
    )
    for label in PURE_LABELS:
        if not any(d.label == label for d in test_docs) or not any(
            d.label == label for d in train_docs
        ):
            raise DatasetError(f"the split left no '{label}' document on one side; add more data")
        if len({d.group for d in train_docs if d.label == label}) < 2:
            raise DatasetError(
                f"the training part has '{label}' documents from fewer than 2 groups "
                "(writers/documents); add more data or lower test_size"
            )

    docs = dataset.documents
    if cfg.loso:
        check_loso_sources(docs)
    jobs = corpus_jobs(
        docs,
        lang=cfg.lang,
        timeout=cfg.ocr_timeout,
        augment=cfg.augment,
        robust=True,
        iam_parts=cfg.iam_header == "split" or bool(test_docs),
        composites=cfg.composites,
    )
    fp_docs = _fullpage_docs(cfg, docs, train_docs, test_docs)
    fp_jobs = jobs_for(fp_docs, "fullpage", lang=cfg.lang, timeout=cfg.ocr_timeout)
    all_jobs = [j for v in jobs.values() for j in v] + fp_jobs
    stage(f"extracting features: {len(docs)} documents, {len(all_jobs)} jobs")
    t_feat = time.perf_counter()
    results, failures = featurize(
        all_jobs, cache=FeatureCache(cache_dir), workers=cfg.workers, progress=progress
    )
    feature_seconds = time.perf_counter() - t_feat
    skipped = list(dataset.skipped) + [(p, f"feature extraction failed: {r}") for p, r in failures]
    corpus = build_corpus(docs, jobs, results)
    fullpage = _fullpage_conf(fp_docs, fp_jobs, results)
    opts = FitOptions(
        algorithms=cfg.algorithms,
        seed=cfg.seed,
        threads=cfg.threads,
        augment=cfg.augment,
        iam_parts=cfg.iam_header == "split",
        composites=cfg.composites,
    )
    train_sha = {d.sha256 for d in train_docs}
    test_sha = {d.sha256 for d in test_docs}
    te_all = corpus.pages.where(of_docs(corpus.pages.keys, test_sha))
    te = te_all.pure()
    te_rob = corpus.robust.pure().where(of_docs(corpus.robust.pure().keys, test_sha))
    tr = corpus.pages.pure().where(of_docs(corpus.pages.pure().keys, train_sha))
    if te.y.size == 0 or len(np.unique(tr.y)) < 2:
        raise DatasetError("no usable page left after feature extraction")

    stage("split: selecting hyper-parameters by source-grouped CV on the training part")
    split_fold = fit_fold(corpus, train_sha, opts)
    split_pred = predict_rows(split_fold, te_all, corpus.page_lines)
    algorithms: dict[str, Any] = {}
    roc_data: dict[str, tuple[Any, Any]] = {}
    for algo, model in split_fold.page_models.items():
        t0 = time.perf_counter()
        p_test = proba_handwritten(model, te.x)
        infer_ms = 1000 * (time.perf_counter() - t0) / max(te.y.size, 1)
        p_rob = proba_handwritten(model, te_rob.x)
        roc_data[algo] = (te.y, p_test)
        algorithms[algo] = {
            "split_params": split_fold.params[algo],
            "split_cv": split_fold.cv[algo],
            "inference_ms_per_page": infer_ms,
            "test": classification_metrics(te.y, p_test, sources=te.sources, seed=cfg.seed),
            "robustness": classification_metrics(
                te_rob.y, p_rob, sources=te_rob.sources, seed=cfg.seed
            ),
            "test_final_labels": final_label_counts(te_all.y, split_pred.labels[algo]),
        }
    comparison = None
    if "catboost" in algorithms and "svm" in algorithms:
        comparison = mcnemar(
            te.y,
            (roc_data["catboost"][1] >= 0.5).astype(int),
            (roc_data["svm"][1] >= 0.5).astype(int),
        )
    iam_test = [d for d in test_docs if d.source.startswith("iam") and d.label in PURE_LABELS]
    diagnostics = _header_diagnostics(split_fold.page_models, corpus, {d.sha256 for d in iam_test})
    line_section = _line_section(split_fold, corpus, test_sha, cfg.seed)
    references = _references(cfg, tr=tr, te=te, te_rob=te_rob, fullpage=fullpage)

    loso_summary: dict[str, Any] | None = None
    if cfg.loso:
        stage(f"leave-one-source-out: {len(corpus.sources)} folds")
        loso_summary = run_loso(
            corpus, opts, workers=cfg.workers, fullpage=fullpage, progress=cfg.loso_progress
        )

    stage("fitting the shipped models on every page")
    t0 = time.perf_counter()
    final = fit_fold(corpus, {d.sha256 for d in docs}, opts)
    fit_seconds = time.perf_counter() - t0
    for algo, entry in algorithms.items():
        entry.update(
            {
                "params": final.params[algo],
                "cv": final.cv[algo]["table"],
                "cv_macro_source_accuracy": final.cv[algo]["cv_macro_source_accuracy"],
                "cv_log_loss": final.cv[algo]["cv_log_loss"],
                "verdict_rule": final.rules[algo].as_dict(),
            }
        )
        if algo == "catboost":
            imp = final.page_models[algo].get_feature_importance()
            entry["feature_importance"] = dict(
                sorted(zip(FEATURE_NAMES, map(float, imp), strict=True), key=lambda kv: -kv[1])
            )
    default_algo, default_reason = choose_default(algorithms, loso_summary)

    version_id = version_id or datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "version": version_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": {
            "path": str(data),
            "manifest_sha256": dataset.manifest_hash(),
            "documents": len(docs),
            "by_label": dataset.counts(),
            "sources": len(corpus.sources),
            "train_documents": len(train_docs),
            "test_documents": len(test_docs),
            "pages": int(corpus.pages.y.size),
            "train_pages": int(tr.y.size),
            "test_pages": int(te.y.size),
            "test_mixed_pages": int((te_all.y == 2).sum()),
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
            "weights": "source-balanced",
            "composites": cfg.composites,
            "cv_grouping": final.cv_grouping,
        },
        "algorithms": algorithms,
        "references": references,
        "mcnemar_catboost_vs_svm": comparison,
        "iam_header_diagnostics": diagnostics,
        "lines": line_section,
        "loso": _loso_for_report(loso_summary),
        "default_algorithm": default_algo,
        "default_algorithm_reason": default_reason,
        "timing": {
            "feature_seconds": feature_seconds,
            "final_fit_seconds": fit_seconds,
            "loso_seconds": loso_summary["seconds"] if loso_summary else None,
            "total_seconds": time.perf_counter() - t_start,
        },
    }
    metadata = {
        "id": version_id,
        "created_at": report["created_at"],
        "default_algorithm": default_algo,
        "algorithms": {a: {"params": final.params[a]} for a in algorithms},
        "verdict_rules": {a: r.as_dict() for a, r in final.rules.items()},
        "training_manifest_sha256": dataset.manifest_hash(),
        "feature_version": FEATURE_VERSION,
        "ocr_lang": cfg.lang,
        "library_versions": library_versions(),
        "metrics": _metadata_metrics(algorithms, loso_summary),
    }
    stage("writing the version")
    with staging_dir(out_dir, version_id) as folder:
        save_fold(folder, final, corpus, metadata)
        write_reports(folder, report, roc_data)
        if loso_summary is not None:
            write_loso_pages(folder / "loso_pages.csv", loso_summary, docs)
        write_pack(
            folder / PACK_FILE,
            docs,
            jobs,
            results,
            lang=cfg.lang,
            version=version_id,
            loso=loso_summary,
            loso_algorithm=default_algo,
        )
    return TrainResult(version_id=version_id, path=out_dir / version_id, report=report)


def _line_section(
    fold: FoldModels, corpus: Corpus, test_sha: set[str], seed: int
) -> dict[str, Any]:
    """Line metrics of the split's line model on the test documents' labelled lines."""
    if fold.line_model is None:
        return {"skipped": "too few labelled lines"}
    keys = [(k[0].removeprefix("aug:"), k[1]) for k in corpus.lines.pages]
    is_aug = np.array([k[0].startswith("aug:") for k in corpus.lines.pages], dtype=bool)
    test = select_rows(corpus.lines, of_docs(keys, test_sha) & ~is_aug)
    train = select_rows(corpus.lines, ~of_docs(keys, test_sha))
    train_n = int(cap_lines(train, FitOptions().line_cap, seed).y.size)
    section: dict[str, Any] = {
        "train_lines": train_n,
        "test_lines": int(test.y.size),
        "label_cleaning": dict(fold.line_cleaning),
    }
    if test.y.size:
        p = proba_handwritten(fold.line_model, test.x)
        section["test"] = line_report(test, p, seed)
    return section


def _header_diagnostics(
    models: dict[str, Any], corpus: Corpus, iam_test: set[str]
) -> dict[str, Any]:
    """Does the model read handwriting, or the IAM header? Score the two parts of each test form.

    The printed header alone must be called typed and the handwritten body alone handwritten;
    a model that learned "IAM header means handwritten" fails the first.
    """
    parts = corpus.parts.where(of_docs(corpus.parts.keys, iam_test))
    header = parts.where(parts.y == 0)
    body = parts.where(parts.y == 1)
    out: dict[str, Any] = {"forms": len(iam_test)}
    if not iam_test:
        return out
    for algo, model in models.items():
        entry: dict[str, Any] = {}
        if header.y.size:
            entry["header_only_called_typed"] = float(
                np.mean(proba_handwritten(model, header.x) < 0.5)
            )
            entry["header_pages"] = int(header.y.size)
        if body.y.size:
            entry["body_only_called_handwritten"] = float(
                np.mean(proba_handwritten(model, body.x) >= 0.5)
            )
            entry["body_pages"] = int(body.y.size)
        out[algo] = entry
    return out


def _geometry_probe(cfg: TrainConfig, tr: Rows, te: Rows, te_rob: Rows) -> dict[str, Any]:
    """The same learner on page width, height and DPI only: what a shortcut would score."""
    probe = make_model("catboost", CATBOOST_GRID[0], seed=cfg.seed, threads=cfg.threads)
    probe.fit(tr.geometry, tr.y, sample_weight=source_weights(tr.sources, tr.y))
    return {
        "features": list(GEOMETRY_NAMES),
        "test": classification_metrics(
            te.y, proba_handwritten(probe, te.geometry), sources=te.sources
        ),
        "robustness": classification_metrics(
            te_rob.y, proba_handwritten(probe, te_rob.geometry), sources=te_rob.sources
        ),
    }


def _references(
    cfg: TrainConfig,
    *,
    tr: Rows,
    te: Rows,
    te_rob: Rows,
    fullpage: dict[tuple[str, int], float],
) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    majority = int(np.average(tr.y, weights=source_weights(tr.sources, tr.y)) >= 0.5)
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
    known_tr = np.array([k in fullpage for k in tr.keys], dtype=bool)
    known_te = np.array([k in fullpage for k in te.keys], dtype=bool)
    if known_tr.any() and known_te.any():
        c_tr = np.array([fullpage[k] for k in tr.keys if k in fullpage])
        c_te = np.array([fullpage[k] for k in te.keys if k in fullpage])
        w = source_weights(tr.sources, tr.y)[known_tr]
        threshold = fullpage_threshold(c_tr, tr.y[known_tr], w)
        refs["tesseract_fullpage_confidence"] = {
            "threshold": threshold,
            "fit_on_train_pages": int(c_tr.size),
            "test": classification_metrics(
                te.y[known_te], conf_to_proba(c_te, threshold), sources=te.sources[known_te]
            ),
        }
    return refs
