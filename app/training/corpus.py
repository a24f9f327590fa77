"""Every row training and evaluation need, built once from the feature results.

Pages of all three labels are kept (``mixed`` pages are only ever scored, never learned from by the
page or line model); augmented copies and IAM header/body parts follow their document, so a
selection by source or by group always takes a page together with its variants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.features import FEATURE_NAMES
from app.features.lines import LINE_MODEL_FEATURES
from app.training.augment import FRAME_SOURCES
from app.training.dataset import PURE_LABELS, Document
from app.training.featurize import Job, jobs_for
from app.training.lines import LineRows, filled_line_rows, line_rows, page_fragments
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
    """Every text fragment of some pages (labelled or not): features, boxes, areas, their page."""

    x: np.ndarray
    areas: np.ndarray
    pages: list[PageKey]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    """(n, 4) boxes (x0, y0, x1, y1) in the page's pixels."""

    def subset(self, keep: np.ndarray) -> PageLines:
        """The fragments where ``keep`` is true."""
        return PageLines(
            x=self.x[keep],
            areas=self.areas[keep],
            pages=[k for k, m in zip(self.pages, keep, strict=True) if m],
            boxes=self.boxes[keep],
        )

    def of_pages(self, keys: set[PageKey]) -> PageLines:
        """The fragments of the pages in ``keys``."""
        return self.subset(np.array([k in keys for k in self.pages], dtype=bool))

    def by_page(self, p: np.ndarray) -> dict[PageKey, tuple[np.ndarray, np.ndarray]]:
        """Each page's fragment boxes and their probabilities ``p``."""
        rows: dict[PageKey, list[int]] = {}
        for i, key in enumerate(self.pages):
            rows.setdefault(key, []).append(i)
        return {k: (self.boxes[idx], p[idx]) for k, idx in rows.items()}


def all_lines(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> PageLines:
    """Every fragment of every page, as the service sees them (no label needed)."""
    xs, areas, pages, boxes = [], [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            b, x = page_fragments(page)
            xs.append(x)
            boxes.append(b)
            areas.append(np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0))
            pages += [(doc.sha256, int(page["page"]))] * b.shape[0]
    width = len(LINE_MODEL_FEATURES)
    return PageLines(
        x=np.vstack(xs) if xs else np.zeros((0, width)),
        areas=np.concatenate(areas) if areas else np.zeros(0),
        pages=pages,
        boxes=np.vstack(boxes) if boxes else np.zeros((0, 4)),
    )


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
    """Labelled lines of the pure original pages, of their augmented copies, then of the generated
    filled-in pages (labelled by where the handwriting was written)."""
    page_lines: PageLines
    """Every line of every original page (what the share is computed from)."""
    robust_lines: PageLines
    filled: Rows = field(default_factory=lambda: page_rows([], [], {}))
    """Generated filled-in pages (a typed page with handwritten lines of another source's page
    written into its free space), labelled mixed; keys name both documents (``typed+hand``)."""
    filled_lines: PageLines = field(default_factory=lambda: all_lines([], [], {}))
    """Their fragments, keyed the same way."""

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
        lines = lines.extend(line_rows(pure, aug_jobs, results, truth=False), page_prefix="aug:")
    told = [i for i, d in enumerate(docs) if d.label == "mixed" and d.line_truth]
    if told:  # mixed pages whose lines a person labelled (corrections)
        lines = concat_rows(
            lines, line_rows([docs[i] for i in told], [orig[i] for i in told], results)
        )
    if jobs.get("filled"):
        lines = concat_rows(lines, filled_line_rows(docs, jobs["filled"], results))
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
        **_filled(docs, jobs.get("filled", []), results),
    )


def _filled(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Rows and fragments of the generated filled-in pages, keyed ``typed+hand``."""
    by_sha = {d.sha256: d for d in docs}
    done = [j for j in jobs if j in results]
    rows = page_rows([by_sha[j.sha256] for j in done], done, results, label="mixed")
    lines = all_lines([by_sha[j.sha256] for j in done], done, results)
    hand = {j.sha256: j.variant.split(":", 1)[1] for j in done}
    rows.keys = [(f"{k[0]}+{hand[k[0]]}", k[1]) for k in rows.keys]
    lines.pages = [(f"{k[0]}+{hand[k[0]]}", k[1]) for k in lines.pages]
    return {"filled": rows, "filled_lines": lines}


def filled_jobs_for(docs: list[Document], *, lang: str, timeout: float) -> list[Job]:
    """One generated filled-in page per typed page, with a handwritten page of another source.

    Handwritten sources whose pages carry printed frame are not used (their "handwriting"
    would paste print). The pairing is a deterministic function of the sha256 values.
    """
    jobs = []
    hands = sorted(
        (d for d in docs if d.label == "handwritten" and d.source not in FRAME_SOURCES),
        key=lambda d: d.sha256,
    )
    for doc in docs:
        if doc.label != "typed":
            continue
        pool = [h for h in hands if h.source != doc.source]
        if not pool:
            continue
        other = pool[int(doc.sha256[:8], 16) % len(pool)]
        jobs.append(Job.paired(doc, other, "filled", lang=lang, timeout=timeout))
    return jobs


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
        jobs.append(Job.paired(doc, other, kind, lang=lang, timeout=timeout))
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
    filled: bool = True,
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
    if filled:
        jobs["filled"] = filled_jobs_for(docs, lang=lang, timeout=timeout)
    return jobs


def without_features(corpus: Corpus, word: str) -> Corpus:
    """A copy of ``corpus`` whose page and line features named with ``word`` carry nothing.

    Page columns become 0 (a constant column: the SVM's scaler and CatBoost ignore it) and line
    columns NaN (missing, which CatBoost handles): an ablation that needs no new model shapes.
    """
    from dataclasses import replace  # noqa: PLC0415 - used here only

    page_cols = [i for i, n in enumerate(FEATURE_NAMES) if word in n]
    line_cols = [i for i, n in enumerate(LINE_MODEL_FEATURES) if word in n]

    def pages(rows: Rows) -> Rows:
        x = rows.x.copy()
        if x.size:
            x[:, page_cols] = 0.0
        return replace(rows, x=x)

    def lines(rows: Any) -> Any:
        x = rows.x.copy()
        if x.size:
            x[:, line_cols] = np.nan
        return replace(rows, x=x)

    return replace(
        corpus,
        pages=pages(corpus.pages),
        aug=pages(corpus.aug),
        parts=pages(corpus.parts),
        composites=pages(corpus.composites),
        robust=pages(corpus.robust),
        lines=lines(corpus.lines),
        page_lines=lines(corpus.page_lines),
        robust_lines=lines(corpus.robust_lines),
    )
