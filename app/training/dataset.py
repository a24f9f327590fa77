"""Find labelled documents: a folder of label sub-folders, or a manifest.csv."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from app.documents.loader import detect_format
from app.errors import AppError, DatasetError
from app.models.registry import sha256_file

log = logging.getLogger(__name__)

LABELS = ("handwritten", "typed", "mixed")
"""Page labels: ``mixed`` is a page with substantial typed text and substantial handwriting (a
printed form or register filled in by hand); the page model learns from the two pure labels."""
PURE_LABELS = ("handwritten", "typed")
LABEL_ALIASES = {
    "mixed": "mixed",
    "mixte": "mixed",
    "filled": "mixed",
    "handwritten": "handwritten",
    "handwriting": "handwritten",
    "manuscrit": "handwritten",
    "manuscrits": "handwritten",
    "typed": "typed",
    "printed": "typed",
    "typewritten": "typed",
    "dactylographie": "typed",
    "dactylographié": "typed",
    "imprime": "typed",
}


def normalise_label(name: str) -> str | None:
    """Map a folder or manifest label to one of :data:`LABELS` (accents and case ignored)."""
    key = name.strip().lower()
    if key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    plain = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    return LABEL_ALIASES.get(plain)


@dataclass(frozen=True)
class Document:
    """One labelled file (a PDF contributes all its pages)."""

    path: Path
    label: str
    sha256: str
    source: str
    group: str
    split: str = ""
    unsure: bool = False
    """The label audit beside the manifest (``AUDIT.csv``) marks this page's label ``unsure``:
    scored apart, never in the headline figures."""
    line_truth: tuple[tuple[int, int, int, int, int], ...] = ()
    """Line boxes whose verdict a person gave (x0, y0, x1, y1 in the page's pixels, 1 for
    handwritten, 0 for typed): the manifest's optional ``lines`` column, as the corrections
    store writes it. The fragments they cover take their label (:mod:`app.training.lines`)."""


AUDIT_FILE = "AUDIT.csv"


@dataclass
class Dataset:
    """Documents found, and what was skipped with the reason."""

    root: Path
    documents: list[Document]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def manifest_hash(self) -> str:
        """A hash of (sha256, label, group, split) of every document: identifies the data."""
        h = hashlib.sha256()
        for d in sorted(self.documents, key=lambda d: d.sha256):
            h.update(f"{d.sha256},{d.label},{d.group},{d.split}\n".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Documents per label."""
        return {label: sum(d.label == label for d in self.documents) for label in LABELS}


def _check_file(path: Path) -> str | None:
    """Return a reason to skip the file, or None when it looks loadable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError as e:
        return f"unreadable: {e.strerror}"
    if not head:
        return "empty file"
    if detect_format(head + b"\0" * 32) is None:
        return "not a PDF or supported image"
    return None


def _add(
    docs: list[Document],
    seen: dict[str, Path],
    skipped: list[tuple[str, str]],
    *,
    path: Path,
    label: str,
    source: str,
    group: str,
    split: str,
    unsure: bool = False,
    line_truth: tuple[tuple[int, int, int, int, int], ...] = (),
) -> None:
    reason = _check_file(path)
    if reason:
        skipped.append((str(path), reason))
        return
    sha = sha256_file(path)
    if sha in seen:
        skipped.append((str(path), f"duplicate of {seen[sha]}"))
        return
    seen[sha] = path
    docs.append(
        Document(
            path=path,
            label=label,
            sha256=sha,
            source=source,
            group=group,
            split=split,
            unsure=unsure,
            line_truth=line_truth,
        )
    )


def discover(path: Path) -> Dataset:
    """Find labelled documents under a folder of label sub-folders, or in a manifest.csv.

    Raises:
        DatasetError: the path does not exist or holds no labelled document.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    dataset = _from_manifest(path) if path.is_file() else _from_folders(path)
    if not dataset.documents:
        raise DatasetError(
            f"no labelled document found in {path} (expected handwritten/ and typed/ "
            "sub-folders, or a manifest.csv with path,label columns)"
        )
    for where, why in dataset.skipped:
        log.info("skipped %s: %s", where, why)
    return dataset


