"""Retrain on a version's base features plus the user's own pages, with a guard on the base.

The base (:mod:`app.training.basepack`) is rebuilt exactly as its version learned it; the user's
pages join it as sources of their own (``user:<source>``), weighted as ``user_weight`` ordinary
sources, so that a few dozen pages count among the base's thousands of rows without drowning
them. Every choice inside a fit is made as in any training (:func:`~app.training.fold.fit_fold`).

Two figures, side by side:

- **the base's leave-one-source-out figures**: every base source left out in turn, the other
  base sources *and the user's pages* learned from; compared with the base version's own LOSO
  verdicts on the same sources (kept in its pack). A version whose macro final accuracy or
  balanced accuracy falls more than ``max_drop`` below the base's is flagged: the caller does not
  activate it unless told to.
- **the user's pages, cross-validated by document group**: each fold learns from the base and the
  other groups' pages; beside it, what the base alone (fitted the same way, without any user
  page) says of the same pages.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from app.errors import DatasetError
from app.features import FEATURE_VERSION
from app.features.cache import FeatureCache
from app.models.classifiers import ALGORITHMS
from app.models.registry import atomic_write_text, staging_dir
from app.training.basepack import PACK_FILE, BasePack, read_pack, write_pack
from app.training.corpus import Corpus, build_corpus, corpus_jobs
from app.training.dataset import PURE_LABELS, Document, discover
from app.training.featurize import Job, ProgressFn, featurize
from app.training.fold import FitOptions, fit_fold, of_docs, predict_rows
from app.training.loso import CODE_LABEL, run_loso
from app.training.train import TrainResult, library_versions, save_fold, write_loso_pages

log = logging.getLogger(__name__)

USER_PREFIX = "user:"
USER_WEIGHT = 5.0
"""The user's pages weigh as much as this many base sources (each label apart)."""
MAX_DROP = 0.01
"""A retrained version whose base figures fall more than this is not activated by default."""
USER_FOLDS = 5


@dataclass
class ExtendConfig:
    """What a retraining on base + user pages does."""

    algorithms: tuple[str, ...] = ALGORITHMS
    seed: int = 42
    user_weight: float = USER_WEIGHT
    exclude_sources: tuple[str, ...] = ()
    """Base sources left out of the base altogether (say, to measure a source as a user would)."""
    augment: bool = True
    loso: bool = True
    """Measure the base's LOSO figures (one fit per base source); without them the guard cannot
    pass."""
    user_folds: int = USER_FOLDS
    max_drop: float = MAX_DROP
    lang: str = "eng"
    ocr_timeout: float = 30.0
    workers: int = 1
    threads: int = 1
    loso_progress: ProgressFn | None = None


def figures(pages: list[tuple[str, str, str, bool]]) -> dict[str, Any]:
    """Macro final accuracy over sources and balanced accuracy of pure pages.

    ``pages``: (source, true label, predicted label, unsure); unsure pages are left out, as in
    every headline figure.
    """
    sure = [(s, t, p) for s, t, p, u in pages if not u]
    per_source: dict[str, list[bool]] = {}
    for s, t, p in sure:
        per_source.setdefault(s, []).append(t == p)
    recalls = [
        float(np.mean([p == label for _, t, p in sure if t == label]))
        for label in PURE_LABELS
        if any(t == label for _, t, _p in sure)
    ]
    pure = [(t, p) for _, t, p in sure if t in PURE_LABELS]
    return {
        "sources": len(per_source),
        "pages": len(sure),
        "macro_final_accuracy": float(np.mean([np.mean(v) for v in per_source.values()]))
        if per_source
        else None,
        "pure_balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "false_mixed": sum(p == "mixed" for _, p in pure),
        "per_source": {s: float(np.mean(v)) for s, v in sorted(per_source.items())},
    }


