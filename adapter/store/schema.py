"""The store's tables (SQLAlchemy 2). Alembic migrations in `migrations/` create them; this module is
the application's view of them and the migrations' `target_metadata`.

Times are naive UTC. Received documents are kept byte for byte; rows are only ever added, except the
`current` flag of a report replaced by a newer version, the bookkeeping columns of the outbox, and the
assessment queue, whose rows come and go.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Document(Base):
    """A received document exactly as received (DICOM Part 10 bytes, DICOM JSON or FHIR JSON)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # dicom | dicom-json | fhir
    media_type: Mapped[str | None] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)


class StoredReport(Base):
    """One normalised report (Report.to_dict()) read from a document; a newer version of the same
    source (same SOP Instance UID or FHIR identity, other content) clears `current` on the older."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("source_id", "content_sha256", name="uq_reports_source_content"),
        Index("ix_reports_patient", "patient_id", "patient_issuer", "current"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(Text, index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(Text)
    patient_issuer: Mapped[str] = mapped_column(Text)  # "" when none was given
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    normalised: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)


class StoredAssessment(Base):
    """A patient's assessment over the reports current at the time, with the FHIR Bundle made from it.
    A new row only when the set of reports (or the preset) changed: `inputs_sha256` says which."""

    __tablename__ = "assessments"
    __table_args__ = (Index("ix_assessments_patient", "patient_id", "patient_issuer", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(Text)
    patient_issuer: Mapped[str] = mapped_column(Text)
    preset: Mapped[str] = mapped_column(String(100))
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(JSON)
    bundle: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Delivery(Base):
    """The outbox: one row per assessment to POST to the EHR, kept until delivered or given up."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    target: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    def to_dict(self) -> dict:
        def iso(value):
            return value.isoformat() + "Z" if value else None

        return {"id": self.id, "assessment_id": self.assessment_id, "target": self.target, "status": self.status,
                "attempts": self.attempts, "next_attempt_at": iso(self.next_attempt_at),
                "last_status": self.last_status, "last_error": self.last_error,
                "created_at": iso(self.created_at), "delivered_at": iso(self.delivered_at)}


class QueuedPatient(Base):
    """The assessment queue: one row per patient whose reports changed since the patient was last
    assessed. Ingest upserts it (`generation` + 1) in the transaction that stores the reports; the
    assessor deletes it in the transaction that stores the assessment, only if `generation` is still the
    one it read (else the patient changed meanwhile and is assessed again). `preset` and
    `delivery_target` are the ingesting process's, so whichever process assesses does what it asked."""

    __tablename__ = "assessment_queue"
    __table_args__ = (
        UniqueConstraint("patient_id", "patient_issuer", name="uq_assessment_queue_patient"),
        Index("ix_assessment_queue_due", "lease_until", "queued_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(Text)
    patient_issuer: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    preset: Mapped[str] = mapped_column(String(100))
    delivery_target: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[dt.datetime] = mapped_column(DateTime)  # the latest change
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # claimed, or waiting to retry
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed assessments since the last success
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the exception class; no message
