"""Leave-one-source-out evaluation: train on all sources but one, score the one left out.

Every fold runs :func:`~app.training.fold.fit_fold` on the other sources, so hyper-parameters,
the line model and the verdict rule are all chosen without the left-out source. The figure that
matters is the **final label** (what the API returns): a pure page called ``mixed`` is wrong.
Reference rows: the majority class, the geometry probe (page width, height and DPI only) and,
when full-page OCR results are given, the full-page tesseract confidence threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from app.models.classifiers import CATBOOST_GRID, make_model, proba_handwritten
from app.processes import worker_pool
from app.training.corpus import Corpus
from app.training.fold import FitOptions, fit_fold, predict_rows, source_weights

log = logging.getLogger(__name__)

CODE_LABEL = {0: "typed", 1: "handwritten", 2: "mixed"}
ProgressFn = Callable[[int, int], None]

_CORPUS: Corpus | None = None
_FULLPAGE: dict[tuple[str, int], float] | None = None


def _init(corpus: Corpus, fullpage: dict[tuple[str, int], float] | None) -> None:
    global _CORPUS, _FULLPAGE
    _CORPUS, _FULLPAGE = corpus, fullpage


def _pure_labels(p: np.ndarray) -> np.ndarray:
    return np.where(p >= 0.5, "handwritten", "typed").astype(str)


def fullpage_threshold(conf: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Confidence threshold (below = handwritten) with the best weighted balanced accuracy."""
    best_t, best = 50.0, -1.0
    for t in np.arange(5, 100, 1.0):
        pred = (conf < t).astype(int)
        score = 0.0
        for k in (0, 1):
            sel = y == k
            if sel.any():
                score += float(np.average(pred[sel] == k, weights=w[sel])) / 2
        if score > best:
            best, best_t = score, float(t)
    return best_t


def conf_to_proba(conf: np.ndarray, threshold: float) -> np.ndarray:
    """A soft 'handwritten' probability from a full-page mean OCR confidence and its threshold."""
    return np.asarray(1.0 / (1.0 + np.exp((conf - threshold) / 5.0)))


def run_fold(source: str, opts: FitOptions) -> dict[str, Any]:
    """Fit on every source but ``source``; predicted labels of its pages (and robust copies)."""
    corpus, fullpage = _CORPUS, _FULLPAGE
    assert corpus is not None
    t0 = time.perf_counter()
    train = {s for s in corpus.sources if s != source}
    fold = fit_fold(corpus, {d.sha256 for d in corpus.docs if d.source != source}, opts)
    test = corpus.pages.where(corpus.pages.sources == source)
    rob = corpus.robust.where(corpus.robust.sources == source)
    pred = predict_rows(fold, test, corpus.page_lines)
    pred_rob = predict_rows(fold, rob, corpus.robust_lines)
    unsure = {d.sha256 for d in corpus.docs if d.unsure}
    out: dict[str, Any] = {
        "source": source,
        "y": test.y.tolist(),
        "unsure": [k[0] in unsure for k in test.keys],
        "keys": [list(k) for k in test.keys],
        "share": [None if np.isnan(s) else float(s) for s in pred.share],
        "scorers": {},
        "params": fold.params,
        "cv_grouping": fold.cv_grouping,
        "rules": {a: r.as_dict() for a, r in fold.rules.items()},
    }
    for algo in fold.page_models:
        out["scorers"][algo] = {
            "p": pred.p[algo].tolist(),
            "labels": pred.labels[algo].tolist(),
            "robust_y": rob.y.tolist(),
            "robust_labels": pred_rob.labels[algo].tolist(),
        }
    pure = corpus.pages.pure()
    train_rows = pure.where(np.isin(pure.sources, list(train)))
    w = source_weights(train_rows.sources, train_rows.y)
    majority = int(np.average(train_rows.y, weights=w) >= 0.5)
    out["scorers"]["majority class"] = {
        "p": [float(majority)] * test.y.size,
        "labels": [CODE_LABEL[majority]] * test.y.size,
        "robust_y": rob.y.tolist(),
        "robust_labels": [CODE_LABEL[majority]] * rob.y.size,
    }
    probe = make_model("catboost", CATBOOST_GRID[0], seed=opts.seed, threads=1, balanced=False)
    probe.fit(train_rows.geometry, train_rows.y, sample_weight=w)
    p_geo = proba_handwritten(probe, test.geometry)
    p_geo_rob = proba_handwritten(probe, rob.geometry) if rob.y.size else np.zeros(0)
    out["scorers"]["geometry probe"] = {
        "p": p_geo.tolist(),
        "labels": _pure_labels(p_geo).tolist(),
        "robust_y": rob.y.tolist(),
        "robust_labels": _pure_labels(p_geo_rob).tolist(),
    }
    if fullpage:
        known = [k in fullpage for k in train_rows.keys]
        conf_tr = np.array([fullpage[k] for k in train_rows.keys if k in fullpage])
        if conf_tr.size:
            t = fullpage_threshold(conf_tr, train_rows.y[known], w[known])
            conf_te = np.array([fullpage.get(k, np.nan) for k in test.keys])
            p_fp = np.where(np.isnan(conf_te), 0.5, conf_to_proba(conf_te, t))
            out["scorers"]["tesseract full-page confidence"] = {
                "p": p_fp.tolist(),
                "labels": _pure_labels(p_fp).tolist(),
                "threshold": t,
            }
    out["seconds"] = time.perf_counter() - t0
    return out


