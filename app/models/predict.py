"""Pages -> verdicts with a loaded model version: page label, line verdicts, handwritten share.

The page label comes from the version's verdict rule (:mod:`app.models.verdict`): handwritten or
typed from the page probability and the handwritten share together, ``mixed`` when its detector
finds handwritten content beside the print (:mod:`app.models.mixed`). Every text fragment gets a
verdict of its own; fragments of one row with the same verdict are then shown as one line, so a
handwritten entry beside a printed label keeps a box of its own.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import numpy as np

from app.documents import Page
from app.errors import WorkerCrashedError
from app.features import FEATURE_NAMES, OcrSettings, PageRow, featurise_page
from app.features.extract import given_box, upright_box
from app.features.lines import LineInfo, with_page_context
from app.models.registry import ModelVersion
from app.models.verdict import (
    LABEL_HANDWRITTEN,
    LABEL_MIXED,
    LABEL_TYPED,
    Fragments,
    VerdictRule,
    page_share,
)

LABEL_EMPTY = "empty"


@dataclass(frozen=True)
class LineVerdict:
    """One text line: its box in the original page's pixels, label and probability."""

    bbox: tuple[int, int, int, int]
    label: str
    p_handwritten: float


@dataclass(frozen=True)
class PageVerdict:
    """The verdict on one page."""

    page: int
    label: str
    confidence: float
    p_handwritten: float
    width: int
    height: int
    dpi: float | None
    elapsed_ms: float
    empty: bool
    handwritten_share: float | None = None
    lines: list[LineVerdict] = field(default_factory=list)
    orientation: int = 0
    skew: float = 0.0


@dataclass(frozen=True)
class PageMeta:
    """A page's number and size, kept while its image is dropped."""

    number: int
    width: int
    height: int
    dpi: float | None


def final_label(
    p_page: float, share: float | None, rule: VerdictRule, fragments: Fragments | None = None
) -> str:
    """The page label from the page probability, the handwritten share and the fragments."""
    return rule.label(p_page, share, fragments)


ROW_GAP = 2.5
"""Fragments of one verdict on one row closer than this many heights are shown as one line."""


def merge_row_verdicts(lines: list[LineVerdict]) -> list[LineVerdict]:
    """Join fragments that share a row and a verdict into one line (p: area-weighted mean).

    Fragments of different verdicts are never joined, so handwriting beside print on one row
    keeps its own box.
    """
    if len(lines) < 2:
        return list(lines)
    boxes = np.array([ln.bbox for ln in lines], dtype=np.float64)
    hand = np.array([ln.label == LABEL_HANDWRITTEN for ln in lines])
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(lines)):
        overlap = np.minimum(boxes[:, 3], boxes[i, 3]) - np.maximum(boxes[:, 1], boxes[i, 1])
        gap = np.maximum(boxes[:, 0], boxes[i, 0]) - np.minimum(boxes[:, 2], boxes[i, 2])
        near = (
            (hand == hand[i])
            & (overlap >= 0.5 * np.minimum(heights, heights[i]))
            & (gap < ROW_GAP * np.maximum(heights, heights[i]))
        )
        for j in np.flatnonzero(near):
            parent[find(int(j))] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(lines)):
        groups.setdefault(find(i), []).append(i)
    merged = []
    for members in groups.values():
        b = boxes[members]
        area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1.0)
        p = float(np.average([lines[m].p_handwritten for m in members], weights=area))
        merged.append(
            LineVerdict(
                bbox=(
                    int(b[:, 0].min()),
                    int(b[:, 1].min()),
                    int(b[:, 2].max()),
                    int(b[:, 3].max()),
                ),
                label=lines[members[0]].label,
                p_handwritten=p,
            )
        )
    merged.sort(key=lambda ln: (ln.bbox[1], ln.bbox[0]))
    return merged


def _lines(
    version: ModelVersion,
    infos: list[LineInfo],
    orientation: int = 0,
    shape: tuple[int, int] = (0, 0),
) -> tuple[list[LineVerdict], float | None, Fragments | None]:
    """Display lines, the handwritten share and the fragments (boxes, probabilities).

    The boxes of a page that was read turned (``orientation``; ``shape`` is the given page's
    height and width) are turned upright for the models (a fragment's height, its row) and
    back for display.
    """
    if not infos:
        return [], None, None
    upright = [upright_box(i.bbox, orientation, shape) for i in infos]
    boxes = np.array(upright, dtype=np.float64).reshape(-1, 4)
    x = with_page_context(np.array([i.features for i in infos], dtype=np.float64), boxes)
    p = version.predict_lines(x)
    if p is None:
        return [], None, None
    verdicts = [
        LineVerdict(
            bbox=box,
            label=LABEL_HANDWRITTEN if q >= 0.5 else LABEL_TYPED,
            p_handwritten=float(q),
        )
        for box, q in zip(upright, p, strict=True)
    ]
    merged = merge_row_verdicts(verdicts)
    if orientation % 360:
        merged = [replace(v, bbox=given_box(v.bbox, orientation, shape)) for v in merged]
    return merged, page_share((boxes, p)), (boxes, p)


