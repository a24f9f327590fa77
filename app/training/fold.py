"""Fit everything a model version holds on a set of training sources, and apply it.

One function, :func:`fit_fold`, serves the shipped model (all sources), the split figures (the
training part) and every leave-one-source-out fold (all sources but one), so what is evaluated is
exactly what is shipped. Within it, every choice is made on the training rows only:

- **weights**: a source, not a page, is the unit. Each (source, label) cell of the training pages
  gets the same total weight, then each label the same total, so 199 FUNSD forms count as one
  source among the typed ones and the two classes stay balanced.
- **hyper-parameters**: by cross-validation grouped by *source* (a source is never on both sides of
  an inner fold), scored by the mean over sources of the page accuracy. With fewer than two sources
  of each class (a user's two-folder dataset) the inner folds are grouped by document group.
- **line model**: CatBoost on labelled lines, weighted the same way by source.
- **verdict rule**: the combination of page probability and handwritten share is fitted on
  out-of-fold page probabilities (the same inner folds) and out-of-fold shares: every training
  page's fragments are scored by a line model fitted without its source (inner folds by source).
- **mixed detector** (:mod:`app.models.mixed`): fitted on the same out-of-fold evidence of every
  training page, the real mixed ones and the generated filled-in pages of training sources
  included; its threshold is chosen on its own out-of-fold scores so that false ``mixed`` on
  pure pages stays under ``max_false_mixed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from app.errors import DatasetError
from app.models.classifiers import CATBOOST_GRID, SVM_GRID, make_model, proba_handwritten
from app.models.mixed import (
    MAX_FALSE_MIXED,
    MIXED_FEATURES,
    MixedDetector,
    choose_threshold,
    fit_detector,
)
from app.models.verdict import Fragments, VerdictRule, fit_rule, labels_of, page_share
from app.training.corpus import LABEL_CODE, Corpus, PageKey, PageLines, Rows
from app.training.dataset import PURE_LABELS
from app.training.lines import FILLED_PREFIX, LINE_PARAMS, LineRows
from app.training.rows import concat_rows, select_rows

log = logging.getLogger(__name__)

INNER_FOLDS = 4
GENERATED_SOURCE = "generated filled-in pages"
"""The source the mixed detector sees the generated pages as: one more mixed source."""
MIN_MIXED_UNITS = 2
"""The mixed detector is learned only from real mixed pages of at least this many sources..."""
MIN_PURE_PAGES = 100
"""...and this many pure pages (its threshold bounds false mixed on them): with fewer, a
detector that never says mixed (generated pages alone do not make one)."""
CV_TIE = 0.005
"""Inner-CV scores closer than this do not tell two settings apart; lower log-loss decides."""


@dataclass(frozen=True)
class FitOptions:
    """What a fold fit does."""

    algorithms: tuple[str, ...] = ("catboost", "svm")
    seed: int = 42
    threads: int = 1
    augment: bool = True
    iam_parts: bool = True
    line_model: bool = True
    composites: bool = False
    """Learn from letterhead and signature composites (``corpus.composite_jobs``); off by
    default: measured by LOSO and not adopted (README, design notes)."""
    line_cap: int = 2500
    """Lines per (source, label) the line model learns from (see :func:`cap_lines`)."""
    clean_lines: bool = True
    """Leave out of the line model the page-labelled fragments that models of the other sources
    confidently call the other kind (see :func:`clean_line_labels`)."""
    mixed: bool = True
    """Learn the mixed detector (:mod:`app.models.mixed`)."""
    max_false_mixed: float = MAX_FALSE_MIXED
    """The detector's threshold keeps out-of-fold false mixed under this weighted share."""
    grids: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"catboost": CATBOOST_GRID, "svm": SVM_GRID}
    )
    boost: tuple[tuple[str, float], ...] = ()
    """(source, factor): these sources' cells weigh ``factor`` ordinary sources (a user's own
    pages among the base's sources, :mod:`app.training.extend`)."""

    @property
    def boosts(self) -> dict[str, float]:
        """:attr:`boost` as a mapping."""
        return dict(self.boost)


@dataclass
class FoldModels:
    """Everything fitted on one set of training sources."""

    page_models: dict[str, Any]
    params: dict[str, dict[str, Any]]
    cv: dict[str, dict[str, Any]]
    line_model: Any | None
    rules: dict[str, VerdictRule]
    cv_grouping: str
    train_sources: list[str]
    mixed: dict[str, MixedTraining] = field(default_factory=dict)
    """What each algorithm's mixed detector learned from (for reports and experiments)."""
    line_cleaning: dict[str, int] = field(default_factory=dict)
    """What :func:`clean_line_labels` left out (empty when it did not run)."""