def guard(base: dict[str, Any], new: dict[str, Any] | None, max_drop: float) -> dict[str, Any]:
    """Whether ``new`` base figures stay within ``max_drop`` of ``base``'s, and by how much."""
    if new is None or base.get("macro_final_accuracy") is None:
        return {
            "passed": False,
            "reason": "the base's leave-one-source-out figures were not measured",
        }
    drops = {
        k: float(base[k] - new[k])
        for k in ("macro_final_accuracy", "pure_balanced_accuracy")
        if base.get(k) is not None and new.get(k) is not None
    }
    worst = max(drops, key=lambda k: drops[k])
    passed = drops[worst] <= max_drop
    reason = (
        f"base figures within {max_drop:.3f} of the base version's"
        if passed
        else f"{worst} fell by {drops[worst]:.3f} (more than {max_drop:.3f})"
    )
    return {"passed": passed, "max_drop": max_drop, "drops": drops, "reason": reason}


def _user_docs(data: Path) -> tuple[list[Document], list[tuple[str, str]]]:
    dataset = discover(data)
    if not dataset.documents:
        raise DatasetError(f"no labelled page found in {data}")
    docs = [replace(d, source=f"{USER_PREFIX}{d.source}") for d in dataset.documents]
    return docs, list(dataset.skipped)


def _check_settings(pack: BasePack, lang: str) -> None:
    probe = Job(path=Path(), sha256="", variant="orig", crop_body=False, lang=lang, timeout=1)
    if pack.settings_key and probe.settings_key() != pack.settings_key:
        raise DatasetError(
            f"the base features were extracted with settings {pack.settings_key!r}, this service "
            f"reads pages with {probe.settings_key()!r} (INKWELL_OCR_LANG): they cannot be mixed"
        )


