"""Turn a PDF or an image (path or bytes) into a list of greyscale pages.

Formats are detected from the content (magic bytes), never from the file name. Every failure is
mapped to an :class:`~app.errors.AppError` with a message a user understands.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pdf2image
from pdf2image import exceptions as pdf_exc
from PIL import Image, ImageOps, ImageSequence

from app.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyInputError,
    EncryptedDocumentError,
    ImageTooSmallError,
    MissingDependencyError,
    OcrTimeoutError,
    TooManyPagesError,
    UnsupportedFormatError,
)

log = logging.getLogger(__name__)

PathOrBytes = str | Path | bytes

DEFAULT_MAX_PAGES = 200
DEFAULT_MAX_PIXELS = 120_000_000
MIN_SIDE = 8
PDF_BATCH = 4  # pages per pdftoppm call: amortises its start, bounds memory
HEAD_BYTES = 1024

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
    "webp": "image/webp",
}


@dataclass(frozen=True)
class Page:
    """One page: an 8-bit greyscale array (0 = black ink, 255 = white paper)."""

    image: np.ndarray
    number: int
    dpi: float | None

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.image.shape[0])


def detect_format(data: bytes, size: int | None = None) -> str | None:
    """Return the format (``pdf``, ``png``, ``jpeg``, ``tiff``, ``bmp``, ``webp``) or None.

    ``data`` may be just the first kilobyte of a file whose ``size`` is given.
    """
    size = len(data) if size is None else size
    head = data[:16]
    fmt: str | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = "png"
    elif head.startswith(b"\xff\xd8\xff"):
        fmt = "jpeg"
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        fmt = "tiff"
    elif head.startswith(b"BM") and size > 26:
        fmt = "bmp"
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "webp"
    elif b"%PDF-" in data[:1024]:
        fmt = "pdf"
    return fmt


def _probe(source: PathOrBytes) -> tuple[bytes, int]:
    """The first bytes (enough to tell the format) and the size, without reading a whole file."""
    if isinstance(source, bytes):
        return source[:HEAD_BYTES], len(source)
    path = Path(source)
    try:
        with path.open("rb") as fh:
            return fh.read(HEAD_BYTES), path.stat().st_size
    except FileNotFoundError as e:
        raise CorruptDocumentError(f"File not found: {path}") from e
    except IsADirectoryError as e:
        raise UnsupportedFormatError(f"{path} is a directory, not a document") from e
    except OSError as e:
        raise CorruptDocumentError(f"Cannot read {path}: {e.strerror}") from e


@dataclass(frozen=True)
class Document:
    """An opened, checked document whose pages are rendered only when iterated.

    ``page_count`` is known (and the page limit enforced) before any page is rendered; iterating
    :meth:`pages` renders a PDF a few pages at a time and decodes image frames one at a time, so
    memory does not grow with the length of the document.
    """

    name: str
    fmt: str
    page_count: int
    source: bytes | Path
    """The bytes, or the file (read page by page, never whole: an upload spooled to disk)."""
    dpi: float | None
    max_pixels: int
    timeout: float

    @property
    def media_type(self) -> str:
        """The MIME type of the detected format."""
        return MEDIA_TYPES[self.fmt]

    def pages(
        self, batch: int = PDF_BATCH, *, first: int = 1, last: int | None = None
    ) -> Iterator[Page]:
        """The pages ``first`` to ``last`` (default: all) in document order, numbered from 1.

        Raises:
            AppError: a page cannot be rendered or decoded, or is too large or too small.
        """
        first = max(1, first)
        last = self.page_count if last is None else min(last, self.page_count)
        if self.fmt == "pdf":
            yield from _pdf_pages(self, batch=max(1, batch), first=first, last=last)
        else:
            yield from _image_pages(self, first=first, last=last)


def open_document(
    source: PathOrBytes,
    *,
    filename: str | None = None,
    dpi: int = 300,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout: float = 120.0,
) -> Document:
    """Read, identify and count a PDF or image, without rendering its pages.

    Args:
        source: a path or the raw bytes.
        filename: the name to quote in messages (defaults to the path).
        dpi: resolution at which PDF pages are rendered.
        max_pages: refuse documents with more pages, before rendering them.
        max_pixels: refuse pages with more pixels (decompression bombs).
        timeout: seconds allowed to each poppler call.

    Raises:
        AppError: a subclass that says what is wrong with the input.
    """
    head, size = _probe(source)
    src: bytes | Path = source if isinstance(source, bytes) else Path(source)
    name = filename or (str(source) if not isinstance(source, bytes) else "upload")
    if size == 0:
        raise EmptyInputError(f"{name} is empty (0 bytes)")
    fmt = detect_format(head, size)
    if fmt is None:
        raise UnsupportedFormatError(
            f"{name} is not a PDF or a supported image (PNG, JPEG, TIFF, BMP, WebP)"
        )
    if fmt == "pdf":
        count, render_dpi = _pdf_layout(
            src, name=name, dpi=dpi, max_pages=max_pages, max_pixels=max_pixels, timeout=timeout
        )
    else:
        count = _image_count(src, name=name, max_pages=max_pages, max_pixels=max_pixels)
        render_dpi = None
    log.debug("opened %s: %s, %d page(s)", name, fmt, count)
    return Document(
        name=name,
        fmt=fmt,
        page_count=count,
        source=src,
        dpi=render_dpi,
        max_pixels=max_pixels,
        timeout=timeout,
    )


def load_pages(source: PathOrBytes, **options: Any) -> list[Page]:
    """Every page of a PDF or image in memory (``options``: those of :func:`open_document`).

    For short documents (training pages, tests); long ones should iterate
    :meth:`Document.pages` instead.
    """
    return list(open_document(source, **options).pages())


# --------------------------------------------------------------------------------------- PDF
_PAGE_SIZE = re.compile(r"([\d.]+) x ([\d.]+) pts")


def _pdfinfo(source: bytes | Path, *, name: str, timeout: float) -> dict[str, object]:
    if shutil.which("pdfinfo") is None or shutil.which("pdftoppm") is None:
        raise MissingDependencyError(
            "Could not find program 'pdftoppm'/'pdfinfo' (install poppler-utils)"
        )
    try:
        seconds = int(timeout) or 1
        info: dict[str, object] = (
            pdf2image.pdfinfo_from_bytes(source, timeout=seconds)
            if isinstance(source, bytes)
            else pdf2image.pdfinfo_from_path(str(source), timeout=seconds)
        )
    except pdf_exc.PDFInfoNotInstalledError as e:
        raise MissingDependencyError(
            "Could not find program 'pdfinfo' (install poppler-utils)"
        ) from e
    except pdf_exc.PDFPopplerTimeoutError as e:
        raise OcrTimeoutError(f"Reading {name} took longer than {timeout:g} s") from e
    except pdf_exc.PDFPageCountError as e:
        text = str(e).lower()
        if "password" in text or "encrypt" in text:
            raise EncryptedDocumentError(f"{name} is protected by a password") from e
        raise CorruptDocumentError(f"{name} is a damaged or truncated PDF") from e
    return info


def _pdf_layout(
    source: bytes | Path, *, name: str, dpi: int, max_pages: int, max_pixels: int, timeout: float
) -> tuple[int, float]:
    """Page count (checked against the limit) and the resolution to render at."""
    info = _pdfinfo(source, name=name, timeout=timeout)
    count = int(str(info.get("Pages", 0)))
    if count < 1:
        raise CorruptDocumentError(f"{name} is a PDF with no pages")
    if count > max_pages:
        raise TooManyPagesError(f"{name} has {count} pages; the limit is {max_pages}")
    render_dpi = float(dpi)
    match = _PAGE_SIZE.search(str(info.get("Page size", "")))
    if match:  # keep huge pages under the pixel limit by lowering the resolution
        w_in, h_in = float(match.group(1)) / 72.0, float(match.group(2)) / 72.0
        if w_in * h_in * render_dpi**2 > max_pixels:
            render_dpi = max(10.0, (max_pixels / max(w_in * h_in, 1e-6)) ** 0.5)
            log.warning("%s: pages are large, rendering at %.0f dpi", name, render_dpi)
    return count, float(round(render_dpi))


def _render(path: Path, doc: Document, first: int, last: int) -> list[Image.Image]:
    timeout = int(doc.timeout) or 1
    try:
        images: list[Image.Image] = pdf2image.convert_from_path(
            path,
            dpi=round(doc.dpi or 200),
            grayscale=True,
            first_page=first,
            last_page=last,
            timeout=timeout,
            thread_count=1,
        )
    except pdf_exc.PDFPopplerTimeoutError as e:
        raise OcrTimeoutError(
            f"Rendering {doc.name} pages {first}-{last} took longer than {doc.timeout:g} s"
        ) from e
    except pdf_exc.PDFPageCountError as e:
        raise CorruptDocumentError(f"{doc.name} is a damaged or truncated PDF") from e
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptDocumentError(f"{doc.name} could not be rendered: {e}") from e
    if len(images) != last - first + 1:
        raise CorruptDocumentError(
            f"{doc.name} is damaged: pages {first}-{last} could not all be rendered"
        )
    return images


def _pdf_pages(doc: Document, *, batch: int, first: int, last: int) -> Iterator[Page]:
    """Render ``batch`` pages per pdftoppm call (``-f``/``-l``): one copy of the PDF on disk."""
    with contextlib.ExitStack() as stack:
        if isinstance(doc.source, Path):
            path = doc.source
        else:  # pdftoppm reads files: one copy on disk, whatever the number of calls
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="inkwell-pdf-"))
            path = Path(tmp) / "document.pdf"
            path.write_bytes(doc.source)
        for start in range(first, last + 1, batch):
            end = min(last, start + batch - 1)
            images = _render(path, doc, start, end)
            for number, img in enumerate(images, start):
                yield Page(image=_to_grey(img), number=number, dpi=doc.dpi)
            del images


# ------------------------------------------------------------------------------------ images
def _image_dpi(img: Image.Image) -> float | None:
    dpi: object = img.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple) else float(str(dpi))
    except (TypeError, ValueError, IndexError):
        return None
    return value if 10.0 <= value <= 5000.0 else None


@contextlib.contextmanager
def _open_image(source: bytes | Path, *, name: str) -> Iterator[Image.Image]:
    """Pillow's image, decoding errors mapped to user errors.

    Pillow's own pixel limit is a process-wide global, so it is left alone (threads share it);
    every frame is checked against ``max_pixels`` by the caller before it is decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as e:
        raise DocumentTooLargeError(f"{name} is too large to decode ({e})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptDocumentError(f"{name} is a damaged or truncated image ({e})") from e
    try:
        with img:
            yield img
    except Image.DecompressionBombError as e:
        raise DocumentTooLargeError(f"{name} is too large to decode ({e})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptDocumentError(f"{name} is a damaged or truncated image ({e})") from e


def _check_size(frame: Image.Image, *, name: str, number: int, max_pixels: int) -> None:
    if frame.width * frame.height > max_pixels:
        raise DocumentTooLargeError(
            f"{name} page {number} has {frame.width}x{frame.height} pixels; "
            f"the limit is {max_pixels} pixels"
        )


def _image_count(source: bytes | Path, *, name: str, max_pages: int, max_pixels: int) -> int:
    with _open_image(source, name=name) as img:
        _check_size(img, name=name, number=1, max_pixels=max_pixels)
        n_frames = int(getattr(img, "n_frames", 1))
    if n_frames > max_pages:
        raise TooManyPagesError(f"{name} has {n_frames} pages; the limit is {max_pages}")
    return n_frames


def _image_pages(doc: Document, *, first: int, last: int) -> Iterator[Page]:
    """Decode one frame at a time (multi-page TIFF), checking each frame's size."""
    name, max_pixels = doc.name, doc.max_pixels
    with _open_image(doc.source, name=name) as img:
        for number, frame in enumerate(ImageSequence.Iterator(img), 1):
            if number < first:
                continue  # not decoded: seeking to a frame reads its header only
            if number > last:
                break
            _check_size(frame, name=name, number=number, max_pixels=max_pixels)
            dpi = _image_dpi(frame)
            frame.load()
            oriented = ImageOps.exif_transpose(frame) if number == 1 else frame.copy()
            page = Page(image=_to_grey(oriented), number=number, dpi=dpi)
            if min(page.image.shape) < MIN_SIDE:
                raise ImageTooSmallError(
                    f"{name} page {page.number} is {page.width}x{page.height} pixels: too "
                    f"small to hold writing (at least {MIN_SIDE}x{MIN_SIDE})"
                )
            yield page


def _to_grey(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to 8-bit greyscale, alpha composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.full_like(arr, 255.0)
        return np.ascontiguousarray(scaled.round().astype(np.uint8))
    if mode == "P" or mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.ascontiguousarray(np.asarray(img.convert("L"), dtype=np.uint8))
