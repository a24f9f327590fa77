"""Out-of-distribution probe: generated pages unlike the dev set, classified by a model version.

    poetry run python scripts/ood_probe.py [--model models/default] [--out /tmp/ood]

Renders a receipt, a typewriter-style page, crooked, upside-down and sideways scans, phone photos
(shading, perspective, JPEG) of a typed and a handwritten page, a typed page and a handwriting-font
note at 72 dpi, and handwriting on ruled paper, adds the bundled samples, and prints each page's
verdict beside what it should be. A probe, not a benchmark. Its "handwriting" is fonts
(tests/helpers.py), not people, so by the label rule (LABELS.md: a script font is printed) every
probe page is typed: the probe asks whether font-made handwriting is read as the print it is.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.documents import load_pages  # noqa: E402
from app.models.predict import classify_pages  # noqa: E402
from app.models.registry import load_version  # noqa: E402
from tests.helpers import TEXT, handwritten_page, typed_page  # noqa: E402

MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def render(out: Path) -> dict[str, str]:
    """Write the probe pages into ``out``; return file name -> expected label."""
    rng = random.Random(1)
    out.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    # receipt: narrow, monospace, grey thermal print, a little blur
    im = Image.new("L", (380, 1100), 235)
    d = ImageDraw.Draw(im)
    f = ImageFont.truetype(MONO, 16)
    for i in range(40):
        item = "COFFEE" if i % 2 else "BREAD"
        price = f"{rng.randint(1, 99)}.{rng.randint(0, 99):02d}"
        d.text(
            (15, 20 + 24 * i),
            f"ITEM {i:02d} {item} .... {price}",
            font=f,
            fill=rng.randint(60, 110),
        )
    im.filter(ImageFilter.GaussianBlur(0.6)).save(out / "receipt.png")
    expected["receipt.png"] = "typed"

    # typewriter: monospace, per-character jitter, uneven ink
    im = Image.new("L", (1240, 1754), 245)
    d = ImageDraw.Draw(im)
    f = ImageFont.truetype(MONO, 26)
    x, y = 100, 120
    for word in (TEXT + " " + TEXT).split() * 2:
        for ch in word + " ":
            pos = (x + rng.uniform(-1, 1), y + rng.uniform(-1.5, 1.5))
            d.text(pos, ch, font=f, fill=rng.randint(20, 90))
            x += 16
            if x > 1100:
                x, y = 100, y + 46
        if y > 1600:
            break
    im.filter(ImageFilter.GaussianBlur(0.5)).save(out / "typewriter.png")
    expected["typewriter.png"] = "typed"

    # phone photo of a typed page: shading, perspective, noise, JPEG
    typed = typed_page(200, seed=2).astype(float)
    yy, xx = np.mgrid[0 : typed.shape[0], 0 : typed.shape[1]]
    shade = 0.55 + 0.45 * (xx / typed.shape[1]) * (1 - 0.3 * yy / typed.shape[0])
    noise = np.random.default_rng(0).normal(0, 5, typed.shape)
    arr = np.clip(typed * shade + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    coeffs = (1, 0.05, -20, 0.02, 1, -10, 0.00003, 0.00002)
    img = img.transform(img.size, Image.Transform.PERSPECTIVE, coeffs, fillcolor=90)
    img.save(out / "phone_typed.jpg", quality=70)
    expected["phone_typed.jpg"] = "typed"

    # phone photo of handwriting: light falling off, slight rotation, JPEG
    hand = handwritten_page(200, seed=4).astype(float)
    yy = np.mgrid[0 : hand.shape[0], 0 : hand.shape[1]][0]
    arr = np.clip(hand * (0.6 + 0.4 * yy / hand.shape[0]), 0, 255).astype(np.uint8)
    Image.fromarray(arr).rotate(3, fillcolor=80).save(out / "phone_hand.jpg", quality=70)
    expected["phone_hand.jpg"] = "typed"  # a handwriting font: printed (LABELS.md)

    # low resolution
    Image.fromarray(handwritten_page(72, seed=5)).save(out / "note_72dpi.png")
    expected["note_72dpi.png"] = "typed"  # a handwriting font: printed (LABELS.md)
    Image.fromarray(typed_page(72, seed=5)).save(out / "typed_72dpi.png")
    expected["typed_72dpi.png"] = "typed"

    # crooked scans: a typed page and a handwritten one turned a few degrees
    paper = Image.fromarray(typed_page(200, seed=7))
    paper.rotate(7, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255).save(
        out / "crooked_typed.png"
    )
    expected["crooked_typed.png"] = "typed"
    paper = Image.fromarray(handwritten_page(200, seed=8))
    paper.rotate(-5, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=250).save(
        out / "crooked_hand.png"
    )
    expected["crooked_hand.png"] = "typed"  # a handwriting font: printed (LABELS.md)

    # fed the wrong way: a typed page upside down, a handwritten one sideways
    Image.fromarray(typed_page(200, seed=9)).rotate(180).save(out / "upside_down_typed.png")
    expected["upside_down_typed.png"] = "typed"
    Image.fromarray(handwritten_page(200, seed=10)).rotate(90, expand=True).save(
        out / "sideways_hand.png"
    )
    expected["sideways_hand.png"] = "typed"  # a handwriting font: printed (LABELS.md)

    # handwriting on ruled paper
    ruled = handwritten_page(150, seed=6).copy()
    size = round(18 / 72 * 150)
    for y0 in range(75 + int(0.75 * size), ruled.shape[0], int(size * 1.9)):
        ruled[y0 : y0 + 2, :] = 140
    Image.fromarray(ruled).save(out / "ruled_hand.png")
    expected["ruled_hand.png"] = "typed"  # a handwriting font: printed (LABELS.md)
    return expected


SAMPLE_LABELS = {
    "typed_script_font_lettre.jpg": ["typed"],
    "typed_script_font_note.png": ["typed"],
    "typed_script_font_and_report.pdf": ["typed", "typed"],
    "typed_letter.tiff": ["typed"],
    "typed_minutes.png": ["typed"],
    "typed_report.pdf": ["typed", "typed"],
}
"""The synthetic samples: every one is printed, the script-font ones included (LABELS.md: text
set in a font that imitates handwriting is typed). The real samples are scored by
tests/test_samples.py."""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--out", default=None, help="keep the rendered pages here")
    args = parser.parse_args()
    version = load_version(Path(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        expected = {out / name: [label] for name, label in render(out).items()}
        expected |= {ROOT / "samples" / name: labels for name, labels in SAMPLE_LABELS.items()}
        features = version.metadata.get("feature_version")
        print(f"model {version.id} ({version.default_algorithm}), features {features}")
        print()
        print("| page | expected | verdict | p(handwritten) | handwritten share |")
        print("|---|---|---|---|---|")
        right = total = 0
        for path, labels in expected.items():
            verdicts = classify_pages(load_pages(path, dpi=200), version)
            for v, want in zip(verdicts, labels, strict=True):
                total += 1
                right += v.label == want
                share = "–" if v.handwritten_share is None else f"{v.handwritten_share:.2f}"
                print(
                    f"| {path.name} p{v.page} | {want} | {v.label} | {v.p_handwritten:.3f} |"
                    f" {share} |"
                )
        print()
        print(f"{right} of {total} pages as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
