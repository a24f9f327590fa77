"""The features a model version was trained on, shipped with it: a base to retrain on.

A running service (the container above all) holds none of the pages the shipped model learned
from, so training on a user's few dozen pages alone would lose everything else. Every version
therefore carries ``base_features.npz``: the *numbers* extracted from its training pages (page
features, every text fragment's box and features, augmented copies, IAM header/body parts,
generated filled-in pages), with each page's label, source and group, and no image. Retraining
(:mod:`app.training.extend`) rebuilds the training corpus from it exactly as it was, adds the
user's pages, and refits.

It also holds the version's leave-one-source-out verdict of every page (default algorithm), so a
retrained version's figures on the same sources can be compared with the base's.

Format (one ``.npz``, no pickle): ``meta`` (JSON, UTF-8 bytes), ``page_x`` (float64, one row per
page result, :data:`~app.features.FEATURE_NAMES` order) and ``lines`` (float32, one row per
fragment: box then line features), fragments stored page after page.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DatasetError
from app.features import FEATURE_NAMES, FEATURE_VERSION
from app.models.registry import atomic_write_bytes
from app.training.dataset import PURE_LABELS, Document
from app.training.featurize import Job

log = logging.getLogger(__name__)

PACK_FILE = "base_features.npz"
PACK_FORMAT = 1
KINDS = ("orig", "aug", "iam_header", "iam_body", "filled")
"""The corpus variants a pack holds (the robustness copies and full-page OCR are not learned
from)."""
BASE_PATH = Path("base-features")
"""Where a base document "lives": nowhere (a pack has no image); only its name is shown."""


@dataclass
class LosoPage:
    """One page's leave-one-source-out verdict by the default algorithm."""

    source: str
    label: str
    predicted: str
    unsure: bool


@dataclass
class BasePack:
    """A corpus's documents, feature jobs and their results, read back from a pack."""

    docs: list[Document]
    jobs: dict[str, list[Job]]
    results: dict[Job, list[dict[str, Any]]]
    lang: str
    version: str
    settings_key: str = ""
    """The feature settings of its original pages (OCR language and options, DPI)."""
    loso_algorithm: str | None = None
    loso_pages: list[LosoPage] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """Every source, sorted."""
        return sorted({d.source for d in self.docs})

    def without(
        self, *, sources: set[str] | None = None, sha256: set[str] | None = None
    ) -> BasePack:
        """The pack without the documents of ``sources`` and those in ``sha256``.

        A generated filled-in page goes with its typed page; its handwriting's page may be gone
        (its features are kept: the page was generated once and is still a valid example).
        """
        sources, sha256 = sources or set(), sha256 or set()
        keep = [d for d in self.docs if d.source not in sources and d.sha256 not in sha256]
        kept = {d.sha256 for d in keep}
        jobs = {kind: [j for j in js if j.sha256 in kept] for kind, js in self.jobs.items()}
        results = {j: r for j, r in self.results.items() if j.sha256 in kept}
        pages = [p for p in self.loso_pages if p.source not in sources]
        return replace(self, docs=keep, jobs=jobs, results=results, loso_pages=pages)


def _base_doc(row: list[Any]) -> Document:
    """A document of a pack's ``docs`` row: sha256, label, source, group, name, unsure."""
    sha256, label, source, group, name, unsure = row
    return Document(
        path=BASE_PATH / name,
        label=label,
        sha256=sha256,
        source=source,
        group=group,
        unsure=bool(unsure),
    )


def write_pack(
    path: Path,
    docs: list[Document],
    jobs: dict[str, list[Job]],
    results: dict[Job, list[dict[str, Any]]],
    *,
    lang: str,
    version: str,
    loso: dict[str, Any] | None = None,
    loso_algorithm: str | None = None,
) -> int:
    """Write the pack of ``docs`` (atomically); returns its size in bytes.

    ``loso``: the leave-one-source-out summary of this version (its ``pages``), whose
    ``loso_algorithm`` verdicts are kept for comparisons.
    """
    page_x: list[list[float]] = []
    lines: list[np.ndarray] = []
    entries: list[list[Any]] = []
    width = 0
    for kind in KINDS:
        for job in jobs.get(kind, []):
            pages = results.get(job)
            if pages is None:
                continue
            meta = []
            for page in pages:
                page_x.append([float(page["features"][n]) for n in FEATURE_NAMES])
                stored = page.get("lines")
                frag = np.asarray([] if stored is None else stored, dtype=np.float32)
                if frag.size:
                    width = frag.shape[1]
                    lines.append(frag)
                meta.append(
                    [
                        int(page["page"]),
                        float(page["width"]),
                        float(page["height"]),
                        float(page["dpi"]),
                        page.get("body_band"),
                        page.get("truth"),
                        int(frag.shape[0]) if frag.size else 0,
                    ]
                )
            other = job.variant.split(":", 1)[1] if ":" in job.variant else None
            entries.append([kind, job.sha256, job.variant, job.settings_key(), other, meta])
    loso_pages: list[list[Any]] = []
    if loso is not None and loso_algorithm is not None:
        loso_pages = [
            [p["source"], p["label"], p[f"{loso_algorithm}:labels"], bool(p.get("unsure"))]
            for p in loso.get("pages", [])
            if f"{loso_algorithm}:labels" in p
        ]
    meta_json = {
        "format": PACK_FORMAT,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "line_width": width,
        "lang": lang,
        "version": version,
        "docs": [[d.sha256, d.label, d.source, d.group, d.path.name, d.unsure] for d in docs],
        "jobs": entries,
        "loso_algorithm": loso_algorithm if loso_pages else None,
        "loso_pages": loso_pages,
    }
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        meta=np.frombuffer(json.dumps(meta_json).encode("utf-8"), dtype=np.uint8),
        page_x=np.array(page_x, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)),
        lines=np.vstack(lines) if lines else np.zeros((0, width), dtype=np.float32),
    )
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return len(data)