def run_loso(
    corpus: Corpus,
    opts: FitOptions,
    *,
    workers: int = 1,
    fullpage: dict[tuple[str, int], float] | None = None,
    progress: ProgressFn | None = None,
    sources: list[str] | None = None,
) -> dict[str, Any]:
    """Every fold (``sources``: only those left out), then the summary tables."""
    left_out = sources or corpus.sources
    t0 = time.perf_counter()
    folds: list[dict[str, Any]] = []
    if progress:
        progress(0, len(left_out))
    if workers <= 1 or len(left_out) <= 1:
        _init(corpus, fullpage)
        for s in left_out:
            folds.append(run_fold(s, opts))
            if progress:
                progress(len(folds), len(left_out))
    else:
        opts = replace(opts, threads=1)  # one learner thread per fold process: no oversubscription
        with worker_pool(workers, initializer=_init, initargs=(corpus, fullpage)) as pool:
            for res in pool.map(run_fold, left_out, [opts] * len(left_out)):
                folds.append(res)
                if progress:
                    progress(len(folds), len(left_out))
    return summarise(folds, seconds=time.perf_counter() - t0)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def final_label_counts(y: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy of final labels (y: 0 typed, 1 handwritten, 2 mixed), false and true mixed."""
    truth = np.array([CODE_LABEL[int(v)] for v in y])
    pure = y < 2
    return {
        "pages": int(y.size),
        "accuracy": float(np.mean(labels == truth)) if y.size else None,
        "false_mixed": int(np.sum(labels[pure] == "mixed")),
        "mixed_pages": int(np.sum(~pure)),
        "mixed_called_mixed": int(np.sum(labels[~pure] == "mixed")),
    }


def _source_metrics(
    y: np.ndarray, labels: np.ndarray, p: np.ndarray, robust: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, Any]:
    truth = np.array([CODE_LABEL[int(v)] for v in y])
    pure = y < 2
    page_ok = (p[pure] >= 0.5).astype(int) == y[pure]
    counts = final_label_counts(y, labels)
    out: dict[str, Any] = {
        "pages": counts["pages"],
        "pure_pages": int(pure.sum()),
        "mixed_pages": counts["mixed_pages"],
        "page_accuracy": float(page_ok.mean()) if pure.any() else None,
        "final_accuracy": counts["accuracy"],
        "false_mixed": counts["false_mixed"],
        "false_mixed_rate": _rate(counts["false_mixed"], int(pure.sum())),
        "mixed_called_mixed": counts["mixed_called_mixed"],
        "errors": {
            f"{t}->{lab}": int(np.sum((truth == t) & (labels == lab)))
            for t in ("typed", "handwritten", "mixed")
            for lab in ("typed", "handwritten", "mixed")
            if t != lab and np.any((truth == t) & (labels == lab))
        },
    }
    if robust is not None and robust[0].size:
        ry, rl = robust
        rtruth = np.array([CODE_LABEL[int(v)] for v in ry])
        out["robust_final_accuracy"] = float(np.mean(rl == rtruth))
    return out


def summarise(folds: list[dict[str, Any]], *, seconds: float = 0.0) -> dict[str, Any]:
    """Per source and overall figures for every scorer."""
    scorers: list[str] = []
    for f in folds:
        scorers += [s for s in f["scorers"] if s not in scorers]
    table: dict[str, Any] = {}
    for scorer in scorers:
        per_source: dict[str, Any] = {}
        ys, labs = [], []
        for f in sorted(folds, key=lambda f: str(f["source"])):
            sc = f["scorers"].get(scorer)
            if sc is None:
                continue
            sure = ~np.array(f.get("unsure", [False] * len(f["y"])), dtype=bool)
            y = np.array(f["y"], dtype=int)[sure]
            labels = np.array(sc["labels"], dtype=str)[sure]
            robust = None
            if "robust_labels" in sc:
                robust = (np.array(sc["robust_y"], dtype=int), np.array(sc["robust_labels"], str))
            per_source[f["source"]] = _source_metrics(
                y, labels, np.array(sc["p"], dtype=float)[sure], robust
            )
            ys.append(y)
            labs.append(labels)
        y_all = np.concatenate(ys) if ys else np.zeros(0, dtype=int)
        l_all = np.concatenate(labs) if labs else np.zeros(0, dtype=str)
        pure = y_all < 2
        recalls = [
            float(np.mean(l_all[y_all == k] == CODE_LABEL[k])) for k in (0, 1) if (y_all == k).any()
        ]
        finals = [
            m["final_accuracy"] for m in per_source.values() if m["final_accuracy"] is not None
        ]
        pages = [m["page_accuracy"] for m in per_source.values() if m["page_accuracy"] is not None]
        robust_acc = [
            m["robust_final_accuracy"] for m in per_source.values() if "robust_final_accuracy" in m
        ]
        table[scorer] = {
            "per_source": per_source,
            "overall": {
                "sources": len(per_source),
                "pages": int(y_all.size),
                "macro_final_accuracy": float(np.mean(finals)) if finals else None,
                "min_final_accuracy": float(np.min(finals)) if finals else None,
                "macro_page_accuracy": float(np.mean(pages)) if pages else None,
                "pure_balanced_accuracy": float(np.mean(recalls)) if recalls else None,
                "false_mixed": int(np.sum(l_all[pure] == "mixed")),
                "false_mixed_rate": _rate(int(np.sum(l_all[pure] == "mixed")), int(pure.sum())),
                "mixed_pages": int(np.sum(y_all == 2)),
                "mixed_called_mixed": int(np.sum(l_all[y_all == 2] == "mixed")),
                "macro_robust_final_accuracy": float(np.mean(robust_acc)) if robust_acc else None,
                "sources_below_0_8": sorted(
                    s for s, m in per_source.items() if (m["final_accuracy"] or 0) < 0.8
                ),
            },
        }
    pages = [
        {
            "source": f["source"],
            "sha256": key[0],
            "page": key[1],
            "label": CODE_LABEL[int(y)],
            "unsure": bool(f.get("unsure", [False] * len(f["y"]))[i]),
            "share": f["share"][i],
            **{
                f"{name}:{field}": sc[field][i]
                for name, sc in f["scorers"].items()
                for field in ("p", "labels")
            },
        }
        for f in folds
        for i, (key, y) in enumerate(zip(f["keys"], f["y"], strict=True))
    ]
    return {
        "folds": len(folds),
        "pages": pages,
        "unsure_pages": [
            {k: v for k, v in page.items() if k in {"source", "label"} or k.endswith("labels")}
            | {"sha256": page["sha256"], "page": page["page"]}
            for page in pages
            if page["unsure"]
        ],
        "seconds": seconds,
        "fold_seconds": {f["source"]: f["seconds"] for f in folds},
        "params": {f["source"]: f["params"] for f in folds},
        "rules": {f["source"]: f["rules"] for f in folds},
        "scorers": table,
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _run_options(options: dict[str, Any] | None) -> str:
    """How an ``evaluate --loso`` run was made, for its table's heading ('' when not recorded)."""
    if not options:
        return ""
    parts = [f"seed {options.get('seed')}"]
    parts.append("label check " + ("on" if options.get("clean_lines", True) else "off"))
    if options.get("composites"):
        parts.append("with composites")
    return " · " + ", ".join(parts)


def loso_table(summary: dict[str, Any]) -> str:
    """The LOSO figures as Markdown: one overall row per scorer, then one row per source."""
    scorers = summary["scorers"]
    out = [
        f"**Leave-one-source-out** ({summary['folds']} folds: train on the other sources, "
        "score the one left out; final label = what the API returns, `mixed` on a pure page is "
        f"wrong){_run_options(summary.get('options'))}",
        "",
        "| scorer | macro final accuracy | lowest source | macro page accuracy "
        "| balanced accuracy (pure pages) | false mixed | mixed called mixed "
        "| macro robustness accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = [s for s in ("catboost", "svm") if s in scorers]
    order += sorted(s for s in scorers if s not in order)
    for name in order:
        o = scorers[name]["overall"]
        fm = o["false_mixed_rate"]
        out.append(
            f"| {name} | {_pct(o['macro_final_accuracy'])} | {_pct(o['min_final_accuracy'])} "
            f"| {_pct(o['macro_page_accuracy'])} | {_pct(o['pure_balanced_accuracy'])} "
            f"| {o['false_mixed']} ({100 * (fm or 0):.1f} %) "
            f"| {o['mixed_called_mixed']} of {o['mixed_pages']} "
            f"| {_pct(o['macro_robust_final_accuracy'])} |"
        )
    learners = [s for s in scorers if s in ("catboost", "svm")]
    unsure = summary.get("unsure_pages") or []
    if unsure and learners:
        calls = ", ".join(
            f"{u['source']} {u['label']} -> "
            + "/".join(str(u.get(f"{a}:labels")) for a in learners)
            for u in unsure
        )
        out += [
            "",
            f"{len(unsure)} page(s) whose label the audit marks `unsure` (`AUDIT.csv`) are left "
            f"out of every figure above; their calls ({'/'.join(learners)}): {calls}.",
        ]
    if not learners:
        return "\n".join(out) + "\n"
    out += [
        "",
        "Per left-out source (final-label accuracy; page accuracy in brackets; errors as "
        "true->called):",
        "",
        "| source | pages | " + " | ".join(learners) + " | errors (" + learners[0] + ") |",
        "|---|---|" + "---|" * len(learners) + "---|",
    ]
    first = scorers[learners[0]]["per_source"]
    for source in sorted(first):
        cells = []
        for algo in learners:
            m = scorers[algo]["per_source"][source]
            cells.append(f"{_pct(m['final_accuracy'])} ({_pct(m['page_accuracy'])})")
        errs = ", ".join(f"{k} {v}" for k, v in first[source]["errors"].items()) or "–"
        out.append(f"| {source} | {first[source]['pages']} | " + " | ".join(cells) + f" | {errs} |")
    return "\n".join(out) + "\n"


def ablation_table(with_: dict[str, Any], without: dict[str, Any], what: str) -> str:
    """Per-source LOSO final-label accuracy with and without a feature group, as Markdown."""
    learners = [s for s in ("catboost", "svm") if s in with_["scorers"]]
    out = [
        f"**Ablation: {what}** (leave-one-source-out final-label accuracy per left-out source; "
        "same folds, same seeds; without = those features blanked in every page and line row)",
        "",
        "| source | pages | " + " | ".join(f"{a} with | {a} without" for a in learners) + " |",
        "|---|---|" + "---|---|" * len(learners),
    ]
    first = with_["scorers"][learners[0]]["per_source"]
    for source in sorted(first):
        cells = []
        for a in learners:
            w = with_["scorers"][a]["per_source"][source]["final_accuracy"]
            wo = without["scorers"][a]["per_source"][source]["final_accuracy"]
            mark = "" if w is None or wo is None or abs(w - wo) < 1e-9 else " *"
            cells.append(f"{_pct(w)}{mark} | {_pct(wo)}")
        out.append(f"| {source} | {first[source]['pages']} | " + " | ".join(cells) + " |")
    for key, name in (
        ("macro_final_accuracy", "macro final accuracy"),
        ("pure_balanced_accuracy", "balanced accuracy (pure pages)"),
    ):
        cells = [
            f"{_pct(with_['scorers'][a]['overall'][key])} | "
            f"{_pct(without['scorers'][a]['overall'][key])}"
            for a in learners
        ]
        out.append(f"| **{name}** | | " + " | ".join(cells) + " |")
    cells = []
    for a in learners:
        w, wo = with_["scorers"][a]["overall"], without["scorers"][a]["overall"]
        cells.append(
            f"{w['false_mixed']} fm, {w['mixed_called_mixed']}/{w['mixed_pages']} mixed | "
            f"{wo['false_mixed']} fm, {wo['mixed_called_mixed']}/{wo['mixed_pages']} mixed"
        )
    out.append("| **false mixed, mixed found** | | " + " | ".join(cells) + " |")
    out.append("")
    out.append("`*`: the source's accuracy differs with and without.")
    return "\n".join(out) + "\n"
