"""The service's worker processes (page featurisation runs there, OCR engine loaded once)."""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor

from app.errors import AppError
from app.ocr import warm_up

log = logging.getLogger(__name__)


def _worker_init(lang: str) -> None:
    """Workers die on SIGTERM and leave Ctrl-C to the server, then load the feature stage.

    Importing it and loading tesseract's language model here means the first request does not
    pay for either.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    importlib.import_module("app.models.predict")
    try:
        warm_up(lang)
    except AppError as e:  # reported by /health; the request will get the same error
        log.warning("OCR warm-up failed: %s", e.message)


def _ready() -> bool:
    return True


def make_executor(workers: int, lang: str = "eng") -> ProcessPoolExecutor:
    """Worker processes for page featurisation.

    ``forkserver`` rather than ``fork``: a forked worker would inherit the server's threads and its
    signal handlers (uvicorn's SIGTERM handler only sets a flag), and outlive a stopped server.
    """
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_worker_init,
        initargs=(lang,),
    )
    for _ in range(workers):  # start every worker now, in the background
        executor.submit(_ready)
    return executor