def iter_featurised(
    pages: Iterable[Page],
    ocr: OcrSettings,
    *,
    executor: Executor | None = None,
    window: int = 2,
    on_page: Callable[[Page], None] | None = None,
) -> Generator[tuple[PageMeta, PageRow], None, None]:
    """Featurise pages as they come, at most ``window`` of them in flight; yield them in order.

    A page's image is dropped as soon as its worker has answered, so memory depends on
    ``window``, not on the number of pages. ``on_page`` sees each page as it is taken (e.g. to
    make a thumbnail) and must not keep its image. Closing the iterator early cancels the pages
    still queued.
    """
    window = max(1, window)
    pending: deque[tuple[PageMeta, Future[PageRow]]] = deque()
    try:
        for page in pages:
            if on_page is not None:
                on_page(page)
            meta = PageMeta(page.number, page.width, page.height, page.dpi)
            if executor is None:
                yield meta, featurise_page(page.image, ocr)
                continue
            pending.append((meta, executor.submit(featurise_page, page.image, ocr)))
            del page
            while len(pending) >= window:
                head, fut = pending.popleft()
                yield head, fut.result()
        while pending:
            head, fut = pending.popleft()
            yield head, fut.result()
    except BrokenProcessPool as e:
        raise WorkerCrashedError(
            "a worker process died while reading this document (killed, out of memory, or a "
            "crash in the OCR engine); the workers are restarted: retry the request"
        ) from e
    finally:
        for _, fut in pending:  # an error on one page: the others are not worth finishing
            fut.cancel()


def featurise_stream(
    pages: Iterable[Page],
    ocr: OcrSettings,
    *,
    executor: Executor | None = None,
    window: int = 2,
    on_page: Callable[[Page], None] | None = None,
) -> list[tuple[PageMeta, PageRow]]:
    """Every page of :func:`iter_featurised`, in order."""
    return list(iter_featurised(pages, ocr, executor=executor, window=window, on_page=on_page))


def verdicts_for(
    rows: Sequence[tuple[PageMeta, PageRow]], version: ModelVersion, algorithm: str | None = None
) -> list[PageVerdict]:
    """Page verdicts from featurised pages (one batched prediction for the whole document)."""
    if not rows:
        return []
    x = np.array([r.features for _, r in rows], dtype=np.float64)
    proba = version.predict(x, algorithm)
    rule = version.verdict_rule(algorithm)
    empty_col = FEATURE_NAMES.index("empty")
    verdicts = []
    for (meta, row), p in zip(rows, proba, strict=True):
        empty = row.features[empty_col] > 0.5
        lines, share, frags = (
            ([], None, None)
            if empty
            else _lines(version, row.lines, row.orientation, (meta.height, meta.width))
        )
        label = LABEL_EMPTY if empty else final_label(float(p), share, rule, frags)
        q = rule.score(float(p), share)
        verdicts.append(
            PageVerdict(
                page=meta.number,
                label=label,
                confidence=float(max(q, 1 - q)),
                p_handwritten=float(q),
                width=meta.width,
                height=meta.height,
                dpi=meta.dpi,
                elapsed_ms=row.elapsed_ms,
                empty=bool(empty),
                handwritten_share=share,
                lines=lines,
                orientation=row.orientation,
                skew=row.skew,
            )
        )
    return verdicts


def classify_pages(
    pages: Iterable[Page],
    version: ModelVersion,
    *,
    algorithm: str | None = None,
    ocr: OcrSettings | None = None,
    executor: Executor | None = None,
    window: int = 4,
    on_page: Callable[[Page], None] | None = None,
) -> list[PageVerdict]:
    """Classify pages (in parallel when an executor is given), order preserved.

    ``window`` bounds the pages in flight (the service and the CLI pass two per worker).
    """
    rows = featurise_stream(
        pages, ocr or OcrSettings(), executor=executor, window=window, on_page=on_page
    )
    return verdicts_for(rows, version, algorithm)


def document_label(verdicts: Sequence[PageVerdict]) -> str:
    """``handwritten`` or ``typed`` when every non-empty page agrees, else ``mixed``."""
    return labels_of_document([v.label for v in verdicts])


def labels_of_document(page_labels: Iterable[str]) -> str:
    """The document label from its pages' labels (empty pages do not count)."""
    labels = {label for label in page_labels if label != LABEL_EMPTY}
    if not labels:
        return LABEL_EMPTY
    if len(labels) == 1:
        return labels.pop()
    return LABEL_MIXED