def source_weights(
    sources: np.ndarray, y: np.ndarray, boost: dict[str, float] | None = None
) -> np.ndarray:
    """Row weights: every (source, label) cell the same total, every label the same total.

    A source in ``boost`` has cells ``factor`` times as heavy as the others' (within each label,
    before the labels are balanced). Scaled to a mean weight of 1.
    """
    boost = boost or {}
    w = np.zeros(y.size, dtype=np.float64)
    labels = np.unique(y)
    for label in labels:
        in_label = y == label
        cells = np.unique(sources[in_label])
        factors = {str(s): boost.get(str(s), 1.0) for s in cells}
        total = sum(factors.values())
        for s in cells:
            cell = in_label & (sources == s)
            w[cell] = factors[str(s)] / (cell.sum() * total * len(labels))
    return w * (y.size / w.sum()) if w.sum() > 0 else np.ones(y.size)


def macro_source_accuracy(y: np.ndarray, pred: np.ndarray, sources: np.ndarray) -> float:
    """Mean over sources of the accuracy on that source's rows."""
    accs = [float(np.mean(pred[sources == s] == y[sources == s])) for s in np.unique(sources)]
    return float(np.mean(accs)) if accs else 0.0


def weighted_log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean negative log-likelihood (probabilities clipped to [1e-6, 1 - 1e-6])."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.average(y * np.log(q) + (1 - y) * np.log(1 - q), weights=w))


def _groups_for_cv(rows: Rows) -> tuple[np.ndarray, str]:
    """Sources when each class has at least two, else document groups."""
    per_class = [len(set(rows.sources[rows.y == k].tolist())) for k in (0, 1)]
    if min(per_class) >= 2:
        return rows.sources, "source"
    return rows.groups, "group"


