"""The service's worker processes: page featurisation runs there, the OCR engine loaded once."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor

from app.errors import AppError
from app.processes import worker_pool

log = logging.getLogger(__name__)


def _worker_init(lang: str) -> None:
    """Load the feature stage and tesseract's language model now, not on the first request.

    Only the feature stage: the models stay in the server process (smaller workers).
    """
    from app.ocr import warm_up  # noqa: PLC0415 - imported in the worker, on purpose

    try:
        warm_up(lang)
    except AppError as e:  # reported by /health; the request will get the same error
        log.warning("OCR warm-up failed: %s", e.message)


def _ready() -> bool:
    import app.features  # noqa: F401, PLC0415 - the worker's real cost, paid at start-up

    return True


def make_executor(workers: int, lang: str = "eng") -> ProcessPoolExecutor:
    """Worker processes for page featurisation (they die with the server: app.processes)."""
    executor = worker_pool(workers, initializer=_worker_init, initargs=(lang,))
    for _ in range(workers):  # start every worker now, in the background
        executor.submit(_ready)
    return executor
