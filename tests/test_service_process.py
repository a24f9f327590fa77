"""The real service in a subprocess: no orphan workers, jobs that survive a kill and a restart.

Each test starts ``python -m app serve`` with two workers on a free loopback port, as users do,
and kills it the way an OOM killer or an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT, needs_fonts, needs_tesseract
from tests.helpers import make_folder_dataset, pdf_bytes, typed_page

pytestmark = [needs_tesseract, pytest.mark.slow]

GONE_WITHIN = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def _start(root: Path, *, workers: int = 2, name: str = "server") -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "INKWELL_WORKERS": str(workers),
        "INKWELL_DATA_DIR": str(root / "data"),
        "INKWELL_MODELS_DIR": str(root / "models"),
        "INKWELL_DEFAULT_MODEL_DIR": str(ROOT / "models" / "default"),
        "INKWELL_CACHE_DIR": str(root / "cache"),
        "INKWELL_LOG_LEVEL": "INFO",
    }
    log = root / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    pytest.fail(f"the server did not answer /health: {log.read_text()[-2000:]}")


def _wait_workers(server: Server, n: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        procs = server.descendants()
        if len(procs) >= n:
            return procs
        time.sleep(0.2)
    pytest.fail(f"fewer than {n} worker processes started")


def _assert_all_gone(procs: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(procs, timeout=GONE_WITHIN)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:  # do not leave them to burn the CI machine
        p.kill()
    assert not alive, f"orphans still running {GONE_WITHIN:g} s after: {alive}"


def _train(server: Server, until: str, timeout: float, **body: object) -> dict[str, object]:
    """Start a training job and poll it until ``until``: ``featurising`` (a page is done) or
    ``finished``; returns its last status."""
    job = httpx.post(f"{server.base}/train", json=body, timeout=10).json()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, object] = httpx.get(
            f"{server.base}/train/{job['job_id']}", timeout=5
        ).json()
        progress = status["progress"]
        assert isinstance(progress, dict)
        if until == "featurising" and progress.get("done", 0) >= 1:
            return status
        if until == "finished" and status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.2)
    pytest.fail(f"the training job did not reach {until!r} in {timeout:g} s")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "data").mkdir()
    yield tmp_path


def test_workers_die_with_a_killed_server(root: Path) -> None:
    server = _start(root)
    procs = _wait_workers(server, 3)  # the fork server and two workers
    pdf = pdf_bytes([typed_page(100, seed=i) for i in range(6)], 100)

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
            httpx.post(f"{server.base}/classify", files={"file": ("d.pdf", pdf)}, timeout=60)

    client = threading.Thread(target=post)
    client.start()
    time.sleep(1.5)  # pages are being read in the workers
    procs = server.descendants()
    server.kill(signal.SIGKILL)
    _assert_all_gone(procs)
    client.join(timeout=30)


def test_sigterm_stops_server_and_workers(root: Path) -> None:
    server = _start(root)
    procs = _wait_workers(server, 3)
    server.kill(signal.SIGTERM)
    assert server.proc.returncode is not None
    _assert_all_gone(procs)


@needs_fonts
def test_training_killed_midway_is_interrupted_after_a_restart(root: Path) -> None:
    make_folder_dataset(root / "data" / "small", n_per_class=6, dpi=100)
    server = _start(root)
    job = _train(server, "featurising", 120, dataset="small")
    assert job["status"] == "running", job
    procs = server.descendants()
    server.kill(signal.SIGKILL)
    _assert_all_gone(procs)
    # a half-written version of a dead training, as a kill while writing would leave it
    stale = root / "models" / ".tmp-999999-small-abc"
    stale.mkdir(parents=True)
    (stale / "metadata.json").write_text("{}")

    again = _start(root, name="restarted")
    try:
        status = httpx.get(f"{again.base}/train/{job['job_id']}", timeout=5).json()
        assert status["status"] == "interrupted"
        assert "served model" in status["error"]
        models = httpx.get(f"{again.base}/models", timeout=5).json()
        assert models["active"] == "default"
        assert [v["id"] for v in models["versions"]] == ["default"]
        assert not stale.exists()
        health = httpx.get(f"{again.base}/health", timeout=5).json()
        assert health["active_model"]["id"] == "default"
    finally:
        again.kill(signal.SIGTERM)


@needs_fonts
def test_finished_job_answers_after_a_restart(root: Path) -> None:
    make_folder_dataset(root / "data" / "small", n_per_class=4, dpi=100)
    server = _start(root)
    status = job = _train(
        server, "finished", 300, dataset="small", algorithms=["svm"], augment=False
    )
    assert status["status"] == "succeeded", status
    server.kill(signal.SIGKILL)

    again = _start(root, name="restarted")
    try:
        after = httpx.get(f"{again.base}/train/{job['job_id']}", timeout=5).json()
        assert after["status"] == "succeeded"
        assert after["metrics"] == status["metrics"]
        assert after["version_id"] == status["version_id"]
    finally:
        again.kill(signal.SIGTERM)


@needs_fonts
def test_sigterm_during_training_stops_promptly(root: Path) -> None:
    make_folder_dataset(root / "data" / "small", n_per_class=8, dpi=100)
    server = _start(root)
    job = _train(server, "featurising", 120, dataset="small")
    procs = server.descendants()
    t0 = time.monotonic()
    server.kill(signal.SIGTERM)  # waits for the exit
    assert time.monotonic() - t0 < 20, "queued pages were read instead of cancelled"
    _assert_all_gone(procs)
    record = (root / "models" / ".jobs" / f"{job['job_id']}.json").read_text()
    assert '"interrupted"' in record
