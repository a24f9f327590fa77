"""Every row training and evaluation need, built once from the feature results.

Pages of all three labels are kept (``mixed`` pages are only ever scored, never learned from by the
page or line model); augmented copies and IAM header/body parts follow their document, so a
selection by source or by group always takes a page together with its variants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.features import FEATURE_NAMES
from app.features.lines import LINE_FEATURE_NAMES
from app.training.dataset import PURE_LABELS, Document
from app.training.featurize import Job, jobs_for
from app.training.lines import LineRows, line_rows
from app.training.rows import concat_rows, select_rows

PageKey = tuple[str, int]
LABEL_CODE = {"typed": 0, "handwritten": 1, "mixed": 2}


@dataclass
class Rows:
    """Page rows of one variant.

    Features, labels (0 typed, 1 handwritten, 2 mixed), groups, sources, geometry (width, height,
    dpi) and the (sha256, page) each row comes from.
    """

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    geometry: np.ndarray
    keys: list[PageKey] = field(default_factory=list)

    def where(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is true."""
        return select_rows(self, mask)

    def pure(self) -> Rows:
        """Handwritten and typed rows only."""
        return self.where(self.y < 2)


def page_rows(
    docs: list[Document],
    jobs: list[Job],
    results: dict[Job, list[dict[str, Any]]],
    label: str | None = None,
) -> Rows:
    """One row per page of every document whose job succeeded (``label`` overrides the doc's)."""
    x, y, groups, sources, geo, keys = [], [], [], [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            x.append([float(page["features"][n]) for n in FEATURE_NAMES])
            geo.append([float(page["width"]), float(page["height"]), float(page["dpi"])])
            y.append(LABEL_CODE[label or doc.label])
            groups.append(doc.group)
            sources.append(doc.source)
            keys.append((doc.sha256, int(page["page"])))
    return Rows(
        x=np.array(x, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)),
        y=np.array(y, dtype=int),
        groups=np.array(groups, dtype=object).astype(str),
        sources=np.array(sources, dtype=object).astype(str),
        geometry=np.array(geo, dtype=np.float64).reshape(-1, 3),
        keys=keys,
    )


@dataclass
class PageLines:
    """Every text line of some pages (labelled or not): features, areas and their page."""

    x: np.ndarray
    areas: np.ndarray
    pages: list[PageKey]

    def shares(self, p: np.ndarray) -> dict[PageKey, float]:
        """Handwritten share of each page's line area from line probabilities ``p``."""
        total: dict[PageKey, float] = {}
        hand: dict[PageKey, float] = {}
        for key, area, prob in zip(self.pages, self.areas, p, strict=True):
            total[key] = total.get(key, 0.0) + area
            hand[key] = hand.get(key, 0.0) + (area if prob >= 0.5 else 0.0)
        return {k: hand[k] / total[k] if total[k] > 0 else 0.0 for k in total}


