"""Labelled line rows for the line model, and its per-source metrics.

Honest line labels come from IAM forms: lines above the handwritten body (the printed header) are
typed and lines inside it handwritten: same page, same scanner, same resolution, so the only
difference is the writing. Lines below the body (the "Name:" line and signatures) are left out.
Every other document's lines take the document's label: FUNSD's handwritten fill-ins are
therefore label noise among its "typed" lines, which is why line metrics are reported per source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.features.lines import LINE_FEATURE_NAMES
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

    def extend(self, other: LineRows, *, page_prefix: str) -> LineRows:
        """These rows followed by ``other``'s, whose page keys get ``page_prefix``."""
        renamed = replace(other, pages=[(page_prefix + k[0], k[1]) for k in other.pages])
        return concat_rows(self, renamed)


def line_rows(
    docs: list[Document], jobs: list[Job], results: dict[Job, list[dict[str, Any]]]
) -> LineRows:
    """Labelled line rows of the given documents (see the module docstring for the labels)."""
    n = 4 + len(LINE_FEATURE_NAMES)
    x, y, groups, sources, areas, pages = [], [], [], [], [], []
    for doc, job in zip(docs, jobs, strict=True):
        for page in results.get(job, []):
            band = page.get("body_band")
            for ln in page.get("lines", []):
                if len(ln) != n:
                    continue
                x0, y0, x1, y1 = ln[:4]
                if doc.source.startswith("iam"):
                    if not band:
                        continue
                    centre = (y0 + y1) / 2
                    if centre > band[1]:
                        continue
                    label = int(centre >= band[0])
                else:
                    label = int(doc.label == "handwritten")
                x.append([np.nan if v is None else float(v) for v in ln[4:]])
                y.append(label)
                groups.append(doc.group)
                sources.append(doc.source)
                areas.append(max(0, x1 - x0) * max(0, y1 - y0))
                pages.append((doc.sha256, int(page["page"])))
    return LineRows(
        x=np.array(x, dtype=np.float64).reshape(-1, len(LINE_FEATURE_NAMES)),
        y=np.array(y, dtype=int),
        groups=np.array(groups),
        sources=np.array(sources),
        areas=np.array(areas, dtype=np.float64),
        pages=pages,
    )


def line_report(rows: LineRows, p: np.ndarray, seed: int) -> dict[str, Any]:
    """Line metrics on all test lines and per source."""
    out: dict[str, Any] = {
        "all": classification_metrics(rows.y, p, sources=rows.sources, seed=seed, bootstrap=300)
    }
    for source in sorted(set(rows.sources.tolist())):
        sel = rows.sources == source
        out[source] = classification_metrics(rows.y[sel], p[sel], seed=seed, bootstrap=300)
    return out
