"""/classify latency and throughput against a real uvicorn on loopback, beside bare extraction.

    poetry run python bench/api.py [--requests 20] [--workers 2]

Starts `python -m app serve` on a free 127.0.0.1 port (bounded run, stops itself), posts a 1-page
and a 10-page PDF made from the samples, and compares the service time with the same pages
featurised and classified in-process with the same number of worker processes.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.documents import load_pages  # noqa: E402
from app.models.predict import classify_pages  # noqa: E402
from app.models.registry import load_version  # noqa: E402


def make_pdf(n_pages: int) -> bytes:
    sources = [ROOT / "samples" / n for n in ("typed_minutes.png", "handwritten_note.png")]
    imgs = [Image.open(sources[i % 2]).convert("L") for i in range(n_pages)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="PDF", save_all=True, append_images=imgs[1:], resolution=150)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "INKWELL_WORKERS": str(args.workers), "INKWELL_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        docs = {"1-page PDF": make_pdf(1), "10-page PDF": make_pdf(10)}
        version = load_version(ROOT / "models" / "default")
        rows = []
        with httpx.Client(timeout=300) as client, ProcessPoolExecutor(args.workers) as pool:
            for _ in range(2):  # warm-up: worker start-up is not part of a request's cost
                client.post(f"{base}/classify", files={"file": ("d.pdf", docs["1-page PDF"])})
                classify_pages(load_pages(docs["1-page PDF"], dpi=200), version, executor=pool)
            for name, data in docs.items():
                api, bare = [], []
                n = args.requests if name.startswith("1-") else max(3, args.requests // 4)
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = client.post(f"{base}/classify", files={"file": ("d.pdf", data)})
                    r.raise_for_status()
                    api.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    classify_pages(load_pages(data, dpi=200), version, executor=pool)
                    bare.append(time.perf_counter() - t0)
                rows.append((name, api, bare))
            one = docs["1-page PDF"]

            def call(_: int) -> float:
                t0 = time.perf_counter()
                client.post(f"{base}/classify", files={"file": ("d.pdf", one)}).raise_for_status()
                return time.perf_counter() - t0

            total_requests = 4 * args.requests
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as clients:
                lat = list(clients.map(call, range(total_requests)))
            wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"uvicorn on loopback, INKWELL_WORKERS={args.workers}; bare = load + features + model "
        "in-process with the same pool"
    )
    print()
    print("| document | requests | API p50 s | API p95 s | bare p50 s | API overhead (p50) |")
    print("|---|---|---|---|---|---|")
    for name, api, bare in rows:
        overhead = statistics.median(api) / statistics.median(bare) - 1
        print(
            f"| {name} | {len(api)} | {pct(api, 50):.3f} | {pct(api, 95):.3f} | "
            f"{pct(bare, 50):.3f} | {100 * overhead:+.1f} % |"
        )
    print()
    print(
        f"8 concurrent clients, {total_requests} x 1-page PDF: {total_requests / wall:.2f} "
        f"pages/s, latency p50 {pct(lat, 50):.3f} s, p95 {pct(lat, 95):.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
