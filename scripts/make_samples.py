"""Copy a few real dev pages into samples/, downscaled, with their attribution (samples/README.md).

Run:  poetry run python scripts/make_samples.py [--data ../shared/datasets]

Only pages whose licence allows redistribution (CC-BY 4.0, CC0, public domain; never IAM or
FUNSD) are taken, one per source, always the source's first page of that label in the
manifest's order (no page was picked for how the model does on it). Each is converted to grey,
its long side brought to ``LONG_SIDE`` pixels and saved as JPEG, so the real pages together stay
a few hundred KB.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent.parent / "samples"
LONG_SIDE = 1100
QUALITY = 50

# (source, label, sample file name, licence, credit)
CHOSEN = (
    (
        "cremma_french_mss_19c",
        "handwritten",
        "handwritten_proces_louise_michel_1871.jpg",
        "CC-BY 4.0",
        "CREMMA-MSS-19 (HTR-United/CREMMA-MSS-19 @ d8f466de7256), "
        "data/administratif-procès-louise-michel/img186.jpg",
    ),
    (
        "doniau_ww1_diary_fr",
        "handwritten",
        "handwritten_diary_doniau_1914.jpg",
        "CC-BY 4.0",
        "Célestine Doniau-Danest's diary, A. Chagué "
        "(alix-tz/dataset-celestine-doniau-danest @ 645616d5cc8f)",
    ),
    (
        "kovalewsky_1893_french_print",
        "typed",
        "typed_kovalewsky_1893.jpg",
        "CC-BY 4.0",
        "Kovalewsky 1893 (PSL-Chartes-HTR-Students/HN2021-Kovalewsky-1893 @ 3b030f9f7417), "
        "data/MK_1893_2_87.jpeg",
    ),
    (
        "swiss_art_catalogues_1852_1890",
        "typed",
        "typed_art_catalogue_basel_1852.jpg",
        "public domain (catalogue; images made available by SIK-ISEA)",
        "FONDUE-MLT-ART (FoNDUE-HTR/FONDUE-MLT-ART @ 08d6e83060a9), 1852_Basel.pdf page 12",
    ),
    (
        "ehri_typescripts_1936_1958",
        "mixed",
        "mixed_typescript_with_notes_1943.jpg",
        "CC-BY 4.0",
        "EHRI Dataset, F. Chiffoleau (FloChiff/ehri-dataset @ 20a5e002031c), "
        "data/danish/EHRI-DR-19431213-DK_01.jpg",
    ),
    (
        "jfk_records_annotated",
        "mixed",
        "mixed_routing_sheet_annotated.jpg",
        "public domain (a record of the US federal government, 17 U.S.C. 105; released by NARA)",
        "JFK assassination records 104-10001-10034, page 1 (noops888/JFK-Files @ 84da7019f2b3)",
    ),
)


def main(argv: list[str] | None = None) -> int:
    """Write the real samples; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "datasets"))
    args = parser.parse_args(argv)
    manifest = Path(args.data) / "manifest.csv"
    if not manifest.is_file():
        sys.stderr.write(f"no manifest at {manifest}\n")
        return 2
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    total = 0
    for source, label, name, _licence, _credit in CHOSEN:
        row = next(r for r in rows if r["source"] == source and r["label"] == label)
        img = Image.open(Path(args.data) / row["path"]).convert("L")
        img.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
        img.save(HERE / name, quality=QUALITY, optimize=True, dpi=(150, 150))
        total += (HERE / name).stat().st_size
        sys.stdout.write(f"{name}: {row['path']} ({img.width}x{img.height})\n")
    sys.stdout.write(f"{len(CHOSEN)} real pages, {total / 1e3:.0f} KB\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
