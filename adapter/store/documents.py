"""Received bytes -> (kind, Reports): which reader a document goes to, decided from its media type
when one is given and from its content otherwise. Pure apart from hashing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..errors import InputError
from ..model import Report
from ..sources import looks_like_fhir, read_fhir, read_sr
from ..sources.limits import DEFAULT_LIMITS, ReadLimits

DICOM, DICOM_JSON, FHIR = "dicom", "dicom-json", "fhir"
MEDIA_KINDS = {
    "application/dicom": DICOM,
    "application/dicom+json": DICOM_JSON,
    "application/fhir+json": FHIR,
    "application/json+fhir": FHIR,
    "application/fhir+ndjson": FHIR,
    "application/ndjson": FHIR,
    "application/x-ndjson": FHIR,
}


@dataclass(frozen=True)
class ParsedDocument:
    kind: str
    sha256: str
    reports: tuple[Report, ...]


def kind_of(data: bytes, media_type: str | None, label: str) -> str:
    """The reader for these bytes: the media type decides when it names one; plain JSON is told apart
    by its content (a FHIR resourceType, or DICOM JSON tags)."""
    if media_type:
        kind = MEDIA_KINDS.get(media_type.split(";")[0].strip().lower())
        if kind:
            return kind
    if looks_like_fhir(data, label):
        return FHIR
    return DICOM_JSON if data.lstrip()[:1] in (b"{", b"[") else DICOM


def parse_document(data: bytes, *, label: str, media_type: str | None = None,
                   limits: ReadLimits = DEFAULT_LIMITS, parsed_json: object = None) -> ParsedDocument:
    """Read one document; InputError (naming `label` and the reason) when it gives no usable report or a
    report without a patient id (it could never be placed on a patient's timeline). `parsed_json`: the
    bytes as the caller already parsed them, used for DICOM JSON (the FHIR reader parses numbers its own way)."""
    if not data:
        raise InputError(label, "is empty")
    kind = kind_of(data, media_type, label)
    if isinstance(parsed_json, list) and len(parsed_json) == 1:
        parsed_json = parsed_json[0]  # as the reader takes a one-dataset array
    if kind == FHIR:
        reports = tuple(read_fhir(data, name=label, limits=limits))
    elif kind == DICOM_JSON and isinstance(parsed_json, dict):
        reports = (read_sr(parsed_json, name=label, limits=limits),)
    else:
        reports = (read_sr(data, name=label, limits=limits),)
    if not reports:
        raise InputError(label, "holds no lesion measurements")
    unplaced = [r.source_id for r in reports if not (r.patient_id or "").strip()]
    if unplaced:
        raise InputError(label, f"has no patient id ({', '.join(unplaced)}): it cannot be placed on a patient's "
                                "timeline, so nothing was stored")
    return ParsedDocument(kind, hashlib.sha256(data).hexdigest(), reports)


def canonical(report: Report) -> tuple[str, str]:
    """The normalised report as canonical JSON text, and its SHA-256: the same report sent again, in any
    encoding, has the same. The text is what the store keeps, so it is made once."""
    text = json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return text, hashlib.sha256(text.encode()).hexdigest()


def patient_key(report: Report) -> tuple[str, str]:
    return ((report.patient_id or "").strip(), (report.patient_issuer or "").strip())