def inner_folds(rows: Rows, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Stratified folds over sources (or groups); empty when the data cannot be split."""
    groups, kind = _groups_for_cv(rows)
    n_min = min(len(set(groups[rows.y == k].tolist())) for k in (0, 1))
    k = min(INNER_FOLDS, n_min)
    if k < 2:
        return [], kind
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(rows.x, rows.y, groups)), kind


def _calibration_folds(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    n_min = min(len(set(groups[y == k].tolist())) for k in (0, 1))
    k = min(3, n_min)
    if k < 2:
        raise DatasetError(
            "too few documents to calibrate the SVM: each class needs documents from at "
            "least 2 groups in the training part"
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(x, y, groups))


def fit_page_model(
    algorithm: str, params: dict[str, Any], rows: Rows, weights: np.ndarray, opts: FitOptions
) -> Any:
    """One page model on weighted rows (the SVM calibrated on group folds of the same rows)."""
    cv: list[tuple[np.ndarray, np.ndarray]] | int = 3
    if algorithm == "svm":
        cv = _calibration_folds(rows.x, rows.y, rows.groups, opts.seed)
    model = make_model(
        algorithm, params, seed=opts.seed, cv=cv, threads=opts.threads, balanced=False
    )
    model.fit(rows.x, rows.y, sample_weight=weights)
    return model


def of_docs(keys: list[tuple[str, int]], docs: set[str]) -> np.ndarray:
    """Mask of the rows whose (sha256, page) key belongs to ``docs`` (sha256 values).

    A composite's key names both its documents (``sha+sha``): it belongs only when both do.
    """
    return np.array([all(part in docs for part in k[0].split("+")) for k in keys], dtype=bool)


def _training_rows(corpus: Corpus, train: set[str], opts: FitOptions) -> tuple[Rows, np.ndarray]:
    """Pure original pages of the training documents, their augmented copies and IAM parts.

    Also returns a mask of the original pages (the rows CV scores are computed on).
    """
    base = corpus.pages.pure()
    base = base.where(of_docs(base.keys, train))
    rows, is_orig = base, np.ones(base.y.size, dtype=bool)
    extra = []
    if opts.augment and corpus.aug.y.size:
        extra.append(corpus.aug.where(of_docs(corpus.aug.keys, train)))
    if opts.iam_parts and corpus.parts.y.size:
        extra.append(corpus.parts.where(of_docs(corpus.parts.keys, train)))
    if opts.composites and corpus.composites.y.size:
        extra.append(corpus.composites.where(of_docs(corpus.composites.keys, train)))
    for more in extra:
        rows = concat_rows(rows, more)
        is_orig = np.concatenate([is_orig, np.zeros(more.y.size, dtype=bool)])
    return rows, is_orig


def select_params(  # noqa: PLR0917 - internal, called once with all six
    algorithm: str,
    rows: Rows,
    weights: np.ndarray,
    is_orig: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    opts: FitOptions,
) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """The grid setting with the best inner-CV macro source accuracy (ties: lower log-loss).

    Returns it, the CV table and its out-of-fold probabilities on every row.
    """
    grid = opts.grids[algorithm]
    table: list[dict[str, Any]] = []
    oofs: list[np.ndarray] = []
    for params in grid:
        oof = np.full(rows.y.size, np.nan)
        for tr, va in folds:
            sub = rows.where(_mask(tr, rows.y.size))
            if len(np.unique(sub.y)) < 2:
                continue
            try:
                model = fit_page_model(algorithm, params, sub, weights[tr], opts)
            except DatasetError:
                continue  # an inner fold too small to calibrate the SVM
            oof[va] = proba_handwritten(model, rows.x[va])
        scored = is_orig & ~np.isnan(oof)
        pred = (oof[scored] >= 0.5).astype(int)
        table.append(
            {
                "params": params,
                "cv_macro_source_accuracy": macro_source_accuracy(
                    rows.y[scored], pred, rows.sources[scored]
                )
                if scored.any()
                else 0.0,
                "cv_log_loss": weighted_log_loss(rows.y[scored], oof[scored], weights[scored])
                if scored.any()
                else float("inf"),
                "cv_pages": int(scored.sum()),
            }
        )
        oofs.append(oof)
    top = max(r["cv_macro_source_accuracy"] for r in table)
    tied = [i for i, r in enumerate(table) if top - r["cv_macro_source_accuracy"] < CV_TIE]
    best = min(tied, key=lambda i: table[i]["cv_log_loss"])
    return dict(table[best]["params"]), table, oofs[best]


def _mask(idx: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[idx] = True
    return m


def line_weights(lines: LineRows, boost: dict[str, float] | None = None) -> np.ndarray:
    """Source weights for line rows."""
    return source_weights(lines.sources, lines.y, boost)


def cap_lines(lines: LineRows, cap: int, seed: int) -> LineRows:
    """At most ``cap`` lines of each (source, label) cell, drawn at random (seeded).

    Sources weigh the same whatever their line count (:func:`source_weights`), so a source's
    21,000th line adds time, not information: FUNSD alone holds a third of the dev lines.
    """
    rng = np.random.default_rng(seed)
    keep = np.zeros(lines.y.size, dtype=bool)
    for source in np.unique(lines.sources):
        for label in (0, 1):
            idx = np.flatnonzero((lines.sources == source) & (lines.y == label))
            if idx.size > cap:
                idx = rng.choice(idx, cap, replace=False)
            keep[idx] = True
    return select_rows(lines, keep)


def fit_line_model(lines: LineRows, opts: FitOptions) -> Any | None:
    """The line model on weighted labelled lines (None when there are too few).

    With ``opts.clean_lines`` the rows go through :func:`clean_line_labels` first.
    """
    return _fit_line_model(_cleaned(lines, opts)[0], opts)


def _cleaned(lines: LineRows, opts: FitOptions) -> tuple[LineRows, dict[str, int]]:
    """``lines`` through :func:`clean_line_labels` (logged) when ``opts.clean_lines``.

    Otherwise the rows as given, with no counts.
    """
    if not opts.clean_lines:
        return lines, {}
    lines, counts = clean_line_labels(lines, opts)
    log.debug("line labels: %s", counts)
    return lines, counts


def _fit_line_model(
    lines: LineRows,
    opts: FitOptions,
    *,
    cap: int | None = None,
    params: dict[str, Any] | None = None,
) -> Any | None:
    lines = cap_lines(lines, opts.line_cap if cap is None else cap, opts.seed)
    if lines.y.size < 20 or len(np.unique(lines.y)) < 2:
        return None
    model = make_model(
        "catboost", params or LINE_PARAMS, seed=opts.seed, threads=opts.threads, balanced=False
    )
    model.fit(lines.x, lines.y, sample_weight=line_weights(lines, opts.boosts))
    return model


CLEAN_PARAMS: dict[str, Any] = {**LINE_PARAMS, "iterations": 200}
CLEAN_CAP = 1000
"""The models that judge the labels are smaller than the line model (a fifth of its cost): they
only need to be sure where a label is plainly wrong."""
NOISE_P = 0.3
"""A page-labelled fragment is noise when models of the other sources give its label a
probability under this (a printed heading on a handwritten page, a signature on a typed one)..."""
NOISE_SHARE = 1 / 3
"""...and such fragments are at most this share of its page's page-labelled fragments: where
more disagree, the disagreement is about the page's kind of writing (a textualis that looks like
print), which is what the line model must learn, not noise."""


def clean_line_labels(lines: LineRows, opts: FitOptions) -> tuple[LineRows, dict[str, int]]:
    """The rows without the page-labelled fragments whose page label is likely wrong.

    A page label is a line label only for most of the page: a handwritten register has a
    printed frame, a letter a printed letterhead, a typed form a signature or a date written in
    (``LABELS.md``: frame and marks of assent do not change a page's label). Each training
    source's fragments are scored by a line model fitted on the *other* training sources (folds
    by source, generated handwriting counted with its own source); a page-labelled fragment
    whose label that model gives under :data:`NOISE_P` is left out, unless such fragments are
    more than :data:`NOISE_SHARE` of its page. Rows with a line's own truth (IAM's body band,
    generated pages, a person's line verdicts) are never left out.

    Only training rows are read: inside a leave-one-source-out fold the left-out source plays
    no part. Returns the rows kept and counts (``dropped_handwritten``: fragments of
    handwritten pages left out, ``dropped_typed``: of typed pages).
    """
    units = np.array([str(s).removeprefix(FILLED_PREFIX) for s in lines.sources], dtype=object)
    p = np.full(lines.y.size, np.nan)
    for held in _unit_folds({str(u): str(u) for u in units}, opts.seed + 2):
        va = np.isin(units, list(held))
        if va.all() or not va.any():
            continue
        model = _fit_line_model(select_rows(lines, ~va), opts, cap=CLEAN_CAP, params=CLEAN_PARAMS)
        score = va & lines.page_label
        if model is not None and score.any():
            p[score] = proba_handwritten(model, lines.x[score])
    known = ~np.isnan(p)
    p_label = np.where(lines.y == 1, p, 1.0 - p)
    noisy = known & (p_label < NOISE_P)
    drop = np.zeros(lines.y.size, dtype=bool)
    by_page: dict[tuple[str, int], list[int]] = {}
    for i in np.flatnonzero(known):
        by_page.setdefault(lines.pages[i], []).append(int(i))
    for idx in by_page.values():
        rows = np.array(idx)
        if noisy[rows].mean() <= NOISE_SHARE:
            drop[rows[noisy[rows]]] = True
    counts = {
        "dropped_handwritten": int((drop & (lines.y == 1)).sum()),
        "dropped_typed": int((drop & (lines.y == 0)).sum()),
        "rows": int(lines.y.size),
    }
    return select_rows(lines, ~drop), counts


def lines_of_docs(lines: LineRows, docs: set[str]) -> LineRows:
    """The line rows of ``docs`` (sha256 values), augmented copies' lines included."""
    keys = [(k[0].removeprefix("aug:"), k[1]) for k in lines.pages]
    return select_rows(lines, of_docs(keys, docs))


