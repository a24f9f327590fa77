"""Corrections end to end against a running service: correct pages of one source, retrain, score.

    poetry run python scripts/corrections_e2e.py --url http://127.0.0.1:9000 \\
        --data ../shared/datasets/manifest.csv --source funsd --pages 20 [--out DIR]

The service must serve the shipped model (its base features) and keep its own corrections store.
The script plays a user whose documents are ``--source``'s, a source the base has never learned
from (``exclude_sources`` takes it out of the base):

1. ``--pages`` of its documents (drawn at random, seeded; whole groups) are sent to
   ``POST /corrections`` with their manifest label;
2. ``POST /train {"dataset": "corrections", "base": {"version": "default", "exclude_sources":
   [source]}, "activate": true}``, polled until done; the job's metrics hold the base's
   leave-one-source-out figures before and after and the guard's verdict;
3. every page of the source's *other* documents goes through ``POST /classify`` with the new
   version; the script prints their accuracy beside the shipped model's leave-one-source-out
   verdicts on the same pages (``loso_pages.csv``: the shipped model trained without the source).

Pages whose label the audit beside the manifest (``AUDIT.csv``) marks ``unsure`` are scored apart
and kept out of the headline figures, as in every evaluation of the project; a row gives the
accuracy with them counted too.

It prints a Markdown table and writes it (``e2e.md``) with the details (``e2e.json``) into
``--out``. Exit code 1 when a request
fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.training.dataset import unsure_paths

ROOT = Path(__file__).resolve().parent.parent


def _documents(manifest: Path, source: str) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["source"] == source]


def _loso_labels(model_dir: Path, source: str, algorithm: str) -> dict[str, str]:
    """The shipped model's leave-one-source-out label of each first page of ``source``."""
    with (model_dir / "loso_pages.csv").open(newline="", encoding="utf-8") as fh:
        return {
            r["path"]: r[f"{algorithm}:labels"]
            for r in csv.DictReader(fh)
            if r["source"] == source and r["page"] == "1"
        }


