"""Labelled line rows for the line model, and its per-source metrics.

Honest line labels come from IAM forms: lines above the handwritten body (the printed header) are
typed and lines inside it handwritten: same page, same scanner, same resolution, so the only
difference is the writing. Lines below the body (the "Name:" line and signatures) are left out.
Every other document's lines take the document's label: FUNSD's handwritten fill-ins are
therefore label noise among its "typed" lines, which is why line metrics are reported per source.
Where a person gave line verdicts (a correction's line boxes, :attr:`Document.line_truth`), the
fragments they cover (half their area or more) take that verdict, on pure and mixed pages alike;
a mixed page's other fragments are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app.features.lines import LINE_FEATURE_NAMES, LINE_MODEL_FEATURES, with_page_context
from app.training.dataset import Document
from app.training.featurize import Job
from app.training.metrics import classification_metrics
from app.training.rows import concat_rows

LINE_PARAMS: dict[str, Any] = {"depth": 6, "learning_rate": 0.05, "iterations": 400}


@dataclass
class LineRows:
    """Line feature rows with labels, groups, sources, areas and the page each belongs to."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    areas: np.ndarray
    pages: list[tuple[str, int]]
    page_label: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True where a row's label is its page's label (not a line's own truth: IAM's body band, a
    generated page's pasted box, a person's line verdict). Rows built without it: all True."""

    def __post_init__(self) -> None:
        if self.page_label.size != self.y.size:
            self.page_label = np.ones(self.y.size, dtype=bool)

    def extend(self, other: LineRows, *, page_prefix: str) -> LineRows:
        """These rows followed by ``other``'s, whose page keys get ``page_prefix``."""
        renamed = replace(other, pages=[(page_prefix + k[0], k[1]) for k in other.pages])
        return concat_rows(self, renamed)


def page_fragments(page: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A featurised page's fragments: (n, 4) boxes and (n, LINE_MODEL_FEATURES) rows."""
    n = 4 + len(LINE_FEATURE_NAMES)
    stored = page.get("lines", [])
    if isinstance(stored, np.ndarray):  # read from base features: already numbers, NaN for None
        rows = stored if stored.ndim == 2 and stored.shape[1] == n else np.zeros((0, n))
        boxes = np.asarray(rows[:, :4], dtype=np.float64)
        return boxes, with_page_context(np.asarray(rows[:, 4:], dtype=np.float64), boxes)
    raw = [ln for ln in stored if len(ln) == n]
    boxes = np.array([ln[:4] for ln in raw], dtype=np.float64).reshape(-1, 4)
    x = np.array(
        [[np.nan if v is None else float(v) for v in ln[4:]] for ln in raw], dtype=np.float64
    ).reshape(-1, len(LINE_FEATURE_NAMES))
    return boxes, with_page_context(x, boxes)


def _line_label(
    doc: Document, page: dict[str, Any], box: np.ndarray, *, truth: bool = True
) -> tuple[int, bool] | None:
    """The honest label of one fragment and whether it is the page's label (None: left out).

    See the module docstring. ``truth``: use the document's line verdicts (not on an augmented
    copy, whose geometry moved).
    """
    if truth and doc.line_truth and int(page["page"]) == 1:
        for label in (1, 0):
            boxes = [t[:4] for t in doc.line_truth if t[4] == label]
            if boxes and inside_share(box, boxes) >= TRUTH_INSIDE:
                return label, False
        if doc.label not in ("handwritten", "typed"):
            return None  # a mixed page's fragment nobody labelled
    if not doc.source.startswith("iam"):
        return int(doc.label == "handwritten"), True
    band = page.get("body_band")
    if not band:
        return None
    centre = (box[1] + box[3]) / 2
    if centre > band[1]:
        return None
    return int(centre >= band[0]), False


def line_rows(
    docs: list[Document],
    jobs: list[Job],
    results: dict[Job, list[dict[str, Any]]],
    *,
    truth: bool = True,
) -> LineRows:
    """Labelled line rows of the given documents (see the module docstring for the labels)."""
    x, y, groups, sources, areas, pages = [], [], [], [], [], []
    from_page: list[bool] = []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            boxes, rows = page_fragments(page)
            for box, row in zip(boxes, rows, strict=True):
                labelled = _line_label(doc, page, box, truth=truth)
                if labelled is None:
                    continue
                x.append(row)
                y.append(labelled[0])
                from_page.append(labelled[1])
                groups.append(doc.group)
                sources.append(doc.source)
                areas.append(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))
                pages.append((doc.sha256, int(page["page"])))
    return _line_rows(x, y, groups, sources, areas, pages, from_page)


