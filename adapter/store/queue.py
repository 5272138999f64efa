"""The assessment queue: ingest only records which patients changed; assessing them happens later, off
the request path, in a worker (`oligo serve`, `oligo listen`), at the end of `oligo ingest`, or when
someone asks for the patient's assessment (read your writes).

A claim leases a queue row (SKIP LOCKED on PostgreSQL, so several processes share the work; SQLite's
write lock serialises claims). Assessing reads the patient's current reports, computes without holding
any lock, then in one transaction under the patient's lock checks that the reports are still the ones it
read, stores the assessment (unless the newest one has the same inputs) and the outbox row, and deletes
the queue row if no ingest queued the patient again meanwhile. A crash anywhere leaves the row to be
claimed again once its lease runs out; nothing is half-written. Coalescing comes for free: six reports of
one patient queued before the worker gets to it give one assessment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, DateTime, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session

from ..logsafe import describe_failure
from .schema import QueuedPatient

log = logging.getLogger("oligo.store")

MAX_ROUNDS = 3  # a patient changing while assessed is read again this often before it is left queued


@dataclass(frozen=True)
class Claim:
    """A leased queue row: which patient, and what the ingesting process asked for."""

    entry_id: int
    patient: tuple[str, str]
    preset: str
    delivery_target: str | None


@dataclass(frozen=True)
class Assessed:
    """What assessing one queued patient gave: a new assessment (and delivery), nothing new (the same
    inputs as the newest assessment, or no timeline), or an error (the row stays queued for a retry)."""

    patient: tuple[str, str]
    assessment_id: int | None = None
    delivery_id: int | None = None
    error: str | None = None  # the exception's class; its message may quote patient data
    entry_id: int | None = None


class AssessmentFailed(RuntimeError):
    """A queued patient could not be assessed from the stored reports; the queue row says how often."""

    def __init__(self, patient_id: str, failures: list[Assessed]):
        self.patient_id, self.failures = patient_id, failures
        entries = ", ".join(f"queue entry {f.entry_id}: {f.error}" for f in failures)
        super().__init__(f"the assessment of patient {patient_id!r} could not be made from its stored reports "
                         f"({entries}); the service log says why, and it is tried again later")


def inputs_digest(preset: str, content_digests: Iterable[str]) -> str:
    """What an assessment was made from: the preset and the content hashes of the current reports."""
    return hashlib.sha256("\n".join([preset] + sorted(content_digests)).encode()).hexdigest()


# SQLite and PostgreSQL both speak this upsert; as text it is compiled once (SQLAlchemy does not cache its
# dialect-specific ON CONFLICT constructs, and this runs on every ingest).
UPSERT = text("""
    INSERT INTO assessment_queue (patient_id, patient_issuer, generation, preset, delivery_target, queued_at, attempts)
    VALUES (:patient_id, :patient_issuer, 1, :preset, :delivery_target, :queued_at, 0)
    ON CONFLICT (patient_id, patient_issuer) DO UPDATE SET generation = assessment_queue.generation + 1,
        queued_at = excluded.queued_at, preset = excluded.preset, delivery_target = excluded.delivery_target