def _wait(client: httpx.Client, job_id: str) -> dict[str, Any]:
    stage = None
    while True:
        job: dict[str, Any] = client.get(f"/train/{job_id}").json()
        if job.get("stage") != stage:
            stage = job.get("stage")
            sys.stderr.write(f"  {time.strftime('%H:%M:%S')} {stage}\n")
        if job["status"] in ("succeeded", "failed", "interrupted"):
            return job
        time.sleep(5)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def main() -> int:
    """Run the three steps; print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:9000")
    ap.add_argument("--data", required=True, help="the dev manifest.csv")
    ap.add_argument("--source", default="funsd")
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--algorithm", default="catboost")
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "default"))
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    manifest = Path(args.data)
    rows = _documents(manifest, args.source)
    groups = sorted({r["group"] for r in rows})
    random.Random(args.seed).shuffle(groups)
    picked: list[dict[str, str]] = []
    for g in groups:
        if len(picked) >= args.pages:
            break
        picked += [r for r in rows if r["group"] == g]
    chosen = {r["group"] for r in picked}
    held = [r for r in rows if r["group"] not in chosen]
    unsure = unsure_paths(manifest.parent)
    client = httpx.Client(base_url=args.url, timeout=600)

    sys.stderr.write(f"1. {len(picked)} corrections from {len(chosen)} documents\n")
    for r in picked:
        path = manifest.parent / r["path"]
        resp = client.post(
            "/corrections",
            files={"file": (path.name, path.read_bytes())},
            data={"label": r["label"]},
        )
        if resp.status_code != 201:
            sys.stderr.write(f"POST /corrections {path.name}: {resp.status_code} {resp.text}\n")
            return 1

    sys.stderr.write("2. training on the base + corrections\n")
    t0 = time.monotonic()
    resp = client.post(
        "/train",
        json={
            "dataset": "corrections",
            "base": {"version": "default", "exclude_sources": [args.source]},
            "algorithms": [args.algorithm],
            "activate": True,
        },
    )
    if resp.status_code != 202:
        sys.stderr.write(f"POST /train: {resp.status_code} {resp.text}\n")
        return 1
    job = _wait(client, resp.json()["job_id"])
    train_seconds = time.monotonic() - t0
    if job["status"] != "succeeded":
        sys.stderr.write(f"training {job['status']}: {job.get('error')}\n")
        return 1
    version = job["version_id"]

    sys.stderr.write(f"3. classifying {len(held)} pages of the other documents with {version}\n")
    loso = _loso_labels(Path(args.model_dir), args.source, args.algorithm)
    pages = []
    for r in held:
        path = manifest.parent / r["path"]
        resp = client.post(
            "/classify", files={"file": (path.name, path.read_bytes())}, data={"model": version}
        )
        if resp.status_code != 200:
            sys.stderr.write(f"POST /classify {path.name}: {resp.status_code} {resp.text}\n")
            return 1
        label = resp.json()["pages"][0]["label"]
        pages.append(
            {
                "file": path.name,
                "label": r["label"],
                "retrained": label,
                "shipped_loso": loso.get(path.name),
                "unsure": r["path"] in unsure,
            }
        )

    def acc(col: str, subset: list[dict[str, Any]]) -> float | None:
        scored = [p for p in subset if p[col] is not None]
        return sum(p[col] == p["label"] for p in scored) / len(scored) if scored else None

    sure = [p for p in pages if not p["unsure"]]
    base, user, guard = job["metrics"]["base"], job["metrics"]["user"], job["metrics"]["guard"]
    before, after = base["loso_before"], base["loso_after"] or {}
    table = [
        f"| {args.source}: {len(sure)} pages of documents never corrected (label sure) "
        f"| shipped model, {args.source} left out (LOSO) | base without {args.source} + "
        f"{len(picked)} corrections |",
        "|---|---|---|",
        f"| accuracy (final label) | {_pct(acc('shipped_loso', sure))} | "
        f"{_pct(acc('retrained', sure))} |",
    ]
    for lab in ("typed", "handwritten", "mixed"):
        sub = [p for p in sure if p["label"] == lab]
        if sub:
            table.append(
                f"| {lab} pages ({len(sub)}) | {_pct(acc('shipped_loso', sub))} | "
                f"{_pct(acc('retrained', sub))} |"
            )
    if len(sure) < len(pages):
        doubtful = ", ".join(
            f"{p['file']} {p['label']} -> {p['retrained']}" for p in pages if p["unsure"]
        )
        table.append(
            f"| all {len(pages)} pages, the {len(pages) - len(sure)} the audit marks unsure "
            f"({doubtful}) counted | {_pct(acc('shipped_loso', pages))} | "
            f"{_pct(acc('retrained', pages))} |"
        )
    table += [
        "",
        f"| the base, leave-one-source-out over {before['sources']} sources | shipped model | "
        f"retrained |",
        "|---|---|---|",
        f"| macro final accuracy | {_pct(before['macro_final_accuracy'])} | "
        f"{_pct(after.get('macro_final_accuracy'))} |",
        f"| balanced accuracy, pure pages | {_pct(before['pure_balanced_accuracy'])} | "
        f"{_pct(after.get('pure_balanced_accuracy'))} |",
        f"| false mixed | {before['false_mixed']} | {after.get('false_mixed', '–')} |",
        "",
        f"Guard: {'passed' if guard['passed'] else 'not passed'} ({guard['reason']}); "
        f"activated: {job['activated']}. Corrections cross-validated by document: "
        f"{_pct(user['accuracy'][args.algorithm]['cross_validated'])} (base alone "
        f"{_pct(user['accuracy'][args.algorithm]['base_alone'])}). Training took "
        f"{train_seconds / 60:.1f} min.",
    ]
    text = "\n".join(table)
    sys.stdout.write(text + "\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.md").write_text(text + "\n", encoding="utf-8")
    (out / "e2e.json").write_text(
        json.dumps({"version": version, "job": job, "pages": pages, "table": text}, indent=1),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