def fit_fold(corpus: Corpus, train_docs: set[str], opts: FitOptions) -> FoldModels:
    """Fit page models, line model and verdict rules on ``train_docs`` (sha256 values).

    See the module docstring for how each choice is made.
    """
    rows, is_orig = _training_rows(corpus, train_docs, opts)
    if rows.y.size == 0 or len(np.unique(rows.y)) < 2:
        raise DatasetError("the training sources hold pages of one class only")
    weights = source_weights(rows.sources, rows.y, opts.boosts)
    folds, grouping = inner_folds(rows, opts.seed)
    page_models: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    cv: dict[str, dict[str, Any]] = {}
    oof_p: dict[str, np.ndarray] = {}
    for algo in opts.algorithms:
        if folds:
            chosen, table, oof = select_params(algo, rows, weights, is_orig, folds, opts)
        else:
            chosen, table, oof = opts.grids[algo][0], [], np.full(rows.y.size, np.nan)
        params[algo] = chosen
        best = next((r for r in table if r["params"] == chosen), {})
        cv[algo] = {
            "table": table,
            "cv_macro_source_accuracy": best.get("cv_macro_source_accuracy"),
            "cv_log_loss": best.get("cv_log_loss"),
        }
        page_models[algo] = fit_page_model(algo, chosen, rows, weights, opts)
        oof_p[algo] = oof

    train_lines = lines_of_docs(corpus.lines, train_docs)
    line_model = None
    counts: dict[str, int] = {}
    if opts.line_model:
        # cleaned once: the inner line models below learn from the same rows
        train_lines, counts = _cleaned(train_lines, opts)
        line_model = _fit_line_model(train_lines, opts)

    # out-of-fold fragment probabilities of every original training page (mixed ones too):
    # a page is scored by a line model that never learned from its source
    units = _units(corpus, train_docs)
    oof_frags = _oof_fragments(corpus, units, train_lines, opts) if line_model is not None else {}
    orig = rows.where(is_orig)
    oof_share = np.array([page_share(oof_frags.get(k)) for k in orig.keys], dtype=np.float64)
    rules: dict[str, VerdictRule] = {}
    mixed_data: dict[str, MixedTraining] = {}
    orig_w = source_weights(orig.sources, orig.y, opts.boosts)
    for algo in opts.algorithms:
        p = oof_p[algo][is_orig]
        ok = ~np.isnan(p)
        rule = (
            fit_rule(p[ok], oof_share[ok], orig.y[ok], orig_w[ok])
            if line_model is not None and ok.any()
            else VerdictRule()
        )
        if line_model is not None and opts.mixed:
            oof_by_key = {k: float(v) for k, v in zip(orig.keys, p, strict=True) if not np.isnan(v)}
            data = _mixed_training(
                corpus,
                train_docs,
                units,
                page_models[algo],
                rule,
                oof_by_key,
                oof_frags,
                opts.boosts,
            )
            rule = rule.with_mixed(data.detector(opts))
            mixed_data[algo] = data
        rules[algo] = rule
    return FoldModels(
        page_models=page_models,
        params=params,
        cv=cv,
        line_model=line_model,
        rules=rules,
        cv_grouping=grouping,
        train_sources=sorted(set(rows.sources.tolist())),
        mixed=mixed_data,
        line_cleaning=counts,
    )


