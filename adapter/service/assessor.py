"""The assessment worker: assesses the patients ingest queued, off the request path, so a POST or a
C-STORE is answered as soon as the document is stored. Woken by every ingest, and polling as well (other
processes sharing the store queue patients too). A patient is taken once no report of it arrived for
`assessment_delay_seconds`, so a burst of one patient's reports gives one assessment and one delivery."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..store import Store, queue
from ..store.store import utcnow
from .config import Settings
from .worker import Worker

log = logging.getLogger("oligo.assess")


class Assessor(Worker):
    name = "oligo-assess"

    def __init__(self, store: Store, settings: Settings, on_delivery: Callable[[], None] | None = None):
        super().__init__()
        self.store, self.settings = store, settings
        self.on_delivery = on_delivery  # called when new deliveries are in the outbox (wakes the deliverer)
        self._expecting = False  # asleep until a queued patient is due: a new one is due later, no need to wake

    def wake(self) -> None:
        """After an ingest committed. Waking a worker that already sleeps until an earlier due patient would
        only cost two queries per request (each patient newly queued is due after every one before it)."""
        if not self._expecting:
            super().wake()

    @property
    def poll_seconds(self) -> float:
        return self.settings.assessment_poll_seconds

    def run_once(self) -> int:
        """Assess every patient that is due now; how many were assessed (failures included)."""
        done = self.store.drain(settle_seconds=self.settings.assessment_delay_seconds,
                                max_delay_seconds=self.settings.assessment_max_delay_seconds,
                                should_stop=self._stop.is_set)
        made = sum(1 for a in done if a.assessment_id)
        if made:
            log.info("%d patient(s) assessed, %d new assessment(s)", len(done), made)
        if self.on_delivery and any(a.delivery_id for a in done):
            self.on_delivery()
        return len(done)

    def next_wait(self) -> float:
        """Until the next queued patient is due or a lease runs out, at most the poll interval."""
        self._expecting = False  # before reading the queue: an ingest committed after the read wakes us
        now = utcnow()
        with self.store.session() as session:
            due, leased = queue.next_due(session, now, self.settings.assessment_delay_seconds,
                                         self.settings.assessment_max_delay_seconds)
        self._expecting = due is not None
        times = [at for at in (due, leased) if at is not None]
        if not times:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.05, (min(times) - now).total_seconds()))
