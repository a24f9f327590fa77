"""Back-pressure: a bounded number of pages in flight across all /classify requests.

A request asks for as many page slots as it will keep in flight (its window: at most twice the
workers, at most its page count). When they are not free it is refused at once with 503 ``busy``
and a ``Retry-After`` estimated from the work ahead, instead of waiting in an unbounded queue where
a client cannot tell "busy" from "slow".
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from app.errors import ServiceBusyError

_EWMA = 0.2


class Admission:
    """Page slots shared by every request of one service."""

    def __init__(self, capacity: int, workers: int, page_seconds: float = 1.0) -> None:
        """``capacity`` pages may be in flight; ``workers`` process them in parallel."""
        self.capacity = max(1, capacity)
        self.workers = max(1, workers)
        self.page_seconds = page_seconds
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Page slots taken now."""
        return self._in_flight

    def retry_after(self) -> int:
        """Seconds after which a slot is likely free (1 to 60)."""
        ahead = self._in_flight * self.page_seconds / self.workers
        return int(min(60, max(1, math.ceil(ahead))))

    def check(self) -> None:
        """Refuse at once when every slot is taken (before the upload is even read)."""
        if self._in_flight >= self.capacity:
            raise self._busy()

    def acquire(self, pages: int) -> int:
        """Take ``pages`` slots (clamped to the capacity) or raise :class:`ServiceBusyError`."""
        want = min(max(1, pages), self.capacity)
        with self._lock:
            if self._in_flight + want > self.capacity:
                raise self._busy()
            self._in_flight += want
        return want

    def acquire_waiting(self, pages: int, *, stop: Callable[[], bool], poll: float = 0.5) -> int:
        """Take ``pages`` slots (clamped to the capacity), waiting for them; 0 when ``stop()``.

        Background jobs wait for room instead of being refused: interactive requests keep the
        slots they can get, jobs take what is left.
        """
        want = min(max(1, pages), self.capacity)
        while not stop():
            with self._lock:
                if self._in_flight + want <= self.capacity:
                    self._in_flight += want
                    return want
            time.sleep(poll)
        return 0

    def release(self, slots: int, *, pages_done: int = 0, work_seconds: float = 0.0) -> None:
        """Give slots back.

        ``work_seconds`` (worker time of ``pages_done`` pages) updates the average time a page
        takes, which the ``Retry-After`` estimate uses.
        """
        with self._lock:
            self._in_flight = max(0, self._in_flight - slots)
            if pages_done > 0 and work_seconds > 0:
                per_page = work_seconds / pages_done
                self.page_seconds += _EWMA * (per_page - self.page_seconds)

    def _busy(self) -> ServiceBusyError:
        return ServiceBusyError(
            f"the service is busy ({self._in_flight} of {self.capacity} pages in flight); "
            "retry later",
            retry_after=self.retry_after(),
        )
