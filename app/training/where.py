"""Where is the handwriting? Line boxes measured against truth on generated filled-in pages.

Real pages carry a page label, not a box per line, so the line boxes are measured on generated
pages whose truth is known: handwritten lines of a page of one source written into the free
space of a typed page of another (:func:`~app.training.augment.filled_in`). For each pair of
sources, the line model is trained on every *other* source, so both the print and the
handwriting are unseen, as on a user's page. The service's own steps follow: every fragment is
called, fragments of one row and one verdict are joined into display lines.

- **precision**: of the display lines called handwritten, the share lying (half their area or
  more) inside a written line's box;
- **recall**: of the written lines, the share covered (half their area or more) by display
  lines called handwritten.

Handwritten sources whose pages carry printed frame (a form's prompts, a register's headings, a
consent line) would paste print as "handwriting", so only sources of plain handwritten pages
give lines (:data:`FRAME_SOURCES` are left out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.models.classifiers import proba_handwritten
from app.models.predict import LineVerdict, merge_row_verdicts
from app.training.augment import FRAME_SOURCES
from app.training.corpus import Corpus
from app.training.dataset import Document
from app.training.featurize import Job
from app.training.fold import FitOptions, fit_line_model, lines_of_docs
from app.training.lines import page_fragments

log = logging.getLogger(__name__)

COVER = 0.5
"""A box counts as inside (or covered) when at least this share of its area is."""
GRID = 4
"""Masks are drawn on a grid of this many pixels (plenty for line boxes)."""


@dataclass(frozen=True)
class Pair:
    """Print of one source filled in with the handwriting of another."""

    typed: str
    hand: str


def choose_pairs(docs: list[Document], n: int) -> list[Pair]:
    """``n`` pairs of (typed source, handwritten source), each source used as evenly as possible.

    Sources are taken in a fixed order (sorted by name), so the same data gives the same pairs.
    """
    typed = sorted({d.source for d in docs if d.label == "typed"})
    hand = sorted(
        {d.source for d in docs if d.label == "handwritten" and d.source not in FRAME_SOURCES}
        - set(typed)
    )
    if not typed or not hand:
        return []
    return [Pair(typed[i % len(typed)], hand[(i * 7 + 3) % len(hand)]) for i in range(n)]


def filled_jobs(
    docs: list[Document], pairs: list[Pair], *, per_pair: int, lang: str, timeout: float
) -> dict[Pair, list[Job]]:
    """``per_pair`` generated pages of every pair (typed and handwritten pages drawn in turn)."""
    out: dict[Pair, list[Job]] = {}
    for pair in pairs:
        typed = sorted(
            (d for d in docs if d.source == pair.typed and d.label == "typed"),
            key=lambda d: d.sha256,
        )
        hand = sorted(
            (d for d in docs if d.source == pair.hand and d.label == "handwritten"),
            key=lambda d: d.sha256,
        )
        jobs = []
        for k in range(min(per_pair, max(len(typed), len(hand)))):
            t, h = typed[k % len(typed)], hand[k % len(hand)]
            jobs.append(Job.paired(t, h, "filled", lang=lang, timeout=timeout))
        out[pair] = jobs
    return out


def _mask(boxes: list[tuple[int, int, int, int]], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((shape[0] // GRID + 1, shape[1] // GRID + 1), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0 // GRID : y1 // GRID + 1, x0 // GRID : x1 // GRID + 1] = True
    return mask


def _inside(box: tuple[int, int, int, int], mask: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    cell = mask[y0 // GRID : y1 // GRID + 1, x0 // GRID : x1 // GRID + 1]
    return bool(cell.size) and float(cell.mean()) >= COVER


def score_page(
    lines: list[LineVerdict], truth: list[tuple[int, int, int, int]], shape: tuple[int, int]
) -> dict[str, int]:
    """Counts of one page: display lines called handwritten and written lines.

    ``called_true``: of the first, those inside a written line; ``written_found``: of the
    second, those covered by lines called handwritten.
    """
    shown = merge_row_verdicts(lines)
    hand = [ln.bbox for ln in shown if ln.label == "handwritten"]
    truth_mask = _mask(truth, shape)
    hand_mask = _mask(hand, shape)
    return {
        "called": len(hand),
        "called_true": sum(_inside(b, truth_mask) for b in hand),
        "written": len(truth),
        "written_found": sum(_inside(b, hand_mask) for b in truth),
    }


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def evaluate_where(
    corpus: Corpus,
    jobs: dict[Pair, list[Job]],
    results: dict[Job, list[dict[str, Any]]],
    opts: FitOptions,
) -> dict[str, Any]:
    """Precision and recall of the handwritten line boxes, both sources of each pair left out."""
    rows: list[dict[str, Any]] = []
    totals = dict.fromkeys(("pages", "called", "called_true", "written", "written_found"), 0)
    for pair, pair_jobs in jobs.items():
        train = {d.sha256 for d in corpus.docs if d.source not in (pair.typed, pair.hand)}
        model = fit_line_model(lines_of_docs(corpus.lines, train), opts)
        if model is None:
            continue
        counts = dict.fromkeys(totals, 0)
        for job in pair_jobs:
            for page in results.get(job, []):
                truth = [tuple(int(v) for v in b) for b in page.get("truth", [])]
                boxes, x = page_fragments(page)
                if not truth or not boxes.shape[0]:
                    continue
                p = proba_handwritten(model, x)
                lines = [
                    LineVerdict(
                        bbox=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
                        label="handwritten" if q >= 0.5 else "typed",
                        p_handwritten=float(q),
                    )
                    for b, q in zip(boxes, p, strict=True)
                ]
                shape = (int(page["height"]), int(page["width"]))
                page_counts = score_page(lines, truth, shape)  # type: ignore[arg-type]
                counts["pages"] += 1
                for k, v in page_counts.items():
                    counts[k] += v
        for k in totals:
            totals[k] += counts[k]
        rows.append(
            {
                "typed_source": pair.typed,
                "hand_source": pair.hand,
                **counts,
                "precision": _rate(counts["called_true"], counts["called"]),
                "recall": _rate(counts["written_found"], counts["written"]),
            }
        )
    return {
        "pairs": rows,
        "overall": {
            **totals,
            "precision": _rate(totals["called_true"], totals["called"]),
            "recall": _rate(totals["written_found"], totals["written"]),
        },
    }


def where_table(result: dict[str, Any]) -> str:
    """The where-figures as Markdown."""
    o = result["overall"]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    out = [
        "| typed source | handwritten source | pages | written lines | found | "
        "lines called handwritten | true | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out.extend(
        f"| {r['typed_source']} | {r['hand_source']} | {r['pages']} | {r['written']} "
        f"| {r['written_found']} | {r['called']} | {r['called_true']} "
        f"| {pct(r['precision'])} | {pct(r['recall'])} |"
        for r in result["pairs"]
    )
    out.append(
        f"| **all** | | {o['pages']} | {o['written']} | {o['written_found']} | {o['called']} "
        f"| {o['called_true']} | **{pct(o['precision'])}** | **{pct(o['recall'])}** |"
    )
    return "\n".join(out) + "\n"
