"""The store: received documents, normalised reports, assessments and the delivery outbox.

Ingest is one transaction per document: the document, its normalised reports and a row in the
assessment queue for each patient it changes. It holds a per-patient lock (PostgreSQL advisory
transaction locks; on SQLite the database-wide write lock). Assessing is separate (queue.py): every
assessment is recomputed from all the patient's current reports and stored under the same lock only if
those reports are still current, so several processes ingesting and assessing one patient at once end
with the assessment that sequential ingestion gives. Sending the same report again changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..assess import DEFAULT_PRESET, PatientAssessment, assess_timelines, preset_names
from ..errors import InputError
from ..logsafe import describe_failure
from ..model import Report
from ..sources.limits import DEFAULT_LIMITS, NO_LIMITS, ReadLimits
from ..timeline import build_timeline_result
from . import queue
from .bundle import bundle_of
from .database import SQLITE_SYNCHRONOUS, create_store_engine, describe_url, migrate
from .documents import parse_document, patient_key
from .ingest import store_document
from .queue import Assessed, AssessmentFailed, Claim
from .schema import Delivery, Document, QueuedPatient, StoredAssessment, StoredReport

log = logging.getLogger("oligo.store")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def lock_key(text: str) -> int:
    """A signed 64-bit advisory-lock key for a patient or a report identity."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def patient_lock(patient: tuple[str, str]) -> str:
    return f"patient:{patient[0]}|{patient[1]}"


@dataclass(frozen=True)
class IngestResult:
    label: str
    status: str  # stored | unchanged
    document_id: int | None
    reports: tuple[dict, ...]
    assessments: tuple[int, ...] = ()  # made before ingest returned (assess_inline); else none yet
    deliveries: tuple[int, ...] = ()
    queued: tuple[tuple[str, str], ...] = ()  # (id, issuer) of every patient this document changed
    assessed: bool = False  # the queued patients were assessed before ingest returned

    @property
    def assessment(self) -> str:
        """queued (a worker assesses the patients soon; reading the assessment does it at once), done, or
        unchanged (nothing new to assess)."""
        return "unchanged" if not self.queued else "done" if self.assessed else "queued"

    def to_dict(self) -> dict:
        return {"input": self.label, "status": self.status, "document_id": self.document_id,
                "reports": list(self.reports), "assessments": list(self.assessments),
                "deliveries": list(self.deliveries), "assessment": self.assessment,
                "patients": [{"patient_id": p[0], "issuer": p[1]} for p in self.queued]}