def _combined(
    pack: BasePack,
    user: list[Document],
    cfg: ExtendConfig,
    cache_dir: Path | None,
    progress: ProgressFn | None,
) -> tuple[Corpus, list[tuple[str, str]], float]:
    """The base's corpus with the user's pages (featurised here, cached) joined in."""
    user_jobs = corpus_jobs(
        user,
        lang=cfg.lang,
        timeout=cfg.ocr_timeout,
        augment=cfg.augment,
        robust=False,
        iam_parts=False,
        filled=False,
    )
    t0 = time.perf_counter()
    results, failures = featurize(
        [j for js in user_jobs.values() for j in js],
        cache=FeatureCache(cache_dir),
        workers=cfg.workers,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    jobs = {kind: list(js) for kind, js in pack.jobs.items() if kind != "aug" or cfg.augment}
    for kind, js in user_jobs.items():
        jobs[kind] = jobs.get(kind, []) + js
    merged = {**pack.results, **results}
    return build_corpus(pack.docs + user, jobs, merged), failures, seconds


def _user_cv(
    corpus: Corpus, base_sha: set[str], user: list[Document], opts: FitOptions, folds: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each user page's label from the base alone and from the grouped cross-validation."""
    rows = corpus.pages.where(of_docs(corpus.pages.keys, {d.sha256 for d in user}))
    by_sha = {d.sha256: d for d in user}
    groups = np.array([by_sha[k[0]].group for k in rows.keys])
    alone = predict_rows(fit_fold(corpus, base_sha, opts), rows, corpus.page_lines)
    cv_labels = {a: np.full(rows.y.size, "", dtype=object) for a in opts.algorithms}
    n_groups = len(set(groups.tolist()))
    k = min(folds, n_groups)
    info: dict[str, Any] = {"groups": n_groups, "folds": k}
    if k >= 2:
        for _, test in GroupKFold(n_splits=k).split(rows.x, rows.y, groups):
            held = set(groups[test].tolist())
            train = base_sha | {d.sha256 for d in user if d.group not in held}
            pred = predict_rows(
                fit_fold(corpus, train, opts),
                rows.where(np.isin(np.arange(rows.y.size), test)),
                corpus.page_lines,
            )
            for a in opts.algorithms:
                cv_labels[a][test] = pred.labels[a]
    else:
        info["skipped"] = "fewer than 2 document groups among the user's pages"
    pages = []
    for i, key in enumerate(rows.keys):
        doc = by_sha[key[0]]
        entry: dict[str, Any] = {
            "document": doc.path.name,
            "sha256": key[0],
            "page": key[1],
            "group": doc.group,
            "label": CODE_LABEL[int(rows.y[i])],
        }
        for a in opts.algorithms:
            entry[f"base_alone:{a}"] = str(alone.labels[a][i])
            if k >= 2:
                entry[f"cross_validated:{a}"] = str(cv_labels[a][i])
        pages.append(entry)
    return pages, info


def _accuracy(pages: list[dict[str, Any]], column: str) -> float | None:
    scored = [p for p in pages if column in p]
    return float(np.mean([p[column] == p["label"] for p in scored])) if scored else None


def train_extended(
    data: Path,
    *,
    base_dir: Path,
    out_dir: Path,
    cache_dir: Path | None,
    cfg: ExtendConfig | None = None,
    version_id: str | None = None,
    progress: ProgressFn | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Retrain on ``base_dir``'s base features plus the labelled pages of ``data``.

    Writes a new version (atomically) whose report holds both figures and the guard's verdict.
    """
    cfg = cfg or ExtendConfig()
    stage = on_stage or (lambda s: log.info("%s", s))
    t_start = time.perf_counter()
    for algo in cfg.algorithms:
        if algo not in ALGORITHMS:
            raise DatasetError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}")
    stage("reading the base features")
    pack = read_pack(base_dir / PACK_FILE, timeout=cfg.ocr_timeout)
    _check_settings(pack, cfg.lang)
    unknown = set(cfg.exclude_sources) - set(pack.sources)
    if unknown:
        raise DatasetError(f"no base source {', '.join(sorted(unknown))} to leave out")
    stage("discovering the user's pages")
    user, skipped = _user_docs(data)
    pack = pack.without(sources=set(cfg.exclude_sources), sha256={d.sha256 for d in user})
    stage(f"extracting features of {len(user)} user documents")
    corpus, failures, feature_seconds = _combined(pack, user, cfg, cache_dir, progress)
    skipped += [(p, f"feature extraction failed: {r}") for p, r in failures]
    user_sources = sorted({d.source for d in user})
    opts = FitOptions(
        algorithms=cfg.algorithms,
        seed=cfg.seed,
        threads=cfg.threads,
        augment=cfg.augment,
        boost=tuple((s, cfg.user_weight) for s in user_sources),
    )
    algo = pack.loso_algorithm if pack.loso_algorithm in cfg.algorithms else cfg.algorithms[0]
    base_sha = {d.sha256 for d in pack.docs}

    loso: dict[str, Any] | None = None
    base_before = figures([(p.source, p.label, p.predicted, p.unsure) for p in pack.loso_pages])
    base_after: dict[str, Any] | None = None
    if cfg.loso:
        stage(f"leave-one-source-out on the base: {len(pack.sources)} folds")
        loso = run_loso(
            corpus, opts, workers=cfg.workers, progress=cfg.loso_progress, sources=pack.sources
        )
        base_after = figures(
            [
                (p["source"], p["label"], p[f"{algo}:labels"], bool(p["unsure"]))
                for p in loso["pages"]
            ]
        )
    verdict = guard(base_before, base_after, cfg.max_drop)

    stage("cross-validating on the user's pages by document group")
    user_pages, cv_info = _user_cv(corpus, base_sha, user, opts, cfg.user_folds)

    stage("fitting the version on the base and every user page")
    final = fit_fold(corpus, base_sha | {d.sha256 for d in user}, opts)
    version_id = version_id or datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")
    user_section = {
        **cv_info,
        "documents": len(user),
        "pages": len(user_pages),
        "by_label": {
            lab: sum(p["label"] == lab for p in user_pages)
            for lab in ("typed", "handwritten", "mixed")
        },
        "accuracy": {
            a: {
                "base_alone": _accuracy(user_pages, f"base_alone:{a}"),
                "cross_validated": _accuracy(user_pages, f"cross_validated:{a}"),
            }
            for a in cfg.algorithms
        },
    }
    report: dict[str, Any] = {
        "version": version_id,
        "kind": "base + user pages",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": {
            "version": pack.version,
            "from": str(base_dir),
            "documents": len(pack.docs),
            "sources": len(pack.sources),
            "left_out_sources": list(cfg.exclude_sources),
            "algorithm": algo,
            "loso_before": base_before,
            "loso_after": base_after,
        },
        "user": {
            "path": str(data),
            "sources": user_sources,
            "weight": cfg.user_weight,
            **user_section,
        },
        "guard": verdict,
        "default_algorithm": algo,
        "default_algorithm_reason": "the base version's default algorithm",
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "timing": {
            "feature_seconds": feature_seconds,
            "loso_seconds": loso["seconds"] if loso else None,
            "total_seconds": time.perf_counter() - t_start,
        },
    }
    metadata = {
        "id": version_id,
        "created_at": report["created_at"],
        "default_algorithm": algo,
        "algorithms": {a: {"params": final.params[a]} for a in cfg.algorithms},
        "verdict_rules": {a: r.as_dict() for a, r in final.rules.items()},
        "training": {"base": pack.version, "user_pages": len(user_pages), "guard": verdict},
        "feature_version": FEATURE_VERSION,
        "ocr_lang": cfg.lang,
        "library_versions": library_versions(),
        "metrics": {},
    }
    stage("writing the version")
    with staging_dir(out_dir, version_id) as folder:
        save_fold(folder, final, corpus, metadata)
        atomic_write_text(folder / "report.json", json.dumps(report, indent=1, sort_keys=True))
        atomic_write_text(folder / "report.md", extended_report_md(report))
        _write_user_pages(folder / "user_pages.csv", user_pages)
        if loso is not None:
            write_loso_pages(folder / "loso_pages.csv", loso, pack.docs)
        # the base stays the base: a later retraining on new corrections starts from it again
        write_pack(
            folder / PACK_FILE,
            pack.docs,
            pack.jobs,
            pack.results,
            lang=pack.lang,
            version=pack.version,
            loso={
                "pages": [
                    {
                        "source": p.source,
                        "label": p.label,
                        f"{algo}:labels": p.predicted,
                        "unsure": p.unsure,
                    }
                    for p in pack.loso_pages
                ]
            },
            loso_algorithm=algo,
        )
    return TrainResult(version_id=version_id, path=out_dir / version_id, report=report)


def _write_user_pages(path: Path, pages: list[dict[str, Any]]) -> None:
    fields = list(pages[0]) if pages else ["document", "page", "label"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(pages)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def extended_report_md(report: dict[str, Any]) -> str:
    """The two figures side by side, and the guard's verdict, as Markdown."""
    base, user, verdict = report["base"], report["user"], report["guard"]
    before, after = base["loso_before"], base["loso_after"] or {}
    lines = [
        f"# {report['version']}: base `{base['version']}` + {user['pages']} user pages",
        "",
        f"Algorithm: {base['algorithm']}; user pages weigh {user['weight']:g} base sources.",
        "",
        f"## The base, leave-one-source-out ({before['sources']} sources)",
        "",
        "| | base version | this version |",
        "|---|---|---|",
    ]
    for key, name in (
        ("macro_final_accuracy", "macro final accuracy"),
        ("pure_balanced_accuracy", "balanced accuracy, pure pages"),
        ("false_mixed", "false mixed"),
    ):
        b, a = before.get(key), after.get(key)
        fmt = (lambda v: str(v) if v is not None else "–") if key == "false_mixed" else _pct
        lines.append(f"| {name} | {fmt(b)} | {fmt(a)} |")
    lines += [
        "",
        f"Guard: **{'passed' if verdict['passed'] else 'not passed'}**: {verdict['reason']}.",
        "",
        f"## The user's pages ({user['pages']} pages, {user['groups']} document groups, "
        f"{user['folds']} folds)",
        "",
        "| algorithm | base alone | base + the other groups' pages (cross-validated) |",
        "|---|---|---|",
    ]
    for algo, acc in user["accuracy"].items():
        lines.append(f"| {algo} | {_pct(acc['base_alone'])} | {_pct(acc['cross_validated'])} |")
    return "\n".join(lines) + "\n"
