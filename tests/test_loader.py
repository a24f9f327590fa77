"""The document loader: every format, and every kind of bad input."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.documents import detect_format, load_pages
from app.documents import loader as loader_mod
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
from tests.helpers import encode, pdf_bytes

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils missing")


def page(value: int = 255, size: tuple[int, int] = (80, 60)) -> np.ndarray:
    img = np.full(size, value, dtype=np.uint8)
    img[20:30, 10:50] = 0
    return img


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP", "TIFF"])
def test_image_formats_load_as_grey(fmt: str) -> None:
    data = encode(page(), fmt)
    pages = load_pages(data)
    assert len(pages) == 1
    p = pages[0]
    assert p.image.dtype == np.uint8 and p.image.ndim == 2
    assert (p.width, p.height) == (60, 80)
    assert p.number == 1
    assert p.image[25, 30] < 60 and p.image[5, 5] > 200


def test_format_detected_from_content_not_name(tmp_path: Path) -> None:
    f = tmp_path / "scan.pdf"
    f.write_bytes(encode(page(), "PNG"))
    assert detect_format(f.read_bytes()) == "png"
    assert load_pages(f)[0].width == 60


def test_dpi_from_image_metadata() -> None:
    assert load_pages(encode(page(), "PNG", dpi=(300, 300)))[0].dpi == pytest.approx(300, abs=1)
    assert load_pages(encode(page(), "WEBP"))[0].dpi is None


def test_multipage_tiff() -> None:
    frames = [Image.fromarray(page(255 - i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    pages = load_pages(buf.getvalue())
    assert [p.number for p in pages] == [1, 2, 3]


def test_multipage_tiff_over_limit_refused() -> None:
    frames = [Image.fromarray(page()) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(TooManyPagesError, match="3 pages; the limit is 2"):
        load_pages(buf.getvalue(), max_pages=2)


def test_exif_orientation_applied() -> None:
    img = Image.fromarray(page(size=(40, 100)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(img, "JPEG", exif=exif.tobytes())
    p = load_pages(data)[0]
    assert (p.width, p.height) == (40, 100)


def test_colour_alpha_palette_and_16bit() -> None:
    rgb = Image.new("RGB", (30, 30), (255, 0, 0))
    assert load_pages(encode(rgb, "PNG"))[0].image[0, 0] == 76  # ITU-R 601 luma of red
    rgba = Image.new("RGBA", (30, 30), (0, 0, 0, 0))  # transparent black -> white paper
    assert load_pages(encode(rgba, "PNG"))[0].image[0, 0] == 255
    pal = Image.new("P", (30, 30), 0)
    pal.putpalette([10, 10, 10] * 256)
    assert load_pages(encode(pal, "PNG"))[0].image[0, 0] == 10
    arr16 = np.zeros((30, 30), dtype=np.uint16)
    arr16[:, 15:] = 65535
    img16 = Image.fromarray(arr16)
    grey = load_pages(encode(img16, "PNG"))[0].image
    assert grey[0, 0] == 0 and grey[0, 20] == 255
    la = Image.new("LA", (30, 30), (0, 255))
    assert load_pages(encode(la, "PNG"))[0].image[0, 0] == 0
    cmyk = Image.new("CMYK", (30, 30), (0, 0, 0, 0))
    assert load_pages(encode(cmyk, "JPEG"))[0].image[0, 0] > 240


def test_empty_input() -> None:
    with pytest.raises(EmptyInputError, match="empty"):
        load_pages(b"")


def test_text_file_named_pdf_is_unsupported(tmp_path: Path) -> None:
    f = tmp_path / "notes.pdf"
    f.write_text("just some text\n")
    with pytest.raises(UnsupportedFormatError, match="not a PDF or a supported image"):
        load_pages(f)


def test_zip_is_unsupported() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(UnsupportedFormatError):
        load_pages(buf.getvalue())


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match="not found"):
        load_pages(tmp_path / "nope.png")
    with pytest.raises(UnsupportedFormatError, match="directory"):
        load_pages(tmp_path)


def test_truncated_png() -> None:
    data = encode(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8), "PNG")
    with pytest.raises(CorruptDocumentError, match="damaged or truncated image"):
        load_pages(data[: len(data) // 2])


def test_truncated_jpeg_header() -> None:
    with pytest.raises(CorruptDocumentError):
        load_pages(b"\xff\xd8\xff\xe0" + b"\x00" * 20)


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00" * (width + 1) * min(height, 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused() -> None:
    # header claims 30000 x 30000 pixels; Pillow's guard must become our error before decoding
    with pytest.raises(DocumentTooLargeError, match="limit"):
        load_pages(_png_with_size(30000, 30000), max_pixels=1_000_000)


def test_pixel_limit_between_one_and_two_times() -> None:
    with pytest.raises(DocumentTooLargeError):
        load_pages(encode(page(size=(100, 100)), "PNG"), max_pixels=6000)


def test_zero_size_png_is_corrupt() -> None:
    with pytest.raises(CorruptDocumentError):
        load_pages(_png_with_size(0, 0))


def test_one_pixel_image_is_too_small() -> None:
    with pytest.raises(ImageTooSmallError, match="too small"):
        load_pages(encode(np.zeros((1, 1), dtype=np.uint8), "PNG"))


@needs_poppler
def test_pdf_pages_render_at_requested_dpi() -> None:
    data = pdf_bytes([page(size=(150, 100)), page(size=(150, 100))], dpi=50)
    pages = load_pages(data, dpi=100)
    assert [p.number for p in pages] == [1, 2]
    assert pages[0].dpi == 100
    assert pages[0].width == pytest.approx(200, abs=2)  # 2 inch wide at 100 dpi


@needs_poppler
def test_pdf_over_page_limit_refused_before_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pdf_bytes([page()] * 3)
    called = []
    monkeypatch.setattr(loader_mod.pdf2image, "convert_from_path", lambda *a, **k: called.append(1))
    with pytest.raises(TooManyPagesError, match="3 pages; the limit is 2"):
        load_pages(data, max_pages=2)
    assert not called


@needs_poppler
def test_huge_pdf_page_is_rendered_at_lower_dpi() -> None:
    data = pdf_bytes([page(size=(100, 100))], dpi=1)  # a 100 x 100 inch page
    p = load_pages(data, dpi=300, max_pixels=4_000_000)[0]
    assert p.width * p.height <= 4_100_000
    assert p.dpi is not None and p.dpi < 300


@needs_poppler
def test_truncated_pdf() -> None:
    data = pdf_bytes([page()])
    with pytest.raises(CorruptDocumentError, match="damaged"):
        load_pages(data[: len(data) // 3])


@needs_poppler
@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf (to encrypt a test PDF) missing")
def test_password_protected_pdf(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(pdf_bytes([page()]))
    locked = tmp_path / "locked.pdf"
    subprocess.run(
        ["qpdf", "--encrypt", "secret", "owner", "256", "--", str(plain), str(locked)],
        check=True,
        timeout=30,
    )
    with pytest.raises(EncryptedDocumentError, match="password"):
        load_pages(locked)


def test_pdftoppm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_mod.shutil, "which", lambda _name: None)
    with pytest.raises(MissingDependencyError, match="Could not find program 'pdftoppm'"):
        load_pages(pdf_bytes([page()]))


@needs_poppler
def test_pdf_render_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_a: object, **_k: object) -> None:
        raise loader_mod.pdf_exc.PDFPopplerTimeoutError("Run poppler timeout.")

    monkeypatch.setattr(loader_mod.pdf2image, "convert_from_path", slow)
    with pytest.raises(OcrTimeoutError, match="longer than"):
        load_pages(pdf_bytes([page()]), timeout=1)


@needs_poppler
def test_pdfinfo_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_a: object, **_k: object) -> None:
        raise loader_mod.pdf_exc.PDFPopplerTimeoutError("Run poppler timeout.")

    monkeypatch.setattr(loader_mod.pdf2image, "pdfinfo_from_bytes", slow)
    with pytest.raises(OcrTimeoutError):
        load_pages(pdf_bytes([page()]), timeout=1)


@needs_poppler
def test_pdf_pages_are_rendered_lazily_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = loader_mod._render

    def spy(path, doc, first, last):  # type: ignore[no-untyped-def]
        calls.append((first, last))
        return real(path, doc, first, last)

    monkeypatch.setattr(loader_mod, "_render", spy)
    pages = [np.full((200, 150), 255 - 20 * i, np.uint8) for i in range(6)]
    doc = loader_mod.open_document(pdf_bytes(pages, 100), dpi=100)
    assert doc.page_count == 6 and calls == []  # counted, nothing rendered yet
    it = doc.pages(batch=4)
    first = next(it)
    assert first.number == 1 and calls == [(1, 4)]
    rest = list(it)
    assert [p.number for p in rest] == [2, 3, 4, 5, 6]
    assert calls == [(1, 4), (5, 6)]
    assert int(rest[-1].image.mean()) == pytest.approx(255 - 100, abs=3)  # page 6's own pixels


def test_tiff_frames_are_decoded_one_at_a_time() -> None:
    frames = [Image.fromarray(np.full((40, 30), 50 * i, np.uint8)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    doc = loader_mod.open_document(buf.getvalue())
    assert doc.page_count == 3 and doc.media_type == "image/tiff"
    means = [int(p.image.mean()) for p in doc.pages()]
    assert means == [0, 50, 100]


@needs_poppler
def test_a_file_is_read_in_place_not_loaded_whole(tmp_path: Path) -> None:
    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(pdf_bytes([np.full((200, 150), 255, np.uint8)] * 2, 100))
    doc = loader_mod.open_document(pdf, dpi=100)
    assert doc.source == pdf  # the path, not its bytes: pages are rendered from the file
    assert [p.number for p in doc.pages()] == [1, 2]