@dataclass
class Store:
    """Open with `Store.open(url)`; the schema is migrated to the newest revision on opening.

    `assess_inline=True` assesses the patients a document changed right after storing it, so
    `ingest()` returns their new assessments (simple scripts); by default they are only queued, and
    `drain()` (or reading a patient's assessment) assesses them, several reports of a patient at once."""

    database: str
    preset: str = DEFAULT_PRESET
    delivery_target: str | None = None  # the EHR's FHIR base URL; None: nothing goes to the outbox
    limits: ReadLimits = DEFAULT_LIMITS  # bounds on each received document (depth, items, JSON arrays)
    assess_inline: bool = False
    lease_seconds: float = 60.0  # a claimed queue row is another process's until then (then: it crashed)
    retry_seconds: float = 30.0  # a failed assessment is tried again after this, doubling each time ...
    retry_max_seconds: float = 3600.0  # ... up to this
    sqlite_synchronous: str = SQLITE_SYNCHRONOUS  # SQLite's PRAGMA synchronous (database.py says why NORMAL)
    _sessions: sessionmaker = field(init=False, repr=False)

    @classmethod
    def open(cls, database: str | os.PathLike, *, preset: str = DEFAULT_PRESET,
             delivery_target: str | None = None, limits: ReadLimits = DEFAULT_LIMITS,
             **options) -> Store:
        """`options`: assess_inline, lease_seconds, retry_seconds, retry_max_seconds, sqlite_synchronous
        (see the fields)."""
        if preset not in preset_names():
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
        store = cls(os.fspath(database), preset, delivery_target, limits, **options)
        engine = create_store_engine(store.database, store.sqlite_synchronous)
        migrate(engine)
        store._sessions = sessionmaker(engine, expire_on_commit=False)
        return store

    @property
    def engine(self):
        return self._sessions.kw["bind"]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def describe(self) -> str:
        return describe_url(str(self.engine.url))

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._sessions()

    # --- ingest ------------------------------------------------------------------------------------

    def ingest(self, data: bytes, *, label: str, media_type: str | None = None,
               parsed_json: object = None) -> IngestResult:
        """Store one document and queue the patients it changes; InputError leaves the store as it was.
        `parsed_json`: `data` already parsed as JSON by the caller (spares the DICOM JSON reader a parse)."""
        parsed = parse_document(data, label=label, media_type=media_type, limits=self.limits, parsed_json=parsed_json)
        with self.engine.begin() as connection:  # Core, not an ORM session: this runs on every request
            self._lock(connection, {patient_lock(patient_key(r)) for r in parsed.reports}
                       | {f"report:{r.source_id}" for r in parsed.reports})
            stored = store_document(connection, parsed, data, label, media_type, self.preset, self.delivery_target,
                                    utcnow())
        result = IngestResult(label, stored.status, stored.document_id, stored.reports, queued=stored.queued)
        if self.assess_inline and result.queued:
            done = [self._assess(claim) for claim in self._claim_patients(result.queued)]
            _raise_failures(result.queued[0][0], done)
            result = dataclasses.replace(
                result, assessed=True, assessments=tuple(a.assessment_id for a in done if a.assessment_id),
                deliveries=tuple(a.delivery_id for a in done if a.delivery_id))
        return result

    def _lock(self, connection: Session | Connection, keys: Iterable[str]) -> None:
        if self.dialect == "postgresql":  # sorted, so two writers never wait on each other in a cycle
            for key in sorted(keys):
                connection.execute(select(func.pg_advisory_xact_lock(lock_key(key))))

    # --- assessing queued patients -----------------------------------------------------------------

    def drain(self, *, settle_seconds: float = 0.0, max_delay_seconds: float | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> list[Assessed]:
        """Assess every queued patient that is due (queue.due_cutoff: no new report of it for
        `settle_seconds`; with `max_delay_seconds`, none of anyone either, or it waited that long) and
        that no other process is assessing; one entry per patient (failures included: they stay queued)."""
        done = []
        while not should_stop():
            with self.session() as session, session.begin():
                claim = queue.claim_due(session, utcnow(), settle_seconds, self.lease_seconds, max_delay_seconds)
            if claim is None:
                break
            done.append(self._assess(claim))
        return done

    def assess_now(self, patient_id: str, issuer: str | None = None) -> list[Assessed]:
        """Read your writes: assess this patient now if it is queued (whoever holds its claim), so its
        assessment reflects every report stored before the call. Failures are in the list."""
        with self.session() as session, session.begin():
            claims = queue.claim_patient(session, patient_id.strip(), issuer.strip() if issuer is not None else None,
                                         utcnow(), self.lease_seconds)
        return [self._assess(claim) for claim in claims]

    def _claim_patients(self, patients: Iterable[tuple[str, str]]) -> list[Claim]:
        with self.session() as session, session.begin():
            return [claim for patient in patients
                    for claim in queue.claim_patient(session, patient[0], patient[1], utcnow(), self.lease_seconds)]

    def _assess(self, claim: Claim) -> Assessed:
        """Read the current reports, assess them without a lock, store the result if they are still current."""
        made = Assessed(claim.patient, entry_id=claim.entry_id)
        for _ in range(queue.MAX_ROUNDS):
            with self.session() as session, session.begin():
                generation = queue.generation_of(session, claim)  # before the reports: a later change shows
                if generation is None:
                    return made  # another process assessed the patient
                rows = self._current_rows(session, claim.patient)
                digest = queue.inputs_digest(claim.preset, (r.content_sha256 for r in rows))
                latest = self._latest(session, claim.patient)
                bodies = None if latest is not None and latest.inputs_sha256 == digest else _bodies(session, rows)
            try:
                result = None if bodies is None else self._assess_documents(bodies, rows, claim.preset)
                bundle = None if result is None else _bundle_or_none(result)
            except Exception as exc:  # a bug or an unforeseen input: this patient waits, the others go on
                with self.session() as session, session.begin():
                    return queue.record_failure(session, claim, exc, utcnow(), self.retry_seconds,
                                                self.retry_max_seconds)
            with self.session() as session, session.begin():
                self._lock(session, {patient_lock(claim.patient)})
                now_rows = self._current_rows(session, claim.patient)
                if queue.inputs_digest(claim.preset, (r.content_sha256 for r in now_rows)) != digest:
                    continue  # a report came or went meanwhile: read again
                stored = self._store_assessment(session, claim, digest, result, bundle)
                made = stored if stored.assessment_id else made
                row = session.get(QueuedPatient, claim.entry_id)
                if row is None or row.generation == generation:
                    if row is not None:
                        session.delete(row)
                    return made
                # queued again meanwhile (with the same reports as now): the next round finds nothing new
        with self.session() as session, session.begin():
            queue.release(session, claim)  # it keeps changing: left for the next claim
        return made

    def _store_assessment(self, session: Session, claim: Claim, digest: str, result: PatientAssessment | None,
                          bundle: dict | None) -> Assessed:
        latest = self._latest(session, claim.patient)
        if result is None or (latest is not None and latest.inputs_sha256 == digest):
            return Assessed(claim.patient, entry_id=claim.entry_id)
        now = utcnow()
        stored = StoredAssessment(patient_id=claim.patient[0], patient_issuer=claim.patient[1], preset=claim.preset,
                                  inputs_sha256=digest, result=result.to_dict(), bundle=bundle, created_at=now)
        session.add(stored)
        session.flush()
        delivery = None
        if claim.delivery_target:
            delivery = Delivery(assessment_id=stored.id, target=claim.delivery_target, status="pending",
                                attempts=0, next_attempt_at=now, created_at=now)
            session.add(delivery)
            session.flush()
        return Assessed(claim.patient, stored.id, delivery.id if delivery else None, entry_id=claim.entry_id)

    def _assess_documents(self, bodies: list[Document], rows: list[StoredReport],
                          preset: str) -> PatientAssessment | None:
        placed = build_timeline_result(_reports_of(bodies, rows))
        results = assess_timelines(placed.timelines, preset)
        return results[0] if results else None

    # --- reading -----------------------------------------------------------------------------------

    def _current_rows(self, session: Session, patient: tuple[str, str]) -> list[StoredReport]:
        return list(session.scalars(select(StoredReport).where(
            StoredReport.patient_id == patient[0], StoredReport.patient_issuer == patient[1],
            StoredReport.current.is_(True)).order_by(StoredReport.source_id)))

    def _latest(self, session: Session, patient: tuple[str, str]) -> StoredAssessment | None:
        return session.scalar(select(StoredAssessment).where(
            StoredAssessment.patient_id == patient[0], StoredAssessment.patient_issuer == patient[1])
            .order_by(StoredAssessment.id.desc()).limit(1))

    def patients(self, patient_id: str) -> list[tuple[str, str]]:
        """(id, issuer) pairs stored under this patient id (one per issuer)."""
        with self.session() as session:
            return sorted(set(session.execute(select(StoredReport.patient_id, StoredReport.patient_issuer)
                                              .where(StoredReport.patient_id == patient_id.strip())).tuples()))

    def reports_of(self, patient_id: str) -> list[Report]:
        """The current reports of every patient with this id, read again from the stored documents."""
        with self.session() as session:
            rows = [row for patient in self.patients(patient_id) for row in self._current_rows(session, patient)]
            return _reports_of(_bodies(session, rows), rows)

    def latest_assessment(self, patient_id: str, issuer: str | None = None, *,
                          assess_queued: bool = True) -> StoredAssessment | None:
        """The newest assessment of this patient id (of the given issuer, when one is given). With
        `assess_queued`, a queued patient is assessed first (AssessmentFailed when that fails), so the
        answer reflects every report stored before the call."""
        if assess_queued:
            _raise_failures(patient_id, self.assess_now(patient_id, issuer))
        with self.session() as session:
            query = select(StoredAssessment).where(StoredAssessment.patient_id == patient_id.strip())
            if issuer is not None:
                query = query.where(StoredAssessment.patient_issuer == issuer.strip())
            return session.scalar(query.order_by(StoredAssessment.id.desc()).limit(1))

    def counts(self) -> dict[str, int]:
        with self.session() as session:
            return {table.__tablename__: session.scalar(select(func.count()).select_from(table))
                    for table in (Document, StoredReport, StoredAssessment, Delivery, QueuedPatient)}

    def queue_state(self) -> dict[str, int]:
        """Patients waiting for an assessment, and how many of them failed at least once (the log says why)."""
        with self.session() as session:
            waiting = session.scalar(select(func.count()).select_from(QueuedPatient))
            failing = session.scalar(select(func.count()).select_from(QueuedPatient).where(QueuedPatient.attempts > 0))
        return {"waiting": waiting, "failing": failing}

    def retry_delivery(self, delivery_id: int) -> dict | None:
        """A failed delivery back in the outbox with a fresh count of attempts (after the EHR was fixed);
        None when there is no such delivery. Pending or delivered ones are left as they are."""
        with self.session() as session, session.begin():
            delivery = session.get(Delivery, delivery_id)
            if delivery is None:
                return None
            if delivery.status == "failed":
                delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, utcnow()
            return delivery.to_dict()

    def deliveries(self, status: str | None = None) -> list[dict]:
        with self.session() as session:
            query = select(Delivery).order_by(Delivery.id)
            if status:
                query = query.where(Delivery.status == status)
            return [d.to_dict() for d in session.scalars(query)]


def _bodies(session: Session, rows: list[StoredReport]) -> list[Document]:
    """The documents holding these reports (read inside the transaction, parsed outside it)."""
    ids = {row.document_id for row in rows}
    return list(session.scalars(select(Document).where(Document.id.in_(ids)).order_by(Document.id))) if ids else []


def _reports_of(documents: list[Document], rows: list[StoredReport]) -> list[Report]:
    """The stored documents read again (the readers are the single source of truth for a Report)."""
    wanted: dict[int, set[str]] = {}
    for row in rows:
        wanted.setdefault(row.document_id, set()).add(row.source_id)
    reports = []
    for document in documents:
        parsed = parse_document(document.body, label=document.label, media_type=document.media_type,
                                limits=NO_LIMITS)
        reports += [r for r in parsed.reports if r.source_id in wanted[document.id]]
    return sorted(reports, key=lambda r: r.source_id)


def _raise_failures(patient_id: str, done: list[Assessed]) -> None:
    failures = [a for a in done if a.error]
    if failures:
        raise AssessmentFailed(patient_id, failures)


def _bundle_or_none(result: PatientAssessment) -> dict | None:
    """The Bundle; a failure to make it must not lose the received document, so it is logged and the
    assessment kept without one (served as an error, delivered as a failed delivery)."""
    try:
        return bundle_of(result)
    except Exception as exc:
        log.error("the FHIR Bundle of an assessment could not be made: %s", describe_failure(exc))
        return None


__all__ = ["AssessmentFailed", "Assessed", "InputError", "IngestResult", "Store"]