def all_lines(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> PageLines:
    """Every line of every page, as the service sees them (no label needed)."""
    n = 4 + len(LINE_FEATURE_NAMES)
    x, areas, pages = [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            for ln in page.get("lines", []):
                if len(ln) != n:
                    continue
                x0, y0, x1, y1 = ln[:4]
                x.append([np.nan if v is None else float(v) for v in ln[4:]])
                areas.append(max(0, x1 - x0) * max(0, y1 - y0))
                pages.append((doc.sha256, int(page["page"])))
    return PageLines(
        x=np.array(x, dtype=np.float64).reshape(-1, len(LINE_FEATURE_NAMES)),
        areas=np.array(areas, dtype=np.float64),
        pages=pages,
    )


def shares_for(
    rows: Rows, lines: PageLines, predict: Callable[[np.ndarray], np.ndarray] | None
) -> np.ndarray:
    """The handwritten share of each row's page (NaN: no line model, or a page with no line)."""
    if predict is None:
        return np.full(rows.y.size, np.nan)
    wanted = set(rows.keys)
    keep = np.array([k in wanted for k in lines.pages], dtype=bool)
    if not keep.any():
        return np.full(rows.y.size, np.nan)
    sub = PageLines(
        x=lines.x[keep],
        areas=lines.areas[keep],
        pages=[k for k, m in zip(lines.pages, keep, strict=True) if m],
    )
    by_page = sub.shares(predict(sub.x))
    return np.array([by_page.get(k, np.nan) for k in rows.keys], dtype=np.float64)


@dataclass
class Corpus:
    """The documents and every row derived from them (see the module docstring)."""

    docs: list[Document]
    pages: Rows
    """Original pages of every document (mixed included)."""
    aug: Rows
    """One augmented copy of every pure page."""
    parts: Rows
    """IAM printed headers alone (typed) and handwritten bodies alone (handwritten)."""
    composites: Rows
    """Handwritten pages under a typed page's letterhead (handwritten) and typed pages with a
    handwritten signature (typed); keys name both documents (``sha+sha``)."""
    robust: Rows
    """The robustness test: every page with its resolution swapped, turned 3°, JPEG 60."""
    lines: LineRows
    """Labelled lines of the pure original pages, then of their augmented copies."""
    page_lines: PageLines
    """Every line of every original page (what the share is computed from)."""
    robust_lines: PageLines

    @property
    def sources(self) -> list[str]:
        """Every source, sorted."""
        return sorted({d.source for d in self.docs})


def build_corpus(
    docs: list[Document],
    jobs: dict[str, list[Job]],
    results: dict[Job, list[dict[str, Any]]],
) -> Corpus:
    """Assemble a :class:`Corpus` from per-variant job lists.

    Keys: orig, aug, robust, iam_header, iam_body; the IAM lists cover the pure IAM documents in
    ``docs`` order (as :func:`corpus_jobs` makes them).
    """
    pure = [d for d in docs if d.label in PURE_LABELS]
    pure_idx = [i for i, d in enumerate(docs) if d.label in PURE_LABELS]
    orig = jobs["orig"]
    pure_orig = [orig[i] for i in pure_idx]
    aug_jobs = jobs.get("aug", [])
    iam = [d for d in docs if d.source.startswith("iam") and d.label in PURE_LABELS]
    parts = page_rows([], [], results)
    if jobs.get("iam_header") and iam:
        parts = concat_rows(
            page_rows(iam, jobs["iam_header"], results, label="typed"),
            page_rows(iam, jobs["iam_body"], results, label="handwritten"),
        )
    lines = line_rows(pure, pure_orig, results)
    aug = page_rows([], [], results)
    if aug_jobs:
        aug = page_rows(pure, aug_jobs, results)
        lines = lines.extend(line_rows(pure, aug_jobs, results), page_prefix="aug:")
    robust = jobs.get("robust", [])
    return Corpus(
        docs=docs,
        pages=page_rows(docs, orig, results),
        aug=aug,
        parts=parts,
        composites=_composite_rows(docs, jobs.get("composite", []), results),
        robust=page_rows(docs, robust, results) if robust else page_rows([], [], results),
        lines=lines,
        page_lines=all_lines(docs, orig, results),
        robust_lines=all_lines(docs, robust, results) if robust else all_lines([], [], results),
    )


def _composite_rows(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> Rows:
    """Rows of the composites, keyed by both their documents (``sha+sha``)."""
    by_sha = {d.sha256: d for d in docs}
    rows = page_rows([], [], results)
    for kind, label in (("letterhead:", "handwritten"), ("signed:", "typed")):
        some = [j for j in jobs if j.variant.startswith(kind)]
        part = page_rows([by_sha[j.sha256] for j in some], some, results, label=label)
        other = {j.sha256: j.variant.split(":", 1)[1] for j in some}
        part.keys = [(f"{k[0]}+{other[k[0]]}", k[1]) for k in part.keys]
        rows = concat_rows(rows, part)
    return rows


def composite_jobs(docs: list[Document], *, lang: str, timeout: float) -> list[Job]:
    """One composite per pure page, paired with a page of the other label from another source.

    Handwritten pages go under a typed page's letterhead (``letterhead:<sha>``), typed pages get a
    handwritten signature (``signed:<sha>``). The pairing is a deterministic function of the
    sha256 values, so the same data gives the same composites.
    """
    jobs = []
    for doc in docs:
        if doc.label not in PURE_LABELS:
            continue
        want = "typed" if doc.label == "handwritten" else "handwritten"
        pool = sorted(
            (d for d in docs if d.label == want and d.source != doc.source), key=lambda d: d.sha256
        )
        if not pool:
            continue
        other = pool[int(doc.sha256[:8], 16) % len(pool)]
        kind = "letterhead" if doc.label == "handwritten" else "signed"
        jobs.append(
            Job(
                path=doc.path,
                sha256=doc.sha256,
                variant=f"{kind}:{other.sha256}",
                crop_body=False,
                lang=lang,
                timeout=timeout,
                other=other.path,
            )
        )
    return jobs


def corpus_jobs(
    docs: list[Document],
    *,
    lang: str,
    timeout: float,
    augment: bool = True,
    robust: bool = True,
    iam_parts: bool = True,
    composites: bool = False,
) -> dict[str, list[Job]]:
    """The feature jobs a :class:`Corpus` of ``docs`` is built from, by variant."""
    pure = [d for d in docs if d.label in PURE_LABELS]
    iam = [d for d in pure if d.source.startswith("iam")]
    jobs = {"orig": jobs_for(docs, "orig", lang=lang, timeout=timeout)}
    if augment:
        jobs["aug"] = jobs_for(pure, "aug0", lang=lang, timeout=timeout)
    if robust:
        jobs["robust"] = jobs_for(docs, "robust", lang=lang, timeout=timeout)
    if iam_parts and iam:
        jobs["iam_header"] = jobs_for(iam, "iam_header", lang=lang, timeout=timeout)
        jobs["iam_body"] = jobs_for(iam, "iam_body", lang=lang, timeout=timeout)
    if composites:
        jobs["composite"] = composite_jobs(docs, lang=lang, timeout=timeout)
    return jobs
