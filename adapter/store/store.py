"""The store: received documents, normalised reports, assessments and the delivery outbox.

Ingest is one transaction per document. It holds a per-patient lock (PostgreSQL advisory transaction
locks; on SQLite the database-wide write lock), so several processes ingesting one patient's reports at
once end with the assessment that sequential ingestion gives: every assessment is recomputed from all
the patient's current reports inside the lock. Sending the same report again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..assess import DEFAULT_PRESET, PatientAssessment, assess_timelines, preset_names
from ..errors import InputError
from ..logsafe import describe_failure
from ..model import Report
from ..sources.limits import DEFAULT_LIMITS, NO_LIMITS, ReadLimits
from ..timeline import build_timeline_result
from .bundle import bundle_of
from .database import create_store_engine, describe_url, migrate
from .documents import ParsedDocument, parse_document, patient_key, report_digest
from .schema import Delivery, Document, StoredAssessment, StoredReport

log = logging.getLogger("oligo.store")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def lock_key(text: str) -> int:
    """A signed 64-bit advisory-lock key for a patient or a report identity."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class IngestResult:
    label: str
    status: str  # stored | unchanged
    document_id: int | None
    reports: tuple[dict, ...]
    assessments: tuple[int, ...] = ()
    deliveries: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"input": self.label, "status": self.status, "document_id": self.document_id,
                "reports": list(self.reports), "assessments": list(self.assessments),
                "deliveries": list(self.deliveries)}


