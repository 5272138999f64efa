"""The outbox worker: POSTs each new assessment's transaction Bundle to the EHR's FHIR base URL.

At least once, in order per patient, surviving restarts: a delivery is claimed with a lease (row locks
with SKIP LOCKED on PostgreSQL, so several service processes share the work), sent, and only then
marked delivered. A crash leaves the lease to run out and the delivery is sent again; the Bundle's
conditional creates make that harmless. Failures are retried with exponential backoff; 4xx answers
other than 401/408/425/429 and running out of attempts mark the delivery failed (visible in
`GET /deliveries?status=failed` and `oligo deliveries`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import httpx
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased

from ..store import Store
from ..store.schema import Delivery, StoredAssessment
from ..store.store import utcnow
from .config import Settings
from .ehr_auth import AuthFailure, NoAuth, ehr_auth
from .worker import Worker

log = logging.getLogger("oligo.delivery")
RETRYABLE_CLIENT_ERRORS = frozenset({401, 408, 425, 429})
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    target: str
    attempts: int
    bundle: dict | None


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status: int | None
    error: str | None
    permanent: bool = False


def backoff_seconds(attempts: int, base: float, ceiling: float) -> float:
    """Wait before the next try after `attempts` failed ones: base, 2 base, 4 base, ... up to ceiling."""
    return min(ceiling, base * (2 ** max(0, attempts - 1)))


class Deliverer(Worker):
    name = "oligo-delivery"

    def __init__(self, store: Store, settings: Settings, auth: NoAuth | None = None,
                 transport: httpx.BaseTransport | None = None):
        super().__init__()
        self.store, self.settings = store, settings
        self.auth = auth if auth is not None else ehr_auth(settings)
        self.client = httpx.Client(timeout=settings.delivery_timeout_seconds, transport=transport)

    @property
    def poll_seconds(self) -> float:
        return self.settings.delivery_poll_seconds

    # --- one delivery at a time ---------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """The oldest due delivery whose patient has no older one still pending, leased to us."""
        now = utcnow()
        older = aliased(Delivery)
        older_assessment = aliased(StoredAssessment)
        with self.store.session() as session, session.begin():
            query = (select(Delivery).join(StoredAssessment, StoredAssessment.id == Delivery.assessment_id)
                     .where(Delivery.status == "pending", Delivery.next_attempt_at <= now,
                            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                            ~exists().where(and_(
                                older.status == "pending", older.id < Delivery.id,
                                older_assessment.id == older.assessment_id,
                                older_assessment.patient_id == StoredAssessment.patient_id,
                                older_assessment.patient_issuer == StoredAssessment.patient_issuer)))
                     .order_by(Delivery.id).limit(1).with_for_update(skip_locked=True, of=Delivery))
            delivery = session.scalar(query)
            if delivery is None:
                return None
            delivery.lease_until = now + dt.timedelta(seconds=self.settings.delivery_lease_seconds)
            bundle = session.get(StoredAssessment, delivery.assessment_id).bundle
            return Claim(delivery.id, delivery.target, delivery.attempts, bundle)

    def send(self, claim: Claim) -> Attempt:
        if claim.bundle is None:
            return Attempt(False, None, "the assessment has no FHIR Bundle", permanent=True)
        body = json.dumps(claim.bundle, ensure_ascii=False).encode()
        try:
            headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON} | self.auth.headers(self.client)
            response = self.client.post(claim.target, content=body, headers=headers)
        except AuthFailure as exc:
            return Attempt(False, None, str(exc))
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{exc.__class__.__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return Attempt(True, response.status_code, None)
        if response.status_code == 401:
            self.auth.invalidate()  # perhaps revoked or expired early: fetch a new token next time
        permanent = 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_CLIENT_ERRORS
        return Attempt(False, response.status_code, f"{response.status_code}: {response.text[:500]}", permanent)

    def record(self, claim: Claim, attempt: Attempt) -> None:
        now = utcnow()
        with self.store.session() as session, session.begin():
            delivery = session.get(Delivery, claim.delivery_id)
            delivery.attempts += 1
            delivery.lease_until = None
            delivery.last_status = attempt.status
            delivery.last_error = attempt.error
            if attempt.delivered:
                delivery.status, delivery.delivered_at = "delivered", now
            elif attempt.permanent or delivery.attempts >= self.settings.delivery_max_attempts:
                delivery.status = "failed"
            else:
                wait = backoff_seconds(delivery.attempts, self.settings.delivery_backoff_seconds,
                                       self.settings.delivery_backoff_max_seconds)
                delivery.next_attempt_at = now + dt.timedelta(seconds=wait)
        if attempt.delivered:
            log.info("delivery %s delivered to %s", claim.delivery_id, claim.target)
        elif attempt.status is not None:
            # The EHR's answer may echo the patient: it is kept in the outbox row (behind a token), not logged.
            log.warning("delivery %s to %s failed: HTTP %s (the answer is in the outbox's last_error)",
                        claim.delivery_id, claim.target, attempt.status)
        else:
            log.warning("delivery %s to %s failed: %s", claim.delivery_id, claim.target, attempt.error)

    def run_once(self) -> int:
        """Send every delivery that is due now; how many were tried."""
        tried = 0
        while not self._stop.is_set():
            claim = self.claim()
            if claim is None:
                break
            self.record(claim, self.send(claim))
            tried += 1
        return tried

    # --- the background worker ----------------------------------------------------------------------

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def next_wait(self) -> float:
        """Until the next due delivery, at most the poll interval."""
        with self.store.session() as session:
            rows = session.execute(select(Delivery.next_attempt_at, Delivery.lease_until)
                                   .where(Delivery.status == "pending").order_by(Delivery.next_attempt_at)
                                   .limit(100)).all()
        poll = self.settings.delivery_poll_seconds
        if not rows:
            return poll
        due = min(max(at, lease or at) for at, lease in rows)  # a leased delivery is another process's
        return min(poll, max(0.05, (due - utcnow()).total_seconds()))
