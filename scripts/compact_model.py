"""Add compact NumPy forms (``*.npz``) to a model version written before they existed.

    poetry run python scripts/compact_model.py models/default

Each compact form is checked against its library model before it is written (see
app/models/compact.py); serving then loads the version without scikit-learn or CatBoost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.models.registry import add_compact_forms  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("version", type=Path, help="a model version folder")
    args = parser.parse_args()
    artefacts = add_compact_forms(args.version)
    print(json.dumps({k: v.get("compact") for k, v in artefacts.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
