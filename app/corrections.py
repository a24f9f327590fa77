"""Pages whose verdict a user corrected: kept as a dataset that training reads like any other.

A correction is one page of one document with the label it should have had (and, optionally,
the right verdict of some of its line boxes). The store is a folder with a ``manifest.csv`` in the
format of ``../shared/datasets`` (``path,label,source,group,split`` plus columns of its own that
readers ignore) and one PNG per page under ``pages/``:

- ``source`` is ``corrections``: the user's pages are a source of their own, never mixed with the
  sources of the shipped model when it is evaluated leave-one-source-out;
- ``group`` is the document's sha256: pages of one document stay on one side of every split.

A correction's id is the document's sha256 (first 16 hex digits) and the page number, so
correcting a page again replaces its label. Writes are atomic: the page image is written under a
temporary name and renamed, then the manifest is rewritten the same way; a removal takes the row
out of the manifest before the image, so the manifest never names a missing file. One lock file
serialises writers (threads and processes: the service and the CLI may share the folder).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from app.documents import Page, open_document
from app.errors import CorrectionNotFoundError, InputError, PageOutOfRangeError, StorageError
from app.models.registry import atomic_write_bytes, atomic_write_text
from app.training.dataset import normalise_label

SOURCE = "corrections"
FIELDS = [
    "path",
    "label",
    "source",
    "group",
    "split",
    "id",
    "filename",
    "page",
    "lines",
    "created_at",
]
ID_PATTERN = r"^[0-9a-f]{16}-p[0-9]{1,6}$"

PageLabel = Literal["handwritten", "typed", "mixed"]
LineLabel = Literal["handwritten", "typed"]

_THREAD_LOCK = threading.Lock()
log = logging.getLogger(__name__)


class LineCorrection(BaseModel):
    """The right verdict of one line box of the page."""

    bbox: tuple[int, int, int, int] = Field(description="[x0, y0, x1, y1] in the page's pixels")
    label: LineLabel


class Correction(BaseModel):
    """One corrected page, as stored."""

    id: str = Field(description="document sha256 (16 hex digits) and page: `<sha>-p<page>`")
    label: PageLabel
    page: int
    document_sha256: str
    filename: str | None
    path: str = Field(description="the page image, relative to the corrections folder")
    source: str
    group: str
    lines: list[LineCorrection] | None = None
    created_at: str


def correction_id(sha256: str, page: int) -> str:
    """The id of page ``page`` of the document ``sha256``."""
    return f"{sha256[:16]}-p{page}"


def read_page(
    source: Path,
    number: int,
    *,
    filename: str,
    dpi: int,
    max_pages: int,
    max_pixels: int,
    timeout: float,
) -> Page:
    """Page ``number`` of the document at ``source``, rendered as classification renders it.

    Raises:
        PageOutOfRangeError: the document has fewer pages.
        InputError: the document cannot be read.
    """
    doc = open_document(
        source,
        filename=filename,
        dpi=dpi,
        max_pages=max_pages,
        max_pixels=max_pixels,
        timeout=timeout,
    )
    if not 1 <= number <= doc.page_count:
        raise PageOutOfRangeError(
            f"page {number} is not in the document ({doc.page_count} page(s))"
        )
    for page in doc.pages(first=number, last=number):
        return page
    raise PageOutOfRangeError(f"page {number} could not be read")  # pragma: no cover


def _png(page: Page) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(np.asarray(page.image, dtype=np.uint8), mode="L")
    dpi = (page.dpi, page.dpi) if page.dpi else None
    if dpi:
        image.save(buf, format="PNG", dpi=dpi)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()


class CorrectionStore:
    """The corrections folder: ``manifest.csv`` and ``pages/<id>.png``."""

    def __init__(self, root: Path) -> None:
        """The store at ``root`` (made on the first write)."""
        self.root = root
        self.manifest = root / "manifest.csv"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access; an unwritable folder is a StorageError, not a crash."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with _THREAD_LOCK, (self.root / ".lock").open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError as e:
            raise StorageError(f"cannot write the corrections folder {self.root}: {e}") from e

    def _rows(self) -> list[dict[str, str]]:
        """The manifest's rows as written (a row edited by hand is kept as it is)."""
        if not self.manifest.is_file():
            return []
        try:
            with self.manifest.open(newline="", encoding="utf-8") as fh:
                return [{k: v or "" for k, v in row.items() if k} for row in csv.DictReader(fh)]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise StorageError(f"cannot read {self.manifest}: {e}") from e

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r.get("created_at", "") + r.get("id", "")))
        atomic_write_text(self.manifest, buf.getvalue())

    @staticmethod
    def _record(row: dict[str, str]) -> Correction | None:
        """The correction of a row; None (logged) for a row that is not one (edited by hand)."""
        try:
            return Correction(
                id=row["id"],
                label=normalise_label(row["label"]) or row["label"],
                page=int(row["page"]),
                document_sha256=row["group"],
                filename=row.get("filename") or None,
                path=row["path"],
                source=row["source"],
                group=row["group"],
                lines=json.loads(row["lines"]) if row.get("lines") else None,
                created_at=row["created_at"],
            )
        except (KeyError, ValueError) as e:  # ValidationError is a ValueError
            log.warning("corrections manifest: row %s left out: %s", row.get("id") or "?", e)
            return None

    def all(self) -> list[Correction]:
        """Every correction in the manifest's order (rows that are not one: left out, kept)."""
        return [c for c in map(self._record, self._rows()) if c is not None]

    def get(self, correction_id: str) -> Correction:
        """One correction (CorrectionNotFoundError if there is none with that id)."""
        for c in self.all():
            if c.id == correction_id:
                return c
        raise CorrectionNotFoundError(f"no correction '{correction_id}'")

    def add(
        self,
        page: Page,
        *,
        sha256: str,
        filename: str | None,
        label: PageLabel,
        lines: list[LineCorrection] | None = None,
    ) -> Correction:
        """Keep ``page`` with its right label; a page corrected before is replaced."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InputError("the document's sha256 must be 64 hex digits")
        for line in lines or []:
            x0, y0, x1, y1 = line.bbox
            if not (0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height):
                raise InputError(
                    f"line box {list(line.bbox)} is not inside the page ({page.width}x"
                    f"{page.height})"
                )
        cid = correction_id(sha256, page.number)
        rel = f"pages/{cid}.png"
        row = {
            "path": rel,
            "label": label,
            "source": SOURCE,
            "group": sha256,
            "split": "",
            "id": cid,
            "filename": (filename or "")[:255],
            "page": str(page.number),
            "lines": json.dumps([ln.model_dump(mode="json") for ln in lines]) if lines else "",
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        with self._locked():
            atomic_write_bytes(self.root / rel, _png(page))
            rows = [r for r in self._rows() if r.get("id") != cid]
            self._write_rows([*rows, row])
        made = self._record(row)
        assert made is not None
        return made

    def remove(self, correction_id: str) -> None:
        """Forget a correction: its row, then its image."""
        with self._locked():
            rows = self._rows()
            keep = [r for r in rows if r.get("id") != correction_id]
            if len(keep) == len(rows):
                raise CorrectionNotFoundError(f"no correction '{correction_id}'")
            gone = [r for r in rows if r.get("id") == correction_id]
            self._write_rows(keep)
            for r in gone:
                if r.get("path"):
                    (self.root / r["path"]).unlink(missing_ok=True)
