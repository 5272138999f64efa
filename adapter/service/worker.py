"""A background thread that does its work when woken and at least every poll interval; the outbox
worker and the assessment worker are two of them."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from ..logsafe import describe_failure

log = logging.getLogger("oligo.worker")


class Worker(ABC):
    """Subclasses give `run_once` (do what is due now), `next_wait` (seconds until something is due) and
    `poll_seconds` (the longest sleep: other processes sharing the store add work without waking us)."""

    name = "oligo-worker"

    def __init__(self):
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def run_once(self) -> int: ...

    @abstractmethod
    def next_wait(self) -> float: ...

    @property
    @abstractmethod
    def poll_seconds(self) -> float: ...

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = None
            try:
                self.run_once()
                wait = self.next_wait()
            except Exception as exc:  # a database hiccup must not end the work for good
                log.error("%s: unexpected error, retrying after the poll interval: %s", self.name,
                          describe_failure(exc))
            self._wake.wait(self.poll_seconds if wait is None else wait)
            self._wake.clear()
