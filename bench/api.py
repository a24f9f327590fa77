"""The service under load, through a real uvicorn on loopback (it starts and stops its own).

    poetry run python bench/api.py [--workers 2] [--clients 50] [--pages 1,20,200] [--overhead]

Memory: RSS of the server plus all its descendants (fork server, workers, pdftoppm), sampled every
50 ms (a child caught between fork and exec shares the server's memory and is not counted twice):
idle after start-up, peak while one 1-, 20- and 200-page PDF (A4 scans at 150 dpi) is classified,
and what the server keeps afterwards. Load: N clients post a 1-page PDF at the same moment;
latency p50/p95/max, status counts (503 `busy` with Retry-After is the designed answer past the
page capacity), and /health latency polled throughout. `--overhead`: /classify time against the
same pages featurised and classified in-process with the same number of worker processes.
`--jobs`: a 200-page PDF through POST /jobs on the local engine (1 and 2 worker processes) and on
the rq engine (its own redis-server, 1 and 2 `python -m app worker` processes): time to answer,
progress seen while polling, pages/s, and whether the result equals /classify's page for page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.documents import load_pages  # noqa: E402
from app.models.predict import classify_pages  # noqa: E402
from app.models.registry import load_version  # noqa: E402


def make_pdf(n_pages: int) -> bytes:
    sources = [ROOT / "samples" / n for n in ("typed_minutes.png", "typed_script_font_note.png")]
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


def overhead(args: argparse.Namespace) -> int:
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


class RssSampler:
    """Peak RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.peak_parts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def parts(self) -> dict[str, int]:
        """RSS by role: the server, the fork server and its workers, tools (pdftoppm, ...)."""
        out = {"server": 0, "workers": 0, "tools": 0}
        with contextlib.suppress(psutil.Error):
            server_cmd = self.root.cmdline()
        for proc in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                rss = proc.memory_info().rss
                cmd = proc.cmdline()
                if proc.pid == self.root.pid:
                    out["server"] += rss
                elif cmd == server_cmd:
                    # a pdftoppm being started: until it execs, the (v)forked child shares the
                    # server's memory and its RSS is the server's, counted once already
                    continue
                elif "multiprocessing" in " ".join(cmd):
                    out["workers"] += rss
                else:
                    out["tools"] += rss
        return out

    def now(self) -> int:
        return sum(self.parts().values())

    def _run(self) -> None:
        while not self._stop.is_set():
            parts = self.parts()
            if sum(parts.values()) > self.peak:
                self.peak, self.peak_parts = sum(parts.values()), parts
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def scan_pdf(n_pages: int) -> bytes:
    """A4 pages at 150 dpi (1240 x 1754) holding the sample pages, as a scanner would make."""
    sources = [ROOT / "samples" / n for n in ("typed_minutes.png", "typed_script_font_note.png")]
    pages = []
    for i in range(n_pages):
        canvas = Image.new("L", (1240, 1754), 255)
        src = Image.open(sources[i % 2]).convert("L")
        src.thumbnail((1100, 1600))
        canvas.paste(src, (70, 80))
        pages.append(canvas)
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=150)
    return buf.getvalue()


