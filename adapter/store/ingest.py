"""One document into the store, inside the caller's transaction and locks: the document as received,
a row per new or changed report (its normalised form and content hash), the patients it changes queued
for assessment. SQL statements are built once (Core, not the ORM unit of work): this runs on every POST."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import JSON, Connection, Text, bindparam, cast, insert, select, type_coerce, update

from . import queue
from .documents import ParsedDocument, canonical, patient_key
from .schema import Document, StoredReport

DOCUMENTS, REPORTS = Document.__table__, StoredReport.__table__
VERSIONS = select(REPORTS.c.id, REPORTS.c.source_id, REPORTS.c.content_sha256, REPORTS.c.current,
                  REPORTS.c.patient_id, REPORTS.c.patient_issuer).where(
    REPORTS.c.source_id.in_(bindparam("source_ids", expanding=True)))
DOCUMENT_BY_SHA = select(DOCUMENTS.c.id).where(DOCUMENTS.c.sha256 == bindparam("sha256"))
ADD_DOCUMENT = insert(DOCUMENTS)
# The normalised report goes in as the canonical JSON text its hash was taken from (serialised once):
# PostgreSQL casts the text to its json type, SQLite keeps JSON as text anyway.
ADD_REPORT = {"postgresql": insert(REPORTS).values(normalised=cast(bindparam("normalised_text", type_=Text), JSON)),
              "sqlite": insert(REPORTS).values(normalised=type_coerce(bindparam("normalised_text"), Text))}
SET_CURRENT = update(REPORTS).where(REPORTS.c.id == bindparam("row_id")).values(current=bindparam("is_current"))


@dataclass(frozen=True)
class Stored:
    status: str  # stored | unchanged
    document_id: int | None
    reports: tuple[dict, ...]
    queued: tuple[tuple[str, str], ...]


def store_document(connection: Connection, parsed: ParsedDocument, data: bytes, label: str,
                   media_type: str | None, preset: str, delivery_target: str | None, now: dt.datetime) -> Stored:
    incoming = [(report, *canonical(report)) for report in parsed.reports]
    versions: dict[str, list] = {}
    for row in connection.execute(VERSIONS, {"source_ids": sorted({r.source_id for r, *_ in incoming})}):
        versions.setdefault(row.source_id, []).append(row)
    outcomes, changed = [], []
    for report, text, digest in incoming:
        known = versions.get(report.source_id, [])
        current = next((row for row in known if row.current), None)
        state = "unchanged" if current and current.content_sha256 == digest else "updated" if current else "new"
        outcomes.append({"source_id": report.source_id, "sop_class_uid": report.sop_class_uid,
                         "patient_id": report.patient_id, "status": state})
        if state != "unchanged":
            earlier = next((row for row in known if row.content_sha256 == digest), None)
            changed.append((report, text, digest, current, earlier))
    if not changed:
        return Stored("unchanged", None, tuple(outcomes), ())
    document_id = connection.execute(DOCUMENT_BY_SHA, {"sha256": parsed.sha256}).scalar()
    if document_id is None:
        document_id = connection.execute(ADD_DOCUMENT, {
            "sha256": parsed.sha256, "kind": parsed.kind, "media_type": media_type, "label": label,
            "size": len(data), "body": data, "received_at": now}).inserted_primary_key[0]
    patients, flags, added = set(), [], []
    for report, text, digest, current, earlier in changed:
        if current is not None:
            flags.append({"row_id": current.id, "is_current": False})
            patients.add((current.patient_id, current.patient_issuer))
        if earlier is not None:  # an older version sent again: it becomes current again
            flags.append({"row_id": earlier.id, "is_current": True})
        else:
            patient_id, issuer = patient_key(report)
            added.append({"source_id": report.source_id, "content_sha256": digest, "patient_id": patient_id,
                          "patient_issuer": issuer, "document_id": document_id, "current": True,
                          "normalised_text": text, "received_at": now})
        patients.add(patient_key(report))
    if flags:
        connection.execute(SET_CURRENT, flags)
    if added:
        connection.execute(ADD_REPORT[connection.dialect.name], added)
    queue.enqueue(connection, patients, preset, delivery_target, now)
    return Stored("stored", document_id, tuple(outcomes), tuple(sorted(patients)))