def _units(corpus: Corpus, train_docs: set[str]) -> dict[str, str]:
    """The unit of the inner folds of each training document (sha256 -> unit).

    Its source when both pure labels have at least two training sources, else its group (a
    user's two-folder dataset).
    """
    docs = [d for d in corpus.docs if d.sha256 in train_docs]
    per_label = [len({d.source for d in docs if d.label == lab}) for lab in PURE_LABELS]
    by_source = min(per_label) >= 2
    return {d.sha256: d.source if by_source else d.group for d in docs}


def _unit_folds(units: dict[str, str], seed: int) -> list[set[str]]:
    """The units dealt into at most INNER_FOLDS groups (seeded), as sets of unit names."""
    names = sorted(set(units.values()))
    order = np.random.default_rng(seed).permutation(len(names))
    k = min(INNER_FOLDS, len(names))
    groups: list[set[str]] = [set() for _ in range(k)]
    for rank, i in enumerate(order):
        groups[rank % k].add(names[i])
    return [g for g in groups if g]


def _oof_fragments(
    corpus: Corpus, units: dict[str, str], train_lines: LineRows, opts: FitOptions
) -> dict[PageKey, Fragments]:
    """Fragment boxes and out-of-fold probabilities of every training document's pages."""
    out: dict[PageKey, Fragments] = {}
    filled = corpus.filled_lines
    for held_units in _unit_folds(units, opts.seed):
        held = {sha for sha, u in units.items() if u in held_units}
        model = _fit_line_model(lines_of_docs(train_lines, set(units) - held), opts)
        if model is None:
            continue
        sub = corpus.page_lines.subset(np.array([k[0] in held for k in corpus.page_lines.pages]))
        if sub.pages:
            out.update(sub.by_page(proba_handwritten(model, sub.x)))
        # a generated page whose two documents train here, scored by the model that never saw
        # its handwriting's source
        gen = filled.subset(
            np.array(
                [k[0].split("+")[1] in held and k[0].split("+")[0] in units for k in filled.pages],
                dtype=bool,
            )
        )
        if gen.pages:
            out.update(gen.by_page(proba_handwritten(model, gen.x)))
    return out


