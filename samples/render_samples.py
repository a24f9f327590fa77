"""Render the synthetic sample documents shipped in samples/ (no real dataset is copied here).

Run:  poetry run python samples/render_samples.py   (needs fonts-dejavu-core,
fonts-dkg-handwriting and fonts-ecolier-court from Debian). Every file is clearly synthetic: typed
pages use DejaVu fonts, "handwritten" pages use handwriting fonts drawn glyph by glyph with
jitter in size, baseline, rotation and spacing.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
DPI = 150
A4 = (int(8.27 * DPI), int(11.69 * DPI))

TYPED_FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
]
HAND_FONTS = [
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf",
]
TEXT_EN = (
    "The committee met on Tuesday to review the quarterly accounts. Revenue rose by four per cent, "
    "while costs of paper, ink and postage remained steady. The chairman thanked the staff for "
    "their careful work and asked that the next report be sent to every member before the end of "
    "the month. Questions about the new filing system were deferred to the following meeting, "
    "when the archivist will present a short summary of the changes and their expected benefits."
)
TEXT_FR = (
    "Chère Madame, je vous remercie de votre lettre du douze mars. Nous serons heureux de vous "
    "accueillir à la maison pendant les vacances de Pâques. Les enfants ont déjà préparé la "
    "chambre bleue et le jardin commence à fleurir. N'oubliez pas votre parapluie, il pleut "
    "souvent ici au printemps. Avec toutes nos amitiés, et à très bientôt."
)


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int
) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > width and line:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line] if line else lines


def typed_page(font_path: str, title: str, body: str, size: int = 24) -> Image.Image:
    """A clean typed page: a title, then justified-left paragraphs."""
    page = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(font_path, size)
    bold = ImageFont.truetype(font_path, int(size * 1.4))
    margin = int(0.9 * DPI)
    y = margin
    draw.text((margin, y), title, font=bold, fill=0)
    y += int(size * 3)
    for _ in range(3):
        for line in _wrap(draw, body, font, A4[0] - 2 * margin):
            draw.text((margin, y), line, font=font, fill=0)
            y += int(size * 1.5)
        y += size
    return page


def handwritten_page(font_path: str, body: str, rng: random.Random, size: int = 38) -> Image.Image:
    """A handwriting-like page: glyphs drawn one by one with jitter, on a slightly grey paper."""
    page = Image.new("L", A4, 250)
    margin = int(0.8 * DPI)
    x, y = margin, margin
    line_gap = int(size * 1.9)
    drift = 0.0
    for word in body.split():
        fsize = int(size * rng.uniform(0.9, 1.1))
        font = ImageFont.truetype(font_path, fsize)
        width = sum(font.getlength(c) for c in word) * 1.05
        if x + width > A4[0] - margin:
            x = margin + rng.randint(-8, 8)
            y += line_gap + rng.randint(-4, 4)
            drift = 0.0
            if y > A4[1] - margin:
                break
        for ch in word:
            glyph = Image.new("L", (fsize * 2, fsize * 2), 0)
            ImageDraw.Draw(glyph).text((fsize // 2, fsize // 3), ch, font=font, fill=255)
            glyph = glyph.rotate(rng.uniform(-7, 7), resample=Image.Resampling.BICUBIC)
            drift += rng.uniform(-0.6, 0.6)
            ink = Image.new("L", glyph.size, rng.randint(20, 70))
            page.paste(ink, (int(x - fsize // 2), int(y + drift - fsize // 3)), glyph)
            x += font.getlength(ch) * rng.uniform(0.92, 1.12)
        x += font.getlength(" ") * rng.uniform(0.9, 1.6)
    return page.filter(ImageFilter.GaussianBlur(0.4))


def main() -> int:
    """Write the samples; return an exit code."""
    missing = [f for f in TYPED_FONTS + HAND_FONTS if not Path(f).is_file()]
    if missing:
        print(
            "missing fonts (apt-get install fonts-dejavu-core fonts-dkg-handwriting "
            f"fonts-ecolier-court): {missing}",
            file=sys.stderr,
        )
        return 1
    rng = random.Random(7)
    p1 = typed_page(TYPED_FONTS[0], "SYNTHETIC SAMPLE - Quarterly report", TEXT_EN)
    p2 = typed_page(TYPED_FONTS[1], "SYNTHETIC SAMPLE - Lettre", TEXT_FR)
    p1.save(HERE / "typed_report.pdf", save_all=True, append_images=[p2], resolution=DPI)
    typed_page(TYPED_FONTS[1], "SYNTHETIC SAMPLE - Minutes", TEXT_EN, size=22).save(
        HERE / "typed_minutes.png", dpi=(DPI, DPI), optimize=True
    )
    typed_page(TYPED_FONTS[0], "SYNTHETIC SAMPLE - Lettre", TEXT_FR).point(
        lambda v: 255 if v > 128 else 0
    ).convert("1").save(HERE / "typed_letter.tiff", dpi=(DPI, DPI), compression="group4")
    hand_en = handwritten_page(HAND_FONTS[0], TEXT_EN, rng)
    hand_en.save(HERE / "typed_script_font_note.png", dpi=(DPI, DPI), optimize=True)
    hand_fr = handwritten_page(HAND_FONTS[1], TEXT_FR, rng)
    hand_fr.convert("RGB").save(HERE / "typed_script_font_lettre.jpg", dpi=(DPI, DPI), quality=80)
    hand_en.save(
        HERE / "typed_script_font_and_report.pdf", save_all=True, append_images=[p1], resolution=DPI
    )
    total = sum(f.stat().st_size for f in HERE.iterdir() if f.is_file())
    print(f"samples written to {HERE} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
