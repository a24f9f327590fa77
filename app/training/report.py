"""Reports of a training run: report.json, report.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np

mpl.use("Agg")
import matplotlib.pyplot as plt
from sklearn.metrics import roc_curve

from app.models.registry import atomic_write_text
from app.training.loso import loso_table


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _row(name: str, m: dict[str, Any] | None) -> str:
    if not m:
        return f"| {name} | – | – | – | – |"
    ci = m.get("ci95") or {}
    return (
        f"| {name} | {_fmt(m.get('accuracy'), ci.get('accuracy'))} | "
        f"{_fmt(m.get('balanced_accuracy'), ci.get('balanced_accuracy'))} | "
        f"{_fmt(m.get('roc_auc'), ci.get('roc_auc'))} | {_fmt(m.get('brier'))} |"
    )


def results_table(report: dict[str, Any]) -> str:
    """The comparison tables as Markdown.

    Leave-one-source-out first (when it was run), then the split's plain and robustness tests.
    """
    lines = []
    if report.get("loso"):
        lines += [loso_table(report["loso"]), ""]
    for part, title in (
        ("test", "Group-aware split: test pages as scanned"),
        ("robustness", "Group-aware split: robustness test"),
    ):
        lines += [
            f"**{title}** ({report['dataset']['test_pages']} pure pages)",
            "",
            "| scorer | accuracy [95 % CI] | balanced accuracy [95 % CI] "
            "| ROC AUC [95 % CI] | Brier |",
            "|---|---|---|---|---|",
        ]
        for algo, res in report["algorithms"].items():
            lines.append(_row(algo, res.get(part)))
        for ref, res in report["references"].items():
            lines.append(_row(f"reference: {ref.replace('_', ' ')}", res.get(part)))
        lines.append("")
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    """A human-readable report of one training run."""
    ds = report["dataset"]
    out = [
        f"# inkwell model {report['version']}",
        "",
        f"Created {report['created_at']} from `{ds['path']}` "
        f"(manifest sha256 `{ds['manifest_sha256'][:16]}…`).",
        "",
        f"- documents: {ds['documents']} from {ds.get('sources', '?')} sources "
        f"{ds.get('by_label', '')}; split: {ds['train_documents']} train, "
        f"{ds['test_documents']} test; groups {ds['train_groups']} train / {ds['test_groups']} "
        f"test, **{ds['groups_on_both_sides']} on both sides**",
        f"- split pages: {ds['train_pages']} train, {ds['test_pages']} pure test pages "
        f"and {ds.get('test_mixed_pages', 0)} mixed; the shipped models are then fitted on all "
        f"{ds.get('pages', '?')} pages",
        f"- skipped: {len(ds['skipped'])}",
        f"- default algorithm: **{report['default_algorithm']}** ("
        + report.get(
            "default_algorithm_reason", "best group-CV balanced accuracy on the training part"
        )
        + ")",
        "",
        results_table(report),
    ]
    mc = report.get("mcnemar_catboost_vs_svm")
    if mc:
        out += [
            f"McNemar CatBoost vs SVM on the test pages: CatBoost right/SVM wrong "
            f"{mc['a_right_b_wrong']}, CatBoost wrong/SVM right {mc['a_wrong_b_right']}, "
            f"exact p = {mc['p_value']:.3f}.",
            "",
        ]
    diag = report.get("iam_header_diagnostics") or {}
    if diag.get("forms"):
        out += [
            f"IAM header check on the {diag['forms']} IAM test forms, each cut in two: the printed "
            "header alone should be called typed, the handwritten body alone handwritten.",
            "",
        ]
        for algo in report["algorithms"]:
            d = diag.get(algo, {})
            out.append(
                f"- {algo}: header alone called typed {d.get('header_only_called_typed', 0):.3f} "
                f"(n={d.get('header_pages', 0)}), body alone called handwritten "
                f"{d.get('body_only_called_handwritten', 0):.3f} (n={d.get('body_pages', 0)})"
            )
        out.append("")
    out += ["## Per source (test accuracy / robustness accuracy)", ""]
    for algo, res in report["algorithms"].items():
        per = res["test"].get("per_source", {})
        rob = res["robustness"].get("per_source", {})
        cells = ", ".join(
            f"{s}: {v['accuracy']:.3f} / "
            f"{rob.get(s, {}).get('accuracy', float('nan')):.3f} (n={v['n']})"
            for s, v in per.items()
        )
        out.append(f"- {algo}: {cells}")
    out += ["", "## Per class (test)", "", "| scorer | class | precision | recall | F1 | support |"]
    out.append("|---|---|---|---|---|---|")
    for algo, res in report["algorithms"].items():
        for cls, m in res["test"]["per_class"].items():
            out.append(
                f"| {algo} | {cls} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
                f"| {m['support']} |"
            )
    out += ["", "## Confusion matrices (rows: true typed, handwritten; columns: predicted)", ""]
    for algo, res in report["algorithms"].items():
        out.append(
            f"- {algo}: test {res['test']['confusion_matrix']}, robustness "
            f"{res['robustness']['confusion_matrix']}"
        )
    out += ["", "## Model selection and cost (shipped models, source-grouped CV)", ""]
    for algo, res in report["algorithms"].items():
        out.append(
            f"- {algo}: params {res['params']}, CV macro source accuracy "
            f"{_fmt(res.get('cv_macro_source_accuracy'))}, CV log-loss "
            f"{_fmt(res.get('cv_log_loss'))}, "
            f"inference {res['inference_ms_per_page']:.2f} ms/page (features excluded); verdict "
            f"rule {_rule(res.get('verdict_rule'))}"
        )
    imp = report["algorithms"].get("catboost", {}).get("feature_importance")
    if imp:
        out += ["", "## CatBoost feature importances (top 12)", ""]
        # sorted here: report.json stores the mapping with sorted keys, not by importance
        top = sorted(imp.items(), key=lambda kv: (-kv[1], kv[0]))[:12]
        out += [f"- {name}: {value:.1f}" for name, value in top]
    out += _lines_section(report.get("lines") or {})
    fp = report["references"].get("tesseract_fullpage_confidence")
    if fp:
        out += [
            "",
            f"Full-page tesseract reference: handwritten when mean word confidence < "
            f"{fp['threshold']:.0f} (threshold fit on {fp['fit_on_train_pages']} training pages).",
        ]
    t = report["timing"]
    out += [
        "",
        f"Feature extraction {t['feature_seconds']:.0f} s, total {t['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(out)


def _rule(rule: dict[str, Any] | None) -> str:
    if not rule:
        return "page model alone"
    text = (
        f"q = sigmoid({rule['a']:.2f} logit(p) {rule['b']:+.2f} logit(share) {rule['c']:+.2f}); "
        "handwritten when q >= 0.5"
    )
    detector = rule.get("mixed") or {}
    if not detector.get("weights") or float(detector.get("threshold", 1.0)) >= 1.0:
        return text + "; never mixed (no mixed page to learn from, or none separable)"
    weights = dict(zip(detector["names"], detector["weights"], strict=True))
    top = sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:4]
    named = ", ".join(f"{n.removeprefix('mixed_')} {w:+.2f}" for n, w in top)
    return (
        text + f"; mixed when the detector's probability >= {detector['threshold']:.2f} "
        f"(largest standardised weights: {named})"
    )


def _cleaning_sentence(lines: dict[str, Any]) -> str:
    counts = lines.get("label_cleaning") or {}
    if not counts:
        return ""
    return (
        f" Before training, {counts.get('dropped_handwritten', 0)} fragments of handwritten "
        f"pages and {counts.get('dropped_typed', 0)} of typed pages (of "
        f"{counts.get('rows', 0)}) were left out as likely frame or marks: models of the other "
        "sources were sure they are the other kind."
    )


def _lines_section(lines: dict[str, Any]) -> list[str]:
    if not lines or "test" not in lines:
        return []
    out = [
        "",
        "## Line verdicts (split test documents; writer/document-disjoint)",
        "",
        f"Line model trained on {lines['train_lines']} lines; tested on {lines['test_lines']}. "
        "IAM line labels are clean (printed header typed, body handwritten); every other "
        "source's lines take the page label, so FUNSD's handwritten fill-ins and a letter's "
        "printed letterhead count as errors here." + _cleaning_sentence(lines),
        "",
        "| lines | n | accuracy | balanced accuracy | ROC AUC |",
        "|---|---|---|---|---|",
    ]
    for name, m in lines["test"].items():
        out.append(
            f"| {name} | {m['n']} | {_fmt(m['accuracy'])} | {_fmt(m['balanced_accuracy'])} | "
            f"{_fmt(m['roc_auc'])} |"
        )
    return out


def _plots(folder: Path, report: dict[str, Any], roc_data: dict[str, tuple[Any, Any]]) -> None:
    algos = list(report["algorithms"])
    fig, axes = plt.subplots(1, len(algos), figsize=(4 * len(algos), 3.6), squeeze=False)
    for ax, algo in zip(axes[0], algos, strict=True):
        cm = np.array(report["algorithms"][algo]["test"]["confusion_matrix"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks([0, 1], ["typed", "handwritten"])
        ax.set_yticks([0, 1], ["typed", "handwritten"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(algo)
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrices.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for algo, (y, p) in roc_data.items():
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            auc = report["algorithms"][algo]["test"]["roc_auc"]
            ax.plot(fpr, tpr, label=f"{algo} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate (typed called handwritten)")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "roc_curves.png", dpi=80)
    plt.close(fig)

    imp = report["algorithms"].get("catboost", {}).get("feature_importance")
    if imp:
        names = list(imp)[:15][::-1]
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.barh(names, [imp[n] for n in names])
        ax.set_xlabel("CatBoost importance")
        fig.tight_layout()
        fig.savefig(folder / "feature_importance.png", dpi=80)
        plt.close(fig)


def write_reports(
    folder: Path, report: dict[str, Any], roc_data: dict[str, tuple[Any, Any]]
) -> None:
    """Write report.json, report.md and the plots into ``folder``."""
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2, sort_keys=True))
    atomic_write_text(folder / "report.md", markdown_report(report))
    _plots(folder, report, roc_data)