@dataclass
class MixedTraining:
    """What the mixed detector of one algorithm learns from: every original training page."""

    x: np.ndarray
    is_mixed: np.ndarray
    weights: np.ndarray
    units: np.ndarray
    sources: np.ndarray
    inputs: list[tuple[float, float | None, Fragments]] = field(default_factory=list)
    """Each page's out-of-fold (page probability, share, fragments) the rows were made from."""

    def detector(self, opts: FitOptions) -> MixedDetector:
        """The detector, its threshold chosen on out-of-fold scores (inner folds by unit).

        One that never says mixed when the data is too small to bound its false mixed (see
        :data:`MIN_MIXED_UNITS`, :data:`MIN_PURE_PAGES`).
        """
        real = self.is_mixed & (self.sources != GENERATED_SOURCE)
        if (
            len(set(self.units[real].tolist())) < MIN_MIXED_UNITS
            or int((~self.is_mixed).sum()) < MIN_PURE_PAGES
        ):
            return MixedDetector()
        oof = np.full(self.is_mixed.size, np.nan)
        unit_of = {str(u): str(u) for u in self.units}
        for held in _unit_folds(unit_of, opts.seed + 1):
            va = np.isin(self.units, list(held))
            if va.all() or not va.any():
                continue
            inner = fit_detector(self.x[~va], self.is_mixed[~va], self.weights[~va])
            if inner.weights:
                oof[va] = inner.score(self.x[va])
        known = ~np.isnan(oof)
        full = fit_detector(self.x, self.is_mixed, self.weights)
        if not full.weights or not known.any():
            return full
        threshold = choose_threshold(
            oof[known], self.is_mixed[known], self.weights[known], opts.max_false_mixed
        )
        return replace(full, threshold=threshold)


def _mixed_training(  # noqa: PLR0917 - internal, called once
    corpus: Corpus,
    train_docs: set[str],
    units: dict[str, str],
    page_model: Any,
    rule: VerdictRule,
    oof_p: dict[PageKey, float],
    frags: dict[PageKey, Fragments],
    boost: dict[str, float] | None = None,
) -> MixedTraining:
    """Mixed-detector rows of every original training page and generated filled-in page.

    Pure pages' page probabilities are out of fold; every page's fragments are scored by a line
    model that never saw its source (a generated page: its handwriting's source).
    """
    pages = corpus.pages.where(of_docs(corpus.pages.keys, train_docs))
    gen = corpus.filled.where(of_docs(corpus.filled.keys, train_docs))
    empty = (np.zeros((0, 4)), np.zeros(0))
    x: list[np.ndarray] = []
    inputs: list[tuple[float, float | None, Fragments]] = []
    unit_of: list[str] = []
    for rows, generated in ((pages, False), (gen, True)):
        p_fit = proba_handwritten(page_model, rows.x) if rows.y.size else np.zeros(0)
        for key, p_model in zip(rows.keys, p_fit, strict=True):
            p = oof_p.get(key, float(p_model))
            f = frags.get(key, empty)
            share = page_share(f)
            known = None if np.isnan(share) else share
            x.append(rule.evidence(p, known, f))
            inputs.append((p, known, f))
            # a generated page belongs to the unit of its handwriting's source
            unit_of.append(units.get(key[0].split("+")[1] if generated else key[0], ""))
    y = np.concatenate([pages.y, gen.y])
    sources = np.concatenate([pages.sources, np.full(gen.y.size, GENERATED_SOURCE)])
    return MixedTraining(
        x=np.array(x, dtype=np.float64).reshape(-1, len(MIXED_FEATURES)),
        is_mixed=y == LABEL_CODE["mixed"],
        weights=source_weights(sources, y, boost),
        units=np.array(unit_of, dtype=object).astype(str),
        sources=sources,
        inputs=inputs,
    )


@dataclass
class Predictions:
    """Page probabilities, shares and final labels of some rows, per algorithm."""

    p: dict[str, np.ndarray]
    share: np.ndarray
    labels: dict[str, np.ndarray]


def predict_rows(fold: FoldModels, rows: Rows, lines: PageLines) -> Predictions:
    """Apply a fitted fold to page rows whose lines are in ``lines``."""
    line_model = fold.line_model
    frags: list[Fragments | None] = [None] * rows.y.size
    share = np.full(rows.y.size, np.nan)
    if line_model is not None:
        sub = lines.of_pages(set(rows.keys))
        by_page = sub.by_page(proba_handwritten(line_model, sub.x)) if sub.pages else {}
        frags = [by_page.get(k) for k in rows.keys]
        share = np.array([page_share(f) for f in frags], dtype=np.float64)
    p = {a: proba_handwritten(m, rows.x) for a, m in fold.page_models.items()}
    labels = {algo: labels_of(fold.rules[algo], probs, share, frags) for algo, probs in p.items()}
    return Predictions(p=p, share=share, labels=labels)