""").bindparams(bindparam("queued_at", type_=DateTime))


def enqueue(connection: Connection, patients: Iterable[tuple[str, str]], preset: str, delivery_target: str | None,
            now: dt.datetime) -> None:
    """Upsert one row per patient; a row already there gets generation + 1 (assess again)."""
    rows = [{"patient_id": p[0], "patient_issuer": p[1], "preset": preset, "delivery_target": delivery_target,
             "queued_at": now} for p in sorted(patients)]
    if rows:
        connection.execute(UPSERT, rows)


def claim_due(session: Session, now: dt.datetime, settle_seconds: float, lease_seconds: float,
              max_delay_seconds: float | None = None) -> Claim | None:
    """The longest-waiting row that is due (see `due_cutoff`) and not leased, leased to the caller."""
    cutoff = due_cutoff(session, now, settle_seconds, max_delay_seconds)
    row = session.scalar(
        select(QueuedPatient).where(_free(now), QueuedPatient.queued_at <= cutoff)
        .order_by(QueuedPatient.queued_at, QueuedPatient.id).limit(1).with_for_update(skip_locked=True))
    if row is None:
        return None
    row.lease_until = now + dt.timedelta(seconds=lease_seconds)
    return claim_of(row)


def due_cutoff(session: Session, now: dt.datetime, settle_seconds: float,
               max_delay_seconds: float | None) -> dt.datetime:
    """Rows queued up to this time are due. A patient is due once no report of it came for
    `settle_seconds` (its reports arriving together give one assessment); while reports of any patient
    keep coming (one queued within `settle_seconds`), only patients waiting `max_delay_seconds` are: a
    burst of ingests keeps the CPU and is assessed when it ends, or after the maximum delay."""
    settled = now - dt.timedelta(seconds=settle_seconds)
    if max_delay_seconds is None:
        return settled
    newest = session.scalar(select(func.max(QueuedPatient.queued_at)))
    if newest is None or newest <= settled:
        return settled
    return min(settled, now - dt.timedelta(seconds=max_delay_seconds))


def next_due(session: Session, now: dt.datetime, settle_seconds: float,
             max_delay_seconds: float | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(when the first free row becomes due, when the first lease runs out), None for none."""
    oldest = session.scalar(select(func.min(QueuedPatient.queued_at)).where(_free(now)))
    leased = session.scalar(select(func.min(QueuedPatient.lease_until)).where(QueuedPatient.lease_until >= now))
    if oldest is None:
        return None, leased
    settled = oldest + dt.timedelta(seconds=settle_seconds)
    if max_delay_seconds is None:
        return settled, leased
    newest = session.scalar(select(func.max(QueuedPatient.queued_at)))
    quiet = newest + dt.timedelta(seconds=settle_seconds)
    return max(settled, min(quiet, oldest + dt.timedelta(seconds=max_delay_seconds))), leased


def _free(now: dt.datetime):
    return or_(QueuedPatient.lease_until.is_(None), QueuedPatient.lease_until < now)


def claim_patient(session: Session, patient_id: str, issuer: str | None, now: dt.datetime,
                  lease_seconds: float) -> list[Claim]:
    """Every row of this patient id (of this issuer, when given), leased to the caller whoever held it:
    the caller reads the patient's assessment and must see every report stored before it asked."""
    query = select(QueuedPatient).where(QueuedPatient.patient_id == patient_id)
    if issuer is not None:
        query = query.where(QueuedPatient.patient_issuer == issuer)
    # FOR UPDATE (waiting, not skipping): a reader assessing the patient at the same moment goes first
    rows = list(session.scalars(query.order_by(QueuedPatient.id).with_for_update()))
    for row in rows:
        row.lease_until = now + dt.timedelta(seconds=lease_seconds)
    return [claim_of(row) for row in rows]


def claim_of(row: QueuedPatient) -> Claim:
    return Claim(row.id, (row.patient_id, row.patient_issuer), row.preset, row.delivery_target)


def generation_of(session: Session, claim: Claim) -> int | None:
    """The row's generation now; None when the row is gone (another process assessed the patient)."""
    return session.scalar(select(QueuedPatient.generation).where(QueuedPatient.id == claim.entry_id))


def record_failure(session: Session, claim: Claim, exc: Exception, now: dt.datetime, retry_seconds: float,
                   retry_max_seconds: float) -> Assessed:
    """Keep the row, leased until the next try (doubling waits), with the error's class for operators."""
    row = session.scalar(select(QueuedPatient).where(QueuedPatient.id == claim.entry_id).with_for_update())
    error = exc.__class__.__name__
    wait = retry_seconds
    if row is not None:  # None: another process assessed the patient meanwhile
        row.attempts += 1
        row.last_error = error
        wait = min(retry_max_seconds, retry_seconds * 2 ** (row.attempts - 1))
        row.lease_until = now + dt.timedelta(seconds=wait)
    log.error("the assessment of queue entry %s failed; tried again in %g s: %s", claim.entry_id, wait,
              describe_failure(exc))
    return Assessed(claim.patient, error=error, entry_id=claim.entry_id)


def release(session: Session, claim: Claim) -> None:
    """Give the row back (the patient changed while it was assessed): the next claim assesses it again."""
    session.execute(update(QueuedPatient).where(QueuedPatient.id == claim.entry_id).values(lease_until=None))