def pack_sources(path: Path) -> list[str]:
    """The sources of a pack's documents, read from its metadata alone (no feature array).

    Raises:
        DatasetError: no pack, or an unreadable one.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
        return sorted({row[2] for row in meta["docs"]})
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise DatasetError(f"unreadable base features {path}: {e}") from e


def read_pack(path: Path, *, timeout: float = 30.0) -> BasePack:
    """Read a pack back into documents, feature jobs (one per document and kind) and results.

    Raises:
        DatasetError: no pack, an unreadable one, or one of another feature version.
    """
    if not path.is_file():
        raise DatasetError(f"no base features at {path} (the version was not trained with them)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
            page_x = npz["page_x"]
            lines = npz["lines"].astype(np.float64)  # one array; each page holds a view of it
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"unreadable base features {path}: {e}") from e
    if meta.get("format") != PACK_FORMAT:
        raise DatasetError(f"base features {path} are of format {meta.get('format')}")
    if meta.get("feature_version") != FEATURE_VERSION or meta.get("feature_names") != list(
        FEATURE_NAMES
    ):
        raise DatasetError(
            f"base features {path} are of feature version {meta.get('feature_version')}, this "
            f"inkwell extracts {FEATURE_VERSION}: retrain the base from its images"
        )
    lang = str(meta["lang"])
    settings_key = next((key for kind, _s, _v, key, _o, _p in meta["jobs"] if kind == "orig"), "")
    docs = [_base_doc(row) for row in meta["docs"]]
    by_sha = {d.sha256: d for d in docs}
    jobs: dict[str, list[Job]] = {kind: [] for kind in KINDS}
    results: dict[Job, list[dict[str, Any]]] = {}
    row = frag = 0
    for kind, sha, variant, _key, other, pages in meta["jobs"]:
        doc = by_sha[sha]
        job = Job(
            path=doc.path,
            sha256=sha,
            variant=variant,
            crop_body=False,
            lang=lang,
            timeout=timeout,
            other=BASE_PATH / other if other else None,
        )
        out = []
        for number, width, height, dpi, band, truth, n_lines in pages:
            entry: dict[str, Any] = {
                "page": number,
                "width": width,
                "height": height,
                "dpi": dpi,
                "features": dict(zip(FEATURE_NAMES, map(float, page_x[row]), strict=True)),
                "lines": lines[frag : frag + n_lines],
            }
            if band is not None or kind in {"orig", "aug"}:
                entry["body_band"] = band
            if truth is not None:
                entry["truth"] = truth
            out.append(entry)
            row += 1
            frag += n_lines
        results[job] = out
        jobs[kind].append(job)
    _align(jobs, docs)
    loso_pages = [LosoPage(s, lab, pred, bool(u)) for s, lab, pred, u in meta.get("loso_pages", [])]
    return BasePack(
        docs=docs,
        jobs=jobs,
        results=results,
        lang=lang,
        version=str(meta.get("version", "")),
        settings_key=settings_key,
        loso_algorithm=meta.get("loso_algorithm"),
        loso_pages=loso_pages,
    )


def _align(jobs: dict[str, list[Job]], docs: list[Document]) -> None:
    """Make the per-document kinds one job per document, in the order a corpus expects.

    ``orig``: every document; ``aug``: every pure one; IAM parts: every pure IAM one. A document
    whose features failed has a job without results (it contributes no row).
    """
    pure = [d for d in docs if d.label in PURE_LABELS]
    want = {
        "orig": (docs, "orig"),
        "aug": (pure, "aug0"),
        "iam_header": ([d for d in pure if d.source.startswith("iam")], "iam_header"),
        "iam_body": ([d for d in pure if d.source.startswith("iam")], "iam_body"),
    }
    for kind, (some, variant) in want.items():
        have = {j.sha256: j for j in jobs[kind]}
        lang = next(iter(have.values())).lang if have else "eng"
        jobs[kind] = [
            have.get(d.sha256)
            or Job(
                path=d.path, sha256=d.sha256, variant=variant, crop_body=False, lang=lang, timeout=0
            )
            for d in some
        ]
    if not jobs["iam_header"]:
        del jobs["iam_header"], jobs["iam_body"]


def loso_pages_from_csv(path: Path) -> dict[str, Any]:
    """A version's ``loso_pages.csv`` as the ``pages`` of a LOSO summary (:func:`write_pack`)."""
    import csv  # noqa: PLC0415 - only this reader needs it

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {"pages": [{**r, "unsure": r.get("unsure") == "yes"} for r in rows]}