@dataclass
class Store:
    """Open with `Store.open(url)`; the schema is migrated to the newest revision on opening."""

    database: str
    preset: str = DEFAULT_PRESET
    delivery_target: str | None = None  # the EHR's FHIR base URL; None: nothing goes to the outbox
    limits: ReadLimits = DEFAULT_LIMITS  # bounds on each received document (depth, items, JSON arrays)
    _sessions: sessionmaker = field(init=False, repr=False)

    @classmethod
    def open(cls, database: str | os.PathLike, *, preset: str = DEFAULT_PRESET,
             delivery_target: str | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> Store:
        if preset not in preset_names():
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
        store = cls(os.fspath(database), preset, delivery_target, limits)
        engine = create_store_engine(store.database)
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

    def ingest(self, data: bytes, *, label: str, media_type: str | None = None) -> IngestResult:
        """Store one document and reassess the patients it changes; InputError leaves the store as it was."""
        parsed = parse_document(data, label=label, media_type=media_type, limits=self.limits)
        with self.session() as session, session.begin():
            self._lock(session, {f"patient:{k[0]}|{k[1]}" for k in map(patient_key, parsed.reports)}
                       | {f"report:{r.source_id}" for r in parsed.reports})
            return self._ingest_locked(session, parsed, data, label, media_type)

    def _lock(self, session: Session, keys: Iterable[str]) -> None:
        if self.dialect == "postgresql":  # sorted, so two writers never wait on each other in a cycle
            for key in sorted(keys):
                session.execute(select(_advisory_xact_lock(lock_key(key))))

    def _ingest_locked(self, session: Session, parsed: ParsedDocument, data: bytes, label: str,
                       media_type: str | None) -> IngestResult:
        now = utcnow()
        incoming = [(report, report_digest(report)) for report in parsed.reports]
        current = {row.source_id: row for row in session.scalars(
            select(StoredReport).where(StoredReport.source_id.in_([r.source_id for r, _ in incoming]),
                                       StoredReport.current.is_(True)))}
        outcomes, changed = [], []
        for report, digest in incoming:
            old = current.get(report.source_id)
            state = "unchanged" if old and old.content_sha256 == digest else "updated" if old else "new"
            outcomes.append({"source_id": report.source_id, "sop_class_uid": report.sop_class_uid,
                             "patient_id": report.patient_id, "status": state})
            if state != "unchanged":
                changed.append((report, digest, old))
        if not changed:
            return IngestResult(label, "unchanged", None, tuple(outcomes))
        document = session.scalar(select(Document).where(Document.sha256 == parsed.sha256))
        if document is None:
            document = Document(sha256=parsed.sha256, kind=parsed.kind, media_type=media_type, label=label,
                                size=len(data), body=data, received_at=now)
            session.add(document)
            session.flush()
        patients = set()
        for report, digest, old in changed:
            if old is not None:
                old.current = False
                patients.add((old.patient_id, old.patient_issuer))
            earlier = session.scalar(select(StoredReport).where(StoredReport.source_id == report.source_id,
                                                                StoredReport.content_sha256 == digest))
            if earlier is not None:  # an older version sent again: it becomes current again
                earlier.current = True
            else:
                session.add(StoredReport(source_id=report.source_id, content_sha256=digest,
                                         patient_id=patient_key(report)[0], patient_issuer=patient_key(report)[1],
                                         document_id=document.id, current=True, normalised=report.to_dict(),
                                         received_at=now))
            patients.add(patient_key(report))
        session.flush()
        assessments, deliveries = [], []
        for patient in sorted(patients):
            made = self._reassess(session, patient, now)
            if made is not None:
                assessments.append(made.id)
                if self.delivery_target:
                    delivery = Delivery(assessment_id=made.id, target=self.delivery_target, status="pending",
                                        attempts=0, next_attempt_at=now, created_at=now)
                    session.add(delivery)
                    session.flush()
                    deliveries.append(delivery.id)
        return IngestResult(label, "stored", document.id, tuple(outcomes), tuple(assessments), tuple(deliveries))

    def _reassess(self, session: Session, patient: tuple[str, str], now: dt.datetime) -> StoredAssessment | None:
        rows = self._current_rows(session, patient)
        digest = hashlib.sha256("\n".join([self.preset] + sorted(r.content_sha256 for r in rows)).encode()).hexdigest()
        latest = self._latest(session, patient)
        if latest is not None and latest.inputs_sha256 == digest:
            return None
        result = self._assess_rows(session, rows)
        if result is None:
            return None
        stored = StoredAssessment(patient_id=patient[0], patient_issuer=patient[1], preset=self.preset,
                                  inputs_sha256=digest, result=result.to_dict(), bundle=_bundle_or_none(result),
                                  created_at=now)
        session.add(stored)
        session.flush()
        return stored

    # --- reading -----------------------------------------------------------------------------------

    def _current_rows(self, session: Session, patient: tuple[str, str]) -> list[StoredReport]:
        return list(session.scalars(select(StoredReport).where(
            StoredReport.patient_id == patient[0], StoredReport.patient_issuer == patient[1],
            StoredReport.current.is_(True)).order_by(StoredReport.source_id)))

    def _reports_of_rows(self, session: Session, rows: list[StoredReport]) -> list[Report]:
        """The stored documents read again (the readers are the single source of truth for a Report)."""
        wanted: dict[int, set[str]] = {}
        for row in rows:
            wanted.setdefault(row.document_id, set()).add(row.source_id)
        reports = []
        for document in session.scalars(select(Document).where(Document.id.in_(wanted)).order_by(Document.id)):
            parsed = parse_document(document.body, label=document.label, media_type=document.media_type,
                                    limits=NO_LIMITS)
            reports += [r for r in parsed.reports if r.source_id in wanted[document.id]]
        return sorted(reports, key=lambda r: r.source_id)

    def _assess_rows(self, session: Session, rows: list[StoredReport]) -> PatientAssessment | None:
        placed = build_timeline_result(self._reports_of_rows(session, rows))
        results = assess_timelines(placed.timelines, self.preset)
        return results[0] if results else None

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
            return self._reports_of_rows(session, rows)

    def latest_assessment(self, patient_id: str, issuer: str | None = None) -> StoredAssessment | None:
        """The newest assessment of this patient id (of the given issuer, when one is given)."""
        with self.session() as session:
            query = select(StoredAssessment).where(StoredAssessment.patient_id == patient_id.strip())
            if issuer is not None:
                query = query.where(StoredAssessment.patient_issuer == issuer.strip())
            return session.scalar(query.order_by(StoredAssessment.id.desc()).limit(1))

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.session() as session:
            return {table.__tablename__: session.scalar(select(func.count()).select_from(table))
                    for table in (Document, StoredReport, StoredAssessment, Delivery)}

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


def _bundle_or_none(result: PatientAssessment) -> dict | None:
    """The Bundle; a failure to make it must not lose the received document, so it is logged and the
    assessment kept without one (served as an error, delivered as a failed delivery)."""
    try:
        return bundle_of(result)
    except Exception as exc:
        log.error("the FHIR Bundle of an assessment could not be made: %s", describe_failure(exc))
        return None


def _advisory_xact_lock(key: int):
    from sqlalchemy import func

    return func.pg_advisory_xact_lock(key)


__all__ = ["InputError", "IngestResult", "Store"]
