"""Deterministic identifiers: the same patient, studies and source UIDs always give the same values,
so a resent Bundle matches what the server already holds (conditional create, `ifNoneExist`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from ..model import PatientTimeline, TrackedLesion

# A fixed namespace: identifiers depend only on their parts, never on the machine or the clock.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:oligo-adapter:fhir-output")


def derive(*parts: object) -> str:
    """A UUID (RFC 4122 version 5) from the parts, joined with an unambiguous separator."""
    return _uuid5("\x1f".join("" if p is None else str(p) for p in parts))


@lru_cache(maxsize=65536)
def _uuid5(name: str) -> str:
    """Cached: one Bundle names the same patient, lesions and studies many times."""
    return str(uuid.uuid5(NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str

    def to_fhir(self) -> dict:
        return {"system": self.system, "value": self.value}

    def search(self, resource_type: str) -> str:
        """The conditional-create query that finds this resource again."""
        return f"{resource_type}?identifier={self.system}|{self.value}"

    @property
    def full_url(self) -> str:
        return f"urn:uuid:{derive('fullUrl', self.system, self.value)}"


def patient_key(timeline: PatientTimeline) -> tuple[str, str]:
    return (timeline.patient_issuer or "", timeline.patient_id)


def lesion_key(timeline: PatientTimeline, lesion: TrackedLesion) -> tuple[str, ...]:
    """What names a lesion for good: its first sighting (source UID and tracking UID, else the
    tracking identifier or name, and where in the source it was: the SR content path, or the FHIR
    Observation's id when there is no path). Later scans do not change it, so the Tumor is reused over time."""
    first = next(o for o in lesion.observations if o is not None)
    finding = first.finding
    if finding.tracking_uid:
        return (*patient_key(timeline), "tracking-uid", finding.tracking_uid)
    return (*patient_key(timeline), "first-seen", first.source_id, finding.tracking_identifier or "",
            finding.label or "", finding.provenance.path or finding.provenance.observation_uid or "", lesion.name)
