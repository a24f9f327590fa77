"""Worker processes that never outlive the process that started them.

Every pool in inkwell (the service's page workers, training featurisation, LOSO folds, the CLI)
comes from :func:`worker_pool`. Its workers

- are started by a ``forkserver``, not forked from a process with threads and signal handlers
  (uvicorn's SIGTERM handler only sets a flag: a forked worker would ignore SIGTERM);
- die on SIGTERM and leave Ctrl-C to their owner;
- watch their owner: a thread blocks on a pidfd of the owner's pid and ends the worker the moment
  the owner exits, however it exits (SIGKILL, the OOM killer). ``PR_SET_PDEATHSIG`` cannot do this
  here: a forkserver worker's parent is the fork server, which outlives the owner as long as
  workers hold its pipe.

Each worker, and any process that extracts features, runs its BLAS with one thread
(:func:`one_blas_thread`): the work is one page per process, and OpenBLAS's own threads only
fight the other workers for the cores.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from typing import Any, Literal

log = logging.getLogger(__name__)

ORPHAN_EXIT_CODE = 70
_POLL_SECONDS = 0.5


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (someone else's process counts: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_owner(pid: int) -> None:
    """Block until ``pid`` exits, then end this process at once."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # pragma: no cover - kernels before 5.3: poll instead
        while pid_alive(pid):
            time.sleep(_POLL_SECONDS)
    else:
        select.select([fd], [], [])
    os._exit(ORPHAN_EXIT_CODE)


@cache
def one_blas_thread() -> None:
    """Limit this process's BLAS (numpy's, scipy's OpenBLAS) to one thread; once per process.

    inkwell's parallelism is one page (or one fold) per process. OpenBLAS would also start a
    thread per core for every matrix product above a small size (the glyph descriptors' products,
    the line fits' least squares); on a machine whose cores are all busy with workers those
    threads wait on each other (``bench/features.py --busy 1``: the median page 0.250 s with the
    default threads, 0.215 s with one; the p90 of the regularity stage, where the glyph
    comparison is, 67 ms and 25 ms). The features are bit-identical (a test checks it).
    Libraries loaded later than the first call are not limited; numpy's is loaded by then.
    """
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - scans the loaded libraries

    threadpool_limits(limits=1, user_api="blas")


def _init_worker(
    owner: int, initializer: Callable[..., object] | None, initargs: Sequence[Any]
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_blas_thread()
    threading.Thread(target=_watch_owner, args=(owner,), name="owner-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


class WorkerPool(ProcessPoolExecutor):
    """A pool that, left by an exception, cancels its queued work instead of finishing it.

    ``ProcessPoolExecutor.__exit__`` waits for every submitted item, so an error (or a cancelled
    training) in the middle of a 500-page featurisation would still read the 499 other pages.
    """

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> Literal[False]:
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return False


def worker_pool(
    max_workers: int,
    initializer: Callable[..., object] | None = None,
    initargs: Sequence[Any] = (),
) -> WorkerPool:
    """A process pool whose workers end with this process (see the module doc).

    ``initializer`` and ``initargs`` are pickled to each worker (module-level functions only).
    """
    return WorkerPool(
        max_workers=max(1, max_workers),
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, tuple(initargs)),
    )
