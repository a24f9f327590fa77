"""Training time on the dev set, cold (empty feature cache) and warm, side by side in one run.

poetry run python bench/train.py [--data ../shared/datasets/manifest.csv] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.training.train import TrainConfig, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "manifest.csv"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for run in ("cold", "warm"):
            t0 = time.perf_counter()
            result = train(
                Path(args.data),
                out_dir=Path(tmp) / "models",
                cache_dir=cache,
                cfg=TrainConfig(workers=args.jobs, threads=args.jobs),
                version_id=f"bench-{run}",
            )
            total = time.perf_counter() - t0
            feat = result.report["timing"]["feature_seconds"]
            rows.append((run, total, feat, total - feat))
    print(f"training on {args.data} with {args.jobs} worker(s)")
    print()
    print("| run | total s | feature extraction s | splits, CV, fits, reports s |")
    print("|---|---|---|---|")
    for run, total, feat, rest in rows:
        print(f"| {run} | {total:.1f} | {feat:.1f} | {rest:.1f} |")
    print()
    print(f"cold / warm = {rows[0][1] / rows[1][1]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