def _from_folders(root: Path) -> Dataset:
    if (root / "manifest.csv").is_file():
        return _from_manifest(root / "manifest.csv")
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = normalise_label(sub.name)
        files = sorted(f for f in sub.rglob("*") if f.is_file() and not f.name.startswith("."))
        if label is None:
            skipped.extend((str(f), f"unknown label folder '{sub.name}'") for f in files)
            continue
        for f in files:
            rel = f.relative_to(root)
            _add(
                docs, seen, skipped, path=f, label=label, source=sub.name, group=str(rel), split=""
            )
    return Dataset(root=root, documents=docs, skipped=skipped)


def unsure_paths(root: Path) -> set[str]:
    """Paths (relative, as in the manifest) that ``AUDIT.csv`` beside it marks ``unsure``."""
    audit = root / AUDIT_FILE
    if not audit.is_file():
        return set()
    try:
        with audit.open(newline="", encoding="utf-8") as fh:
            return {
                (row.get("path") or "").strip()
                for row in csv.DictReader(fh)
                if (row.get("certainty") or "").strip().lower() == "unsure"
            }
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        log.warning("cannot read %s (%s): no page is marked unsure", audit, e)
        return set()


def read_table(path: Path, error: type[AppError]) -> list[dict[str, str]]:
    """The rows of a CSV with at least the columns ``path`` and ``label``.

    Raises:
        error: unreadable, or without those columns.
    """
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
                raise error(f"{path} needs at least the columns path,label")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise error(f"cannot read {path}: {e}") from e


def _from_manifest(manifest: Path) -> Dataset:
    root = manifest.parent
    unsure = unsure_paths(root)
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    rows = read_table(manifest, DatasetError)
    for n, row in enumerate(rows, 2):
        rel = (row.get("path") or "").strip()
        label = normalise_label(row.get("label") or "")
        if not rel:
            skipped.append((f"{manifest}:{n}", "empty path"))
            continue
        if label is None:
            skipped.append((rel, f"unknown label '{row.get('label')}'"))
            continue
        file = (root / rel).resolve()
        if not file.is_file():
            skipped.append((rel, "file not found"))
            continue
        split = (row.get("split") or "").strip().lower()
        if split not in ("", "train", "test"):
            skipped.append((rel, f"unknown split '{split}'"))
            continue
        try:
            line_truth = parse_line_truth(row.get("lines") or "")
        except ValueError as e:
            skipped.append((rel, f"unreadable lines column: {e}"))
            continue
        _add(
            docs,
            seen,
            skipped,
            path=file,
            label=label,
            source=(row.get("source") or "").strip() or Path(rel).parts[0],
            group=(row.get("group") or "").strip() or rel,
            split=split,
            unsure=rel in unsure,
            line_truth=line_truth,
        )
    return Dataset(root=root, documents=docs, skipped=skipped)


def parse_line_truth(text: str) -> tuple[tuple[int, int, int, int, int], ...]:
    """A manifest's ``lines`` cell: JSON ``[{"bbox": [x0, y0, x1, y1], "label": ...}, ...]``.

    Raises:
        ValueError: not that shape, or a label that is neither handwritten nor typed.
    """
    if not text.strip():
        return ()
    try:
        items = json.loads(text)
        out = []
        for item in items:
            label = normalise_label(str(item["label"]))
            if label not in PURE_LABELS:
                raise ValueError(f"a line is handwritten or typed, not {item['label']!r}")
            x0, y0, x1, y1 = (int(v) for v in item["bbox"])
            out.append((x0, y0, x1, y1, int(label == "handwritten")))
    except (TypeError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from e
    return tuple(out)