def start_server(
    workers: int, port: int, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INKWELL_WORKERS": str(workers),
        "INKWELL_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not start")


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def memory(args: argparse.Namespace) -> None:
    port = free_port()
    server = start_server(args.workers, port)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        sampler = RssSampler(server.pid)
        with httpx.Client(timeout=1200) as client:
            client.post(f"{base}/classify", files={"file": ("w.pdf", scan_pdf(1))})  # warm-up
            time.sleep(2)
            idle = sampler.now()
            for n in args.pages:
                data = scan_pdf(n)
                with RssSampler(server.pid) as peak:
                    t0 = time.perf_counter()
                    r = client.post(f"{base}/classify", files={"file": (f"{n}.pdf", data)})
                    seconds = time.perf_counter() - t0
                r.raise_for_status()
                assert len(r.json()["pages"]) == n
                time.sleep(2)
                rows.append((n, len(data), peak.peak, sampler.now(), seconds, peak.peak_parts))
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"memory: RSS of server + fork server + {args.workers} workers (MB)")
    print()
    print(f"idle after start-up and one request: **{mb(idle)} MB**")
    print()
    print(
        "| PDF | size MB | peak RSS MB | at the peak: server / workers / tools MB | "
        "RSS after MB | seconds | s/page |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, size, peak_rss, after, seconds, parts in rows:
        split = " / ".join(mb(parts.get(k, 0)) for k in ("server", "workers", "tools"))
        print(
            f"| {n} pages | {size / 2**20:.1f} | {mb(peak_rss)} | {split} | {mb(after)} | "
            f"{seconds:.1f} | {seconds / n:.2f} |"
        )
    if len(rows) >= 2:
        print()
        print(
            f"peak {rows[-1][0]} pages / peak {rows[-2][0]} pages: {rows[-1][2] / rows[-2][2]:.2f}"
        )


def load(args: argparse.Namespace) -> None:
    port = free_port()
    server = start_server(args.workers, port)
    base = f"http://127.0.0.1:{port}"
    one = scan_pdf(1)
    health: list[float] = []
    done = threading.Event()

    def poll_health() -> None:
        with httpx.Client(timeout=30) as c:
            while not done.is_set():
                t0 = time.perf_counter()
                c.get(f"{base}/health").raise_for_status()
                health.append(time.perf_counter() - t0)
                time.sleep(0.2)

    barrier = threading.Barrier(args.clients)

    def call(_: int) -> tuple[int, float, str | None]:
        with httpx.Client(timeout=120) as c:
            barrier.wait()
            t0 = time.perf_counter()
            r = c.post(f"{base}/classify", files={"file": ("one.pdf", one)})
            return r.status_code, time.perf_counter() - t0, r.headers.get("Retry-After")

    try:
        httpx.post(f"{base}/classify", files={"file": ("w.pdf", one)}, timeout=120)  # warm-up
        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(call, range(args.clients)))
        wall = time.perf_counter() - t0
        time.sleep(0.5)
        done.set()
        poller.join(timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=60)
    lat = [s for _, s, _ in results]
    ok = [s for code, s, _ in results if code == 200]
    codes: dict[int, int] = {}
    for code, _, _ in results:
        codes[code] = codes.get(code, 0) + 1
    retry = sorted({int(h) for code, _, h in results if code == 503 and h})
    print(f"load: {args.clients} clients post a 1-page PDF at once, {args.workers} workers")
    print()
    print("| answers | p50 s | p95 s | max s | 200 | 503 busy | other 5xx | Retry-After s |")
    print("|---|---|---|---|---|---|---|---|")
    other = sum(v for k, v in codes.items() if k >= 500 and k != 503)
    span = f"{retry[0]}-{retry[-1]}" if retry else "-"
    print(
        f"| all | {pct(lat, 50):.2f} | {pct(lat, 95):.2f} | {max(lat):.2f} | {codes.get(200, 0)} | "
        f"{codes.get(503, 0)} | {other} | {span} |"
    )
    if ok:
        print(f"| 200 only | {pct(ok, 50):.2f} | {pct(ok, 95):.2f} | {max(ok):.2f} | | | | |")
    print()
    print(
        f"wall {wall:.1f} s; /health during the run: {len(health)} calls, "
        f"p50 {1000 * pct(health, 50):.0f} ms, max {1000 * max(health):.0f} ms"
    )


