"""/jobs: long documents in the background, on the local engine and on a real Redis Queue.

The rq tests use the ``redis-server`` that ``.ci/run`` starts (``INKWELL_TEST_REDIS_URL``), or
start their own on a free port (Debian's package), and real ``python -m app worker`` processes;
they skip, saying so, when neither is there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings, jobs_dir
from app.jobs.classify.store import ClassifyJobStore
from tests.conftest import ROOT, needs_tesseract
from tests.helpers import handwritten_page, pdf_bytes, typed_page

pytestmark = needs_tesseract

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("INKWELL_TEST_REDIS_URL"),
    reason="no Redis: redis-server is not installed (Debian package redis-server; .ci/run "
    "installs and starts it) and INKWELL_TEST_REDIS_URL is not set",
)

TERMINAL = ("succeeded", "failed")


def _pdf(n: int) -> bytes:
    pages = [(typed_page if i % 2 == 0 else handwritten_page)(100, seed=i) for i in range(n)]
    return pdf_bytes(pages, 100)


def _post(client: TestClient, url: str, data: bytes, **form: str) -> Any:
    return client.post(url, files={"file": ("doc.pdf", data, "application/pdf")}, data=form)


def _wait(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if body["status"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _same_pages(job: dict[str, Any], direct: dict[str, Any]) -> None:
    """Page for page what /classify answered (reading time aside)."""

    def strip(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k != "elapsed_ms"} for p in pages]

    result = job["result"]
    assert result["label"] == direct["label"]
    assert result["document"] == direct["document"]
    assert result["model"] == direct["model"]
    assert strip(result["pages"]) == strip(direct["pages"])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


# ----------------------------------------------------------------------------------- local
def test_a_job_answers_at_once_and_equals_classify(client: TestClient) -> None:
    data = _pdf(3)
    t0 = time.perf_counter()
    r = _post(client, "/jobs", data, lines="true")
    assert r.status_code == 202, r.text
    assert time.perf_counter() - t0 < 5
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['job_id']}"
    assert job["engine"] == "local"
    assert job["document"]["page_count"] == 3
    assert job["result"] is None
    done = _wait(client, job["job_id"])
    assert done["status"] == "succeeded", done
    assert done["pages_done"] == 3
    assert done["finished_at"] and done["expires_at"]
    direct = _post(client, "/classify", data, lines="true").json()
    _same_pages(done, direct)
    page2 = client.get(f"/jobs/{job['job_id']}/pages/2").json()
    assert page2 == done["result"]["pages"][1]


def test_unknown_jobs_pages_and_cancel(client: TestClient, settings: Settings) -> None:
    r = client.get("/jobs/" + "0" * 32)
    assert r.status_code == 404 and r.json()["code"] == "job_not_found"
    assert client.get("/jobs/not-an-id").status_code == 422
    job = _post(client, "/jobs", _pdf(1)).json()
    assert _wait(client, job["job_id"])["status"] == "succeeded"
    r = client.get(f"/jobs/{job['job_id']}/pages/2")
    assert r.status_code == 404 and r.json()["code"] == "page_not_found"
    assert client.delete(f"/jobs/{job['job_id']}").status_code == 204
    assert client.get(f"/jobs/{job['job_id']}").status_code == 404
    assert client.delete(f"/jobs/{job['job_id']}").status_code == 404
    assert not (jobs_dir(settings) / job["job_id"]).exists()


def test_a_refused_upload_leaves_nothing_behind(client: TestClient, settings: Settings) -> None:
    r = _post(client, "/jobs", b"%PDF-1.4 not really")
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "corrupt_document"
    r = client.post("/jobs", files={"file": ("x.txt", b"hello", "text/plain")})
    assert r.status_code == 415
    root = jobs_dir(settings)
    assert not root.exists() or list(root.iterdir()) == []


def test_a_queued_page_is_not_ready_and_a_restart_resumes_the_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.jobs.classify import engines

    with monkeypatch.context() as m:  # a service that queues jobs but dies before running them
        m.setattr(engines.LocalEngine, "submit", lambda *_a: None)
        with TestClient(create_app(settings)) as c:
            job = _post(c, "/jobs", _pdf(2)).json()
            assert c.get(f"/jobs/{job['job_id']}").json()["status"] == "queued"
            r = c.get(f"/jobs/{job['job_id']}/pages/1")
            assert r.status_code == 409 and r.json()["code"] == "page_not_ready"
    with TestClient(create_app(settings)) as c:  # the next start picks it up
        done = _wait(c, job["job_id"])
        assert done["status"] == "succeeded" and done["pages_done"] == 2


def test_finished_jobs_expire(client: TestClient, settings: Settings) -> None:
    job = _post(client, "/jobs", _pdf(1)).json()
    assert _wait(client, job["job_id"])["status"] == "succeeded"
    store = ClassifyJobStore(jobs_dir(settings))
    assert store.expire(settings.job_ttl) == 0
    assert store.expire(settings.job_ttl, now=time.time() + settings.job_ttl + 1) == 1
    assert client.get(f"/jobs/{job['job_id']}").status_code == 404


def test_a_page_that_cannot_be_read_fails_the_job(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.errors import OcrTimeoutError
    from app.models import predict

    def slow(*_a: object, **_k: object) -> None:
        raise OcrTimeoutError("tesseract took too long")

    monkeypatch.setattr(predict, "featurise_page", slow)
    job = _post(client, "/jobs", _pdf(1)).json()
    done = _wait(client, job["job_id"])
    assert done["status"] == "failed"
    assert done["error"] == {"detail": "tesseract took too long", "code": "timeout"}


def test_unreachable_redis_is_503_and_leaves_nothing(settings: Settings) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rq_settings = settings.model_copy(
        update={"job_engine": "rq", "redis_url": f"redis://127.0.0.1:{port}/0"}
    )
    with TestClient(create_app(rq_settings)) as c:
        r = _post(c, "/jobs", _pdf(1))
        assert r.status_code == 503
        assert r.json()["code"] == "queue_unavailable"
        assert "Redis" in r.json()["detail"]
        assert ClassifyJobStore(jobs_dir(rq_settings)).jobs() == []  # no job, no upload kept
        assert not list(jobs_dir(rq_settings).glob(".new-*"))
        assert c.get("/health").json()["jobs"]["ok"] is False
        assert _post(c, "/classify", _pdf(1)).status_code == 200  # the rest still works


# -------------------------------------------------------------------------------------- rq
@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The Redis .ci/run started (``INKWELL_TEST_REDIS_URL``, emptied first), else our own."""
    url = os.environ.get("INKWELL_TEST_REDIS_URL")
    if url:
        from app.jobs.classify.engines import redis_connection

        redis_connection(url).flushdb()
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs and starts Debian's package)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def rq_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={"job_engine": "rq", "redis_url": redis_url, "job_chunk_pages": 1}
    )