def _line_rows(  # noqa: PLR0917 - the seven columns of LineRows
    x: list[np.ndarray],
    y: list[int],
    groups: list[str],
    sources: list[str],
    areas: list[float],
    pages: list[tuple[str, int]],
    from_page: list[bool],
) -> LineRows:
    return LineRows(
        x=np.array(x, dtype=np.float64).reshape(-1, len(LINE_MODEL_FEATURES)),
        y=np.array(y, dtype=int),
        groups=np.array(groups, dtype=object).astype(str),
        sources=np.array(sources, dtype=object).astype(str),
        areas=np.array(areas, dtype=np.float64),
        pages=pages,
        page_label=np.array(from_page, dtype=bool),
    )


FILLED_PREFIX = "filled-in:"
"""Source of the handwritten fragments of generated pages, before the handwriting's source."""
TRUTH_INSIDE = 0.5
"""A generated page's fragment is handwritten when at least this share of it lies inside a
written line's box, typed when none of it does; in between it is left out."""


def inside_share(box: np.ndarray, truth: list[tuple[int, int, int, int]]) -> float:
    """Share of ``box``'s area covered by the union of the ``truth`` boxes."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    mask = np.zeros((h, w), dtype=bool)
    for t in truth:
        a0, b0 = max(int(t[0]), x0) - x0, max(int(t[1]), y0) - y0
        a1, b1 = min(int(t[2]), x1) - x0, min(int(t[3]), y1) - y0
        if a1 > a0 and b1 > b0:
            mask[b0:b1, a0:a1] = True
    return float(mask.mean())


def filled_line_rows(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> LineRows:
    """Line rows of generated filled-in pages, labelled by where the handwriting was written.

    A handwritten fragment counts for a source of its own (``filled-in:<its handwriting's
    source>``), so handwriting among print weighs as much as a source; a typed one counts for
    the typed page's source. Keys name both documents (``typed+hand``), so a fold takes them
    only when it trains on both.
    """
    by_sha = {d.sha256: d for d in docs}
    x, y, groups, sources, areas, pages = [], [], [], [], [], []
    for job in jobs:
        typed = by_sha.get(job.sha256)
        hand = by_sha.get(job.variant.split(":", 1)[1])
        if typed is None or hand is None:
            continue
        for page in results.get(job, []):
            truth = [tuple(int(v) for v in b) for b in page.get("truth", [])]
            if not truth:
                continue
            boxes, rows = page_fragments(page)
            for box, row in zip(boxes, rows, strict=True):
                inside = inside_share(box, truth)  # type: ignore[arg-type]
                if 0.0 < inside < TRUTH_INSIDE:
                    continue
                label = int(inside >= TRUTH_INSIDE)
                x.append(row)
                y.append(label)
                groups.append(typed.group)
                # handwriting written among print is a kind of its own: its own source cell
                # (so it weighs as much as a source), typed fragments stay with their source
                sources.append(f"{FILLED_PREFIX}{hand.source}" if label else typed.source)
                areas.append(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))
                pages.append((f"{typed.sha256}+{hand.sha256}", int(page["page"])))
    return _line_rows(x, y, groups, sources, areas, pages, [False] * len(y))


def line_report(rows: LineRows, p: np.ndarray, seed: int) -> dict[str, Any]:
    """Line metrics on all test lines and per source."""
    out: dict[str, Any] = {
        "all": classification_metrics(rows.y, p, sources=rows.sources, seed=seed, bootstrap=300)
    }
    for source in sorted(set(rows.sources.tolist())):
        sel = rows.sources == source
        out[source] = classification_metrics(rows.y[sel], p[sel], seed=seed, bootstrap=300)
    return out
