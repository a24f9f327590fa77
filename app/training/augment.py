"""Page variants: the robustness test transform, training augmentation, IAM body crop."""

from __future__ import annotations

import hashlib
import io
import itertools

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from app.documents.loader import Page

LETTER_LONG_SIDE_IN = 11.0
MAX_PIXELS = 40_000_000


def nominal_dpi(page: Page) -> float:
    """The page's DPI when known, else estimated from its long side as a letter/A4 page."""
    if page.dpi:
        return float(page.dpi)
    return float(max(page.image.shape)) / LETTER_LONG_SIDE_IN


def resample(grey: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` with proper anti-aliasing."""
    h, w = grey.shape
    factor = min(factor, (MAX_PIXELS / max(h * w, 1)) ** 0.5)
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.LANCZOS))


def jpeg(grey: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


ROBUSTNESS_SKEW = 3.0
"""Degrees the robustness test turns every page (a crooked scan)."""


def turn(grey: np.ndarray, degrees: float) -> np.ndarray:
    """The page turned counter-clockwise on paper of its own colour, as a crooked scan or photo."""
    paper = int(np.percentile(grey[:: max(1, grey.shape[0] // 200)], 95))
    img = Image.fromarray(grey).rotate(
        degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=paper
    )
    return np.asarray(img)


def robustness_variant(page: Page) -> Page:
    """The robustness test: swap the resolution, turn the page 3°, JPEG 60.

    Pages of 200 dpi or more go to 100 dpi, the others to 300 dpi.
    """
    dpi = nominal_dpi(page)
    target = 100.0 if dpi >= 200 else 300.0
    grey = jpeg(turn(resample(page.image, target / dpi), ROBUSTNESS_SKEW), 60)
    return Page(image=grey, number=page.number, dpi=target if page.dpi else None)


def _rng(seed_text: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def augment(page: Page, seed_text: str) -> Page:
    """A random but reproducible degradation.

    Resolution 75-400 dpi, skew up to 4° (half the pages), blur, noise, binarisation, JPEG.
    """
    rng = _rng(seed_text)
    dpi = nominal_dpi(page)
    target = float(np.exp(rng.uniform(np.log(75), np.log(400))))
    grey = resample(page.image, target / dpi)
    if rng.random() < 0.5:
        grey = turn(grey, float(rng.uniform(-4, 4)))
    if rng.random() < 0.4:
        radius = float(rng.uniform(0.3, 1.2))
        grey = np.asarray(Image.fromarray(grey).filter(ImageFilter.GaussianBlur(radius)))
    if rng.random() < 0.4:
        noise = rng.normal(0, rng.uniform(2, 10), grey.shape)
        grey = np.clip(grey.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        grey = np.where(grey < 160, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        grey = jpeg(grey, int(rng.integers(30, 90)))
    return Page(image=grey, number=page.number, dpi=target if page.dpi else None)


def body_band(grey: np.ndarray) -> tuple[int, int] | None:
    """(top, bottom) of the tallest band between long horizontal rules, or None."""
    h, w = grey.shape
    dark = ndimage.maximum_filter1d((grey < 128).view(np.uint8), size=3, axis=0)
    long_run = ndimage.minimum_filter1d(dark, size=max(3, int(w * 0.3)), axis=1)
    rule_rows = np.flatnonzero(long_run.any(axis=1))
    if rule_rows.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(rule_rows) > max(3, h // 300)) + 1
    rules = [int(r.mean()) for r in np.split(rule_rows, breaks)]
    if len(rules) < 2:
        return None
    top, bottom = max(itertools.pairwise(rules), key=lambda b: b[1] - b[0])
    if bottom - top < h * 0.15:
        return None
    return top, bottom


def header_above_rules(grey: np.ndarray) -> np.ndarray | None:
    """The printed part above an IAM form's handwritten body (None when no body band is found)."""
    band = body_band(grey)
    if band is None or band[0] < grey.shape[0] * 0.05:
        return None
    return grey[: band[0] - max(2, grey.shape[0] // 200), :]


def body_between_rules(grey: np.ndarray) -> np.ndarray:
    """Crop an IAM form to its handwritten body: the tallest band between long horizontal rules.

    IAM forms print a header (title, form id, the text to copy) and a "Name:" line, separated from
    the handwriting by rules that run across most of the page. When fewer than two rules are found
    the page is returned unchanged.
    """
    band = body_band(grey)
    if band is None:
        return grey
    margin = max(2, grey.shape[0] // 200)
    return grey[band[0] + margin : band[1] - margin, :]


def with_letterhead(hand: np.ndarray, typed: np.ndarray) -> np.ndarray:
    """A handwritten page under the top fifth of a typed page (its letterhead or title).

    The typed band is scaled to the handwritten page's width: a letter written under a printed
    heading, which is still a handwritten page.
    """
    band = typed[: max(8, typed.shape[0] // 5)]
    band = resample(band, hand.shape[1] / max(band.shape[1], 1))
    band = band[:, : hand.shape[1]]
    if band.shape[1] < hand.shape[1]:
        pad = np.full((band.shape[0], hand.shape[1] - band.shape[1]), 255, dtype=np.uint8)
        band = np.hstack([band, pad])
    return np.vstack([band, hand])


def with_signature(typed: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """A typed page with a band of handwriting, signature-sized, inked over its lower right.

    The band (a tenth of the handwritten page's height, half its width, from its middle) is scaled
    to a third of the typed page's width: a typed page signed or annotated by hand, still typed.
    """
    hh, hw = hand.shape
    crop = hand[int(hh * 0.45) : int(hh * 0.55), int(hw * 0.1) : int(hw * 0.6)]
    crop = resample(crop, (typed.shape[1] * 0.33) / max(crop.shape[1], 1))
    h, w = typed.shape
    ch, cw = min(crop.shape[0], h // 3), min(crop.shape[1], w)
    y0, x0 = max(0, h - ch - h // 20), max(0, w - cw - w // 20)
    out = typed.copy()
    out[y0 : y0 + ch, x0 : x0 + cw] = np.minimum(out[y0 : y0 + ch, x0 : x0 + cw], crop[:ch, :cw])
    return out


# ------------------------------------------------------------------ generated filled-in pages
FRAME_SOURCES = frozenset(
    {
        "iam_forms",
        "nist_sd19_hsf_forms",
        "tables_decennales_registers",
        "banq_copiste_modern_fr",
        "olmocr_test_pdfs",
        "stanford_memorials_1905",
        # parchment and old paper: a line's crop carries the grain of the page with its ink
        "cremma_medieval_latin",
        "iforal_portuguese_charters",
        "paris_bible_latin_13c",
    }
)
"""Handwritten sources whose lines are not pasted into generated pages: pages with printed
frame (prompts, headings, a consent line) would paste print, parchment would paste its grain."""
FILLED_VERSION = 5
"""Changes whenever :func:`filled_in` draws other pages (part of the feature cache key)."""
FILLED_SCALE = 1.3
PAPER_LEVEL = 215.0
"""After the contrast stretch, lighter than this is paper (its grain is not pasted)."""
"""Pasted handwriting is this many times the typed page's text height (people write larger)."""
FILLED_MIN_WIDTH = 6.0
"""A free slot holds a handwritten line only if it is at least this many text heights wide."""


def _handwritten_line_crops(hand: np.ndarray, height: float) -> list[np.ndarray]:
    """The handwritten page's text lines, background divided out, at ``height`` px text."""
    from app.features.layout import find_components, group_lines, merge_segments  # noqa: PLC0415
    from app.features.normalise import normalise  # noqa: PLC0415

    norm = normalise(hand)
    comps, _ = find_components(norm.ink)
    lines = merge_segments(group_lines(comps, min_members=1))
    crops = []
    for ln in lines:
        if ln.width < 4 * ln.height or ln.members.size < 3:
            continue
        crop = norm.crop((ln.x0 - 2, ln.y0 - 2, ln.x1 + 2, ln.y1 + 2), height=height)
        dark = float(np.percentile(crop, 2))
        if dark > 200:  # nothing written here worth pasting
            continue
        # the line's ink as it was scanned, contrast stretched so its darkest strokes are dark
        # (a thin pen resampled to print size would otherwise fade to the paper's grey)
        ink_level = 255.0 - (255.0 - crop.astype(np.float64)) * (200.0 / max(255.0 - dark, 1.0))
        ink = ink_level <= PAPER_LEVEL
        # strokes, not the paper's grain: components of at least a few percent of a glyph
        labels, n = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= max(4.0, 0.03 * height * height)
        keep[0] = False
        ink = ndimage.binary_dilation(keep[labels], iterations=1) & (ink_level < 250)
        if ink.mean() > 0.02:
            crops.append(np.where(ink, np.clip(ink_level, 0, 255), 255).astype(np.uint8))
    return crops


def _free_slot(
    busy: np.ndarray, band: int, min_w: int, rng: np.random.Generator
) -> tuple[int, int, int, int] | None:
    """A free rectangle ``band`` rows tall and at least ``min_w`` wide (None if there is none)."""
    h, w = busy.shape
    margin_x, margin_y = round(0.04 * w), round(0.04 * h)
    ys = np.arange(margin_y, max(margin_y + 1, h - margin_y - band), max(1, band // 3))
    for y in rng.permutation(ys):
        free_cols = np.asarray(~busy[y : y + band].any(axis=0), dtype=bool)
        free_cols[:margin_x] = False
        free_cols[w - margin_x :] = False
        runs = np.flatnonzero(np.diff(np.r_[0, free_cols.view(np.int8), 0]))
        spans = [(a, b) for a, b in zip(runs[::2], runs[1::2], strict=True) if b - a >= min_w]
        if spans:
            a, b = spans[int(rng.integers(len(spans)))]
            width = int(min(b - a, rng.uniform(min_w, max(min_w + 1, b - a))))
            return int(a), int(y), int(a) + width, int(y) + band
    return None


def filled_in(
    typed: np.ndarray, hand: np.ndarray, seed_text: str
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A typed page filled in by hand: handwritten lines of ``hand`` written into its free space.

    Two to six free slots of the typed page (beside a printed line that ends early, between
    paragraphs, in a margin) each get one handwritten line, cut to the slot's width, at 1.3
    times the page's text height, inked over the paper (no rectangle is pasted). Returns the
    page and the box of every handwritten line written (the truth for line boxes).
    """
    from app.features.normalise import LAYOUT_HEIGHT, normalise, rule_mask  # noqa: PLC0415

    rng = _rng(seed_text)
    norm = normalise(typed)
    if norm.text_height <= 0 or norm.skew != 0.0:
        return typed, []
    crops = _handwritten_line_crops(hand, FILLED_SCALE * norm.text_height)
    if not crops:
        return typed, []
    out = typed.copy()
    pad = round(0.6 * LAYOUT_HEIGHT)
    # every mark is taken, a table's vertical borders included (the layout mask has none);
    # horizontal rules are not: people write on the lines of a form
    marks = norm.grey <= norm.threshold
    marks &= ~rule_mask(marks, LAYOUT_HEIGHT, axes=(1,))
    busy = np.asarray(ndimage.binary_dilation(marks, iterations=pad), dtype=bool)
    min_w = round(FILLED_MIN_WIDTH * LAYOUT_HEIGHT)
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(2, 7))):
        crop = crops[int(rng.integers(len(crops)))]
        band = int(np.ceil(crop.shape[0] * norm.scale)) + 1
        slot = _free_slot(busy, band, min_w, rng)
        if slot is None:
            break
        a, y, b, _ = slot
        busy[max(0, y - pad) : y + band + pad, max(0, a - pad) : b + pad] = True
        x0, y0, x1, _ = norm.page_box(slot)
        room_w = x1 - x0
        start = int(rng.integers(0, crop.shape[1] - room_w)) if crop.shape[1] > room_w else 0
        piece = crop[:, start : start + room_w]
        region = out[y0 : y0 + piece.shape[0], x0 : x0 + piece.shape[1]]
        piece = piece[: region.shape[0], : region.shape[1]]
        dark = np.argwhere(piece < 255)
        if dark.size == 0:
            continue
        np.minimum(region, piece, out=region)
        (py0, px0), (py1, px1) = dark.min(axis=0), dark.max(axis=0) + 1
        boxes.append((x0 + int(px0), y0 + int(py0), x0 + int(px1), y0 + int(py1)))
    return out, boxes