def _strip(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k != "elapsed_ms"} for p in pages]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def run_job(base: str, pdf: bytes) -> dict[str, Any]:
    """Submit, poll every 0.5 s, return timings, progress seen and the result."""
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/jobs", files={"file": ("long.pdf", pdf, "application/pdf")}, timeout=60)
    answered = time.perf_counter() - t0
    r.raise_for_status()
    job_id = r.json()["job_id"]
    seen: list[int] = []
    while True:
        body = httpx.get(f"{base}/jobs/{job_id}", timeout=30).json()
        if not seen or seen[-1] != body["pages_done"]:
            seen.append(body["pages_done"])
        if body["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    total = time.perf_counter() - t0
    return {"answered": answered, "total": total, "seen": seen, "body": body}


def jobs(args: argparse.Namespace) -> None:
    """A long PDF through /jobs on each engine with 1 and 2 worker processes, against /classify."""
    n = args.job_pages
    pdf = scan_pdf(n)
    rows = []
    with tempfile_dir() as models:
        common = {
            "INKWELL_MODELS_DIR": models,
            "INKWELL_LOG_LEVEL": "WARNING",
            "INKWELL_JOB_MAX_PAGES": str(max(n, 2000)),
        }
        port = free_port()
        server = start_server(2, port, common)
        base = f"http://127.0.0.1:{port}"
        try:
            t0 = time.perf_counter()
            direct = httpx.post(
                f"{base}/classify",
                files={"file": ("long.pdf", pdf, "application/pdf")},
                timeout=3600,
            ).json()
            classify_s = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(30)
        for engine, count in (("local", 1), ("local", 2), ("rq", 1), ("rq", 2)):
            env = dict(common, INKWELL_JOB_ENGINE=engine)
            with contextlib.ExitStack() as stack:
                procs: list[subprocess.Popen[bytes]] = []
                if engine == "rq":
                    env["INKWELL_REDIS_URL"] = stack.enter_context(redis_server())
                    procs = [
                        subprocess.Popen(
                            [sys.executable, "-m", "app", "worker", "--name", f"bench{i}"],
                            cwd=ROOT,
                            env={**os.environ, **env},
                        )
                        for i in range(count)
                    ]
                port = free_port()
                server = start_server(count if engine == "local" else 1, port, env)
                try:
                    res = run_job(f"http://127.0.0.1:{port}", pdf)
                finally:
                    for p in [server, *procs]:
                        p.terminate()
                    for p in [server, *procs]:
                        p.wait(30)
            body = res["body"]
            result = body.get("result") or {}
            same = result.get("label") == direct["label"] and _strip(
                result.get("pages", [])
            ) == _strip(direct["pages"])
            rows.append(
                (
                    engine,
                    count,
                    body["status"],
                    res["answered"],
                    len(res["seen"]),
                    res["total"],
                    n / res["total"],
                    same,
                )
            )
    print(f"### /jobs: one {n}-page PDF (A4 scans, 150 dpi)\n")
    print(
        f"/classify on the same PDF, 2 workers: {classify_s:.1f} s ({n / classify_s:.2f} pages/s)\n"
    )
    print(
        "| engine | worker processes | status | POST /jobs answered (s) | distinct progress "
        "values seen | done after (s) | pages/s | result equals /classify |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for engine, count, status, answered, seen, total, rate, same in rows:
        print(
            f"| {engine} | {count} | {status} | {answered:.2f} | {seen} | {total:.1f} | "
            f"{rate:.2f} | {'yes' if same else 'NO'} |"
        )


@contextlib.contextmanager
def tempfile_dir() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="inkwell-bench-") as tmp:
        yield tmp


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pages", default="1,20,200")
    parser.add_argument("--requests", type=int, default=12, help="with --overhead")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--jobs", action="store_true", help="only the /jobs engines table")
    parser.add_argument("--job-pages", type=int, default=200)
    args = parser.parse_args()
    args.pages = [int(p) for p in args.pages.split(",") if p]
    if args.overhead:
        return overhead(args)
    if args.jobs:
        jobs(args)
        return 0
    if not args.skip_memory:
        memory(args)
        print()
    if not args.skip_load:
        load(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
