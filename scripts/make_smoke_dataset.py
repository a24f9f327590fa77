"""Write a small generated dataset (handwritten/ and typed/ PNGs) for smoke-testing /train.

python3 scripts/make_smoke_dataset.py data/smoke
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import make_folder_dataset  # noqa: E402

if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/smoke")
    make_folder_dataset(target, n_per_class=5, dpi=100)
    print(f"smoke dataset written to {target}")
