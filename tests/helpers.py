"""Synthetic pages and files built by the tests themselves."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TYPED_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
HAND_FONTS = [
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf",
]
TEXT = (
    "The committee met on Tuesday to review the quarterly accounts and the new filing system. "
    "Revenue rose by four per cent while the cost of paper and postage remained steady. "
    "Questions were deferred to the following meeting of the board in the spring."
)


def fonts_available() -> bool:
    return Path(TYPED_FONT).is_file() and all(Path(f).is_file() for f in HAND_FONTS)


def typed_page(dpi: int = 150, *, seed: int = 0, text: str = TEXT) -> np.ndarray:
    """An A5-ish typed page rendered at ``dpi`` (11 pt text)."""
    rng = random.Random(seed)
    w, h = int(5.8 * dpi), int(8.3 * dpi)
    page = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(TYPED_FONT, max(6, round(11 / 72 * dpi)))
    margin = int(0.5 * dpi)
    y = margin
    words = text.split()
    while y < h - margin - dpi * 0.3:
        line = ""
        rng.shuffle(words)
        for word in words:
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) > w - 2 * margin:
                break
            line = trial
        draw.text((margin, y), line, font=font, fill=0)
        y += int(11 / 72 * dpi * 1.6)
    return np.asarray(page)


def handwritten_page(dpi: int = 150, *, seed: int = 0, text: str = TEXT) -> np.ndarray:
    """A handwriting-like page: a handwriting font drawn glyph by glyph with jitter."""
    rng = random.Random(seed)
    w, h = int(5.8 * dpi), int(8.3 * dpi)
    page = Image.new("L", (w, h), 250)
    size = max(8, round(18 / 72 * dpi))
    font_path = HAND_FONTS[seed % len(HAND_FONTS)]
    margin = int(0.5 * dpi)
    x, y, drift = margin, margin, 0.0
    for word in (text + " " + text).split():
        font = ImageFont.truetype(font_path, int(size * rng.uniform(0.9, 1.1)))
        if x + font.getlength(word) * 1.1 > w - margin:
            x, y, drift = margin + rng.randint(-3, 3), y + int(size * 1.9), 0.0
            if y > h - margin - size:
                break
        for ch in word:
            glyph = Image.new("L", (size * 2, size * 2), 0)
            ImageDraw.Draw(glyph).text((size // 2, size // 3), ch, font=font, fill=255)
            glyph = glyph.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
            drift += rng.uniform(-0.05, 0.05) * size
            page.paste(40, (int(x - size // 2), int(y + drift - size // 3)), glyph)
            x += font.getlength(ch) * rng.uniform(0.92, 1.1)
        x += font.getlength(" ") * rng.uniform(1.0, 1.6)
    return np.asarray(page)


def turn_page(grey: np.ndarray, degrees: float) -> np.ndarray:
    """A page turned by ``degrees`` (counter-clockwise) as a crooked scan: white corners."""
    img = Image.fromarray(grey).rotate(
        degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255
    )
    return np.asarray(img)


def encode(image: np.ndarray | Image.Image, fmt: str, **kwargs: object) -> bytes:
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def pdf_bytes(pages: list[np.ndarray], dpi: int = 150) -> bytes:
    imgs = [Image.fromarray(p) for p in pages]
    buf = io.BytesIO()
    imgs[0].save(buf, format="PDF", save_all=True, append_images=imgs[1:], resolution=dpi)
    return buf.getvalue()


def make_folder_dataset(root: Path, *, n_per_class: int = 6, dpi: int = 100) -> Path:
    """handwritten/ and typed/ folders of small generated pages (PNG and one PDF)."""
    (root / "handwritten").mkdir(parents=True, exist_ok=True)
    (root / "typed").mkdir(parents=True, exist_ok=True)
    for i in range(n_per_class):
        (root / "handwritten" / f"h{i}.png").write_bytes(
            encode(handwritten_page(dpi, seed=i), "PNG")
        )
        if i == 0:
            (root / "typed" / "t0.pdf").write_bytes(pdf_bytes([typed_page(dpi, seed=0)], dpi))
        else:
            (root / "typed" / f"t{i}.png").write_bytes(encode(typed_page(dpi, seed=i), "PNG"))
    return root


def mixed_page(dpi: int = 100, *, seed: int = 0) -> np.ndarray:
    """A printed page whose lower half is filled in by hand (typed top, handwritten bottom)."""
    top = typed_page(dpi, seed=seed)
    bottom = handwritten_page(dpi, seed=seed)
    h = top.shape[0]
    page = top.copy()
    page[h // 2 :] = bottom[: h - h // 2]
    return page


def make_manifest_dataset(root: Path, *, per_source: int = 3, dpi: int = 100) -> Path:
    """A manifest.csv over five generated sources: two typed, two handwritten, one mixed.

    Each typed/handwritten source holds ``per_source`` pages of distinct groups; the mixed source
    holds two pages. Returns the manifest's path.
    """
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,source,group,split"]
    makers = {
        "print_a": ("typed", lambda s: typed_page(dpi, seed=s)),
        "print_b": ("typed", lambda s: typed_page(int(dpi * 1.5), seed=s + 50)),
        "hand_a": ("handwritten", lambda s: handwritten_page(dpi, seed=2 * s)),
        "hand_b": ("handwritten", lambda s: handwritten_page(int(dpi * 1.5), seed=2 * s + 1)),
    }
    for source, (label, make) in makers.items():
        (root / source).mkdir(exist_ok=True)
        for i in range(per_source):
            name = f"{source}/{i}.png"
            (root / name).write_bytes(encode(make(i + 1), "PNG"))
            rows.append(f"{name},{label},{source},{source}:{i},")
    (root / "forms").mkdir(exist_ok=True)
    for i in range(2):
        name = f"forms/{i}.png"
        (root / name).write_bytes(encode(mixed_page(dpi, seed=i + 7), "PNG"))
        rows.append(f"{name},mixed,forms,forms:{i},")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def die_on_blank(image, ocr):  # type: ignore[no-untyped-def]
    """A page worker killed on blank pages (as by the OOM killer) that works otherwise.

    Module level, so a forkserver worker can import it: patch it over
    ``app.models.predict.featurise_page``.
    """
    import os

    from app.features import featurise_page

    if image.min() == 255:
        os._exit(1)
    return featurise_page(image, ocr)