def _worker_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INKWELL_JOB_ENGINE="rq",
        INKWELL_REDIS_URL=s.redis_url,
        INKWELL_MODELS_DIR=str(s.models_dir),
        INKWELL_DEFAULT_MODEL_DIR=str(s.default_model_dir),
        INKWELL_WORKER_MAINTENANCE_INTERVAL="2",
        INKWELL_WORKER_HEARTBEAT_INTERVAL=str(s.worker_heartbeat_interval),
        INKWELL_LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture
def workers(rq_settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def _start_worker(
    procs: list[subprocess.Popen[bytes]], s: Settings, name: str, log: Path
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--name", name],
        cwd=ROOT,
        env=_worker_env(s),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    return proc


@needs_redis
def test_rq_job_with_two_workers_equals_classify(
    rq_settings: Settings, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from rq.job import Job

    from app.jobs.classify.engines import redis_connection

    for i in range(2):
        _start_worker(workers, rq_settings, f"w{i}", tmp_path / f"w{i}.log")
    data = _pdf(4)
    with TestClient(create_app(rq_settings)) as c:
        r = _post(c, "/jobs", data, lines="true")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["engine"] == "rq"
        done = _wait(c, job["job_id"], timeout=180)
        logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
        assert done["status"] == "succeeded", (done, logs)
        _same_pages(done, _post(c, "/classify", data, lines="true").json())
        tasks = Job.fetch_many(
            [f"{job['job_id']}-{n}" for n in range(1, 5)],
            connection=redis_connection(rq_settings.redis_url),
        )
        assert {t.worker_name for t in tasks if t is not None} == {"w0", "w1"}
        health = c.get("/health").json()["jobs"]
        assert health["ok"] is True and health["engine"] == "rq"


_WORKER_RECORDING_MODULES = """
import atexit, json, sys
from app.cli import main
out = sys.argv[1]
atexit.register(
    lambda: open(out, "w").write(json.dumps(sorted(m for m in sys.modules if m.startswith("app"))))
)
sys.exit(main(["worker", "--burst", "--name", "burst"]))
"""


@needs_redis
def test_a_worker_runs_a_job_without_the_api(rq_settings: Settings, tmp_path: Path) -> None:
    """`python -m app worker` reads pages with the jobs layer alone: no module of app.api loaded."""
    data = _pdf(2)
    modules = tmp_path / "modules.json"
    with TestClient(create_app(rq_settings)) as c:
        r = _post(c, "/jobs", data)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        proc = subprocess.run(  # burst: reads the queued tasks, then stops
            [sys.executable, "-c", _WORKER_RECORDING_MODULES, str(modules)],
            cwd=ROOT,
            env=_worker_env(rq_settings),
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        done = _wait(c, job_id, timeout=30)
        assert done["status"] == "succeeded", done
        assert [p["page"] for p in done["result"]["pages"]] == [1, 2]
    loaded = json.loads(modules.read_text())
    assert "app.jobs.classify.runner" in loaded  # the record is the worker's own
    assert [m for m in loaded if m == "app.api" or m.startswith("app.api.")] == []


def _work_horses(worker_pid: int) -> list[int]:
    """Live work horses of an rq worker: forks of it, so its own command line. A horse that has
    just ended is a zombie until the worker reaps it, and tesseract children are not horses."""
    me = psutil.Process(worker_pid)
    horses = []
    for child in me.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline() == me.cmdline():
                horses.append(child.pid)
        except psutil.NoSuchProcess:  # ZombieProcess is one: it ended while being looked at
            continue
    return horses


@needs_redis
def test_rq_worker_killed_mid_task_is_retried(
    rq_settings: Settings, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    worker = _start_worker(workers, rq_settings, "victim", tmp_path / "w.log")
    log_path = tmp_path / "w.log"
    death = "Work-horse terminated unexpectedly"
    with TestClient(create_app(rq_settings)) as c:
        job = _post(c, "/jobs", _pdf(6)).json()
        # the task runs in a work horse forked by the worker: kill one as the OOM killer would.
        # A page takes a few tenths of a second, so a horse seen alive may already have saved
        # its result when the signal lands (nothing to retry): kill the next one then, until
        # the worker reports a horse lost mid-task.
        deadline = time.monotonic() + 60
        while death not in log_path.read_text() and time.monotonic() < deadline:
            for horse in _work_horses(worker.pid)[:1]:
                with contextlib.suppress(ProcessLookupError):  # it just ended: next one
                    os.kill(horse, signal.SIGKILL)
                reaped = time.monotonic() + 2
                while death not in log_path.read_text() and time.monotonic() < reaped:
                    time.sleep(0.05)
            time.sleep(0.02)
        log = log_path.read_text()
        assert death in log, log
        done = _wait(c, job["job_id"], timeout=180)
        log = log_path.read_text()
        assert done["status"] == "succeeded", (done, log)
        assert done["pages_done"] == 6


@needs_redis
def test_rq_task_of_a_vanished_worker_is_retried_by_another(
    rq_settings: Settings, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A machine lost mid-task (worker and work horse killed): its heartbeat expires, another
    worker's maintenance finds the task abandoned and puts it back; the job completes."""
    from rq.job import Job

    from app.jobs.classify.engines import redis_connection

    fast = rq_settings.model_copy(update={"worker_heartbeat_interval": 1})
    victim = _start_worker(workers, fast, "victim", tmp_path / "victim.log")
    with TestClient(create_app(rq_settings)) as c:
        job = _post(c, "/jobs", _pdf(3)).json()
        deadline = time.monotonic() + 60
        horses: list[int] = []
        while not horses and time.monotonic() < deadline:
            horses = _work_horses(victim.pid)
            time.sleep(0.02)
        assert horses, (tmp_path / "victim.log").read_text()
        conn = redis_connection(rq_settings.redis_url)
        ids = [f"{job['job_id']}-{n}" for n in (1, 2, 3)]
        # 1-page tasks: the victim may have finished one before its horse of the next was seen
        finished_by_victim = {
            t.id for t in Job.fetch_many(ids, connection=conn) if t and t.is_finished
        }
        for p in (victim.pid, *horses):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        victim.wait(10)
        _start_worker(workers, fast, "rescuer", tmp_path / "rescuer.log")
        done = _wait(c, job["job_id"], timeout=240)
        log = (tmp_path / "rescuer.log").read_text()
        assert done["status"] == "succeeded", (done, log)
        assert done["pages_done"] == 3
        rest = [
            t for t in Job.fetch_many(ids, connection=conn) if t and t.id not in finished_by_victim
        ]
        # the task the victim had started (and any after it) was put back and run by the rescuer
        assert rest, finished_by_victim
        assert {t.worker_name for t in rest} == {"rescuer"}


@needs_redis
def test_rq_task_that_keeps_failing_fails_its_job(
    rq_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its retries a task rq gave up on turns the job failed, with the reason."""
    from rq import Queue, SimpleWorker

    from app.jobs.classify import engines, tasks

    def broken(*_a: object, **_k: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tasks, "run_pages", broken)
    monkeypatch.setattr(tasks, "get_settings", lambda: rq_settings)
    with TestClient(create_app(rq_settings)) as c:
        job = _post(c, "/jobs", _pdf(1)).json()
        conn = engines.redis_connection(rq_settings.redis_url)
        worker = SimpleWorker([Queue(engines.QUEUE_NAME, connection=conn)], connection=conn)
        worker.work(burst=True)  # in this process: three attempts, all failing
        body = c.get(f"/jobs/{job['job_id']}").json()
        assert body["status"] == "failed", body
        assert body["error"]["code"] == "task_failed"
        assert "disk on fire" in body["error"]["detail"]


@needs_redis
def test_a_worker_that_does_not_see_the_jobs_folder_fails_the_job_loudly(
    rq_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq import Queue, SimpleWorker

    from app.jobs.classify import engines, tasks

    elsewhere = rq_settings.model_copy(update={"models_dir": tmp_path / "not-shared"})
    monkeypatch.setattr(tasks, "get_settings", lambda: elsewhere)
    with TestClient(create_app(rq_settings)) as c:
        job = _post(c, "/jobs", _pdf(1)).json()
        conn = engines.redis_connection(rq_settings.redis_url)
        SimpleWorker([Queue(engines.QUEUE_NAME, connection=conn)], connection=conn).work(burst=True)
        body = c.get(f"/jobs/{job['job_id']}").json()
        assert body["status"] == "failed", body
        assert "does not see the API's jobs folder" in body["error"]["detail"]


@needs_redis
def test_rq_cancel_drops_queued_tasks(rq_settings: Settings) -> None:
    from rq.job import Job, JobStatus

    from app.jobs.classify.engines import redis_connection

    with TestClient(create_app(rq_settings)) as c:  # no worker: the tasks stay queued
        job = _post(c, "/jobs", _pdf(2)).json()
        assert c.get(f"/jobs/{job['job_id']}").json()["status"] == "queued"
        assert c.delete(f"/jobs/{job['job_id']}").status_code == 204
        tasks = Job.fetch_many(
            [f"{job['job_id']}-1", f"{job['job_id']}-2"],
            connection=redis_connection(rq_settings.redis_url),
        )
        assert all(t is not None and t.get_status() == JobStatus.CANCELED for t in tasks)
        assert c.get(f"/jobs/{job['job_id']}").status_code == 404
