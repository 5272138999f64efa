"""Normalised, immutable value types shared by every stage of the pipeline.

Sources (DICOM SR, FHIR) produce `Report`s; the timeline, assessment and emitters only ever see these
types, never a pydicom dataset or a FHIR resource. Sizes are `Decimal` so that the RECIST borders
(20 %, 30 %, 5 mm) can be decided exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum


class SourceKind(str, Enum):
    DICOM_SR = "dicom-sr"
    DICOM_JSON = "dicom-json"
    FHIR = "fhir"


class MeasurementKind(str, Enum):
    """What a number measures; decided from the concept *and* the unit's dimension."""

    LONG_AXIS = "long-axis"
    SHORT_AXIS = "short-axis"
    DIAMETER = "diameter"
    LENGTH = "length"
    AREA = "area"
    VOLUME = "volume"
    OTHER = "other"


LINEAR_KINDS = frozenset(
    {MeasurementKind.LONG_AXIS, MeasurementKind.SHORT_AXIS, MeasurementKind.DIAMETER, MeasurementKind.LENGTH}
)


class Role(str, Enum):
    """Baseline category (DCM 112016, CID 6145) as the reader stated it."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NON_LESION = "non-lesion"


class IdentifierKind(str, Enum):
    """How far a Tracking Identifier text can be trusted as a lesion name."""

    HUMAN = "human"  # "Lesion 2", "lymph node 1"
    GENERIC = "generic"  # "Measurements group 1", "Planar ROI Measurements"
    TOOL_TAG = "tool-tag"  # "cornerstoneTools@^4.0.0:Length"
    HASH = "hash"  # "5b6eb4301d3175942d29985a3d0fbb00"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept. Equality is on (scheme, value); the meaning is display text only."""

    value: str
    scheme: str
    meaning: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"({self.value}, {self.scheme}, {self.meaning!r})"

    def to_dict(self) -> dict:
        return {"code": self.value, "scheme": self.scheme, "meaning": self.meaning}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a value came from, so every derived figure can be traced back."""

    path: str | None = None  # content-item path in the SR, e.g. "1.5.2.7"
    observation_uid: str | None = None  # (0040,A171), or a FHIR Observation id
    referenced_sop_instance_uid: str | None = None
    referenced_frame: int | None = None
    graphic_type: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class Measurement:
    """One numeric measurement of a finding.

    `value`/`unit` are canonical (mm, mm2, mm3) for sizes; other quantities keep their own unit.
    A size whose unit cannot be converted (``1``, px, ``[arb'U]``) has ``value=None`` and a
    `quarantined` reason: it is kept for display but never enters RECIST.
    """

    kind: MeasurementKind
    concept: Code
    value: Decimal | None
    unit: str | None
    original_value: str
    original_unit: Code | None
    derivation: Code | None = None
    method: Code | None = None
    quarantined: str | None = None
    provenance: Provenance = Provenance()

    @property
    def usable_size(self) -> bool:
        return self.value is not None and self.quarantined is None and self.kind is not MeasurementKind.OTHER

    def to_dict(self) -> dict:
        out = {
            "kind": self.kind.value,
            "concept": self.concept.to_dict(),
            "value": float(self.value) if self.value is not None else None,
            "unit": self.unit,
            "original": {
                "value": self.original_value,
                "unit": self.original_unit.to_dict() if self.original_unit else None,
            },
        }
        if self.derivation:
            out["derivation"] = self.derivation.to_dict()
        if self.method:
            out["method"] = self.method.to_dict()
        if self.quarantined:
            out["quarantined"] = self.quarantined
        out["provenance"] = self.provenance.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Qualitative:
    """A coded or text evaluation in a group (concept = value)."""

    concept: Code
    value: Code | str

    def to_dict(self) -> dict:
        value = self.value.to_dict() if isinstance(self.value, Code) else self.value
        return {"concept": self.concept.to_dict(), "value": value}


@dataclass(frozen=True, slots=True)
class Anatomy:
    """Where a finding is, resolved through mappings/anatomy.yaml."""

    organ: str | None = None  # organ group used for "<= 2 per organ" and organ counts
    nodal: bool = False
    cns: bool = False
    paired: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """One measurement group: a lesion (or a non-lesion structure) as one report saw it."""

    tracking_uid: str | None
    tracking_identifier: str | None
    identifier_kind: IdentifierKind | None
    label: str | None
    finding: Code | None
    finding_category: Code | None
    site: Code | None
    laterality: Code | None
    topographical_modifier: Code | None
    anatomy: Anatomy
    is_lesion: bool  # False for anatomical structures (aorta, vertebra, whole organ, spinal cord)
    role: Role | None
    response: Code | None  # Current Response (DCM 112048), e.g. (112047, DCM) non-target PD
    qualitative: tuple[Qualitative, ...]
    measurements: tuple[Measurement, ...]
    template: str | None = None  # "1410" | "1411" | "1501" when stated
    method: Code | None = None
    time_point: TimePointContext | None = None
    provenance: Provenance = Provenance()
    # mCODE Tumor / BodyStructure identity from FHIR: "system|value" identifiers and "BodyStructure/id"
    # references (DICOM tracking identifiers and UIDs stay in the two tracking fields above)
    body_structure_ids: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """A human-facing name: the label, else a trustworthy tracking identifier, else the site."""
        if self.label:
            return self.label
        if self.tracking_identifier and self.identifier_kind in (IdentifierKind.HUMAN, IdentifierKind.GENERIC):
            return self.tracking_identifier
        if self.site:
            return self.site.meaning or self.site.value
        return self.tracking_uid or "unnamed finding"

    def to_dict(self) -> dict:
        def code(c: Code | None):
            return c.to_dict() if c else None

        return {
            "name": self.name,
            "tracking_uid": self.tracking_uid,
            "tracking_identifier": self.tracking_identifier,
            "identifier_kind": self.identifier_kind.value if self.identifier_kind else None,
            "label": self.label,
            "finding": code(self.finding),
            "finding_category": code(self.finding_category),
            "site": code(self.site),
            "laterality": code(self.laterality),
            "topographical_modifier": code(self.topographical_modifier),
            "organ": self.anatomy.organ,
            "nodal": self.anatomy.nodal,
            "cns": self.anatomy.cns,
            "is_lesion": self.is_lesion,
            "role": self.role.value if self.role else None,
            "response": code(self.response),
            "template": self.template,
            "method": code(self.method),
            "time_point": self.time_point.to_dict() if self.time_point else None,
            "qualitative": [q.to_dict() for q in self.qualitative],
            "measurements": [m.to_dict() for m in self.measurements],
            "provenance": self.provenance.to_dict(),
            "body_structure_ids": list(self.body_structure_ids),
        }


@dataclass(frozen=True, slots=True)
class TimePointContext:
    """Time point context (TID 1502) as stated in the report, if at all."""

    identifier: str | None = None  # Time Point (C2348792, UMLS) or Subject Time Point Identifier (126070)
    protocol_identifier: str | None = None  # 126071
    type: Code | None = None  # 126072, CID 6146 (e.g. Baseline C1442488 UMLS)
    order: Decimal | None = None  # 126073

    @property
    def is_baseline(self) -> bool:
        return self.type is not None and self.type == Code("C1442488", "UMLS")

    def to_dict(self) -> dict:
        return {
            "identifier": self.identifier,
            "protocol_identifier": self.protocol_identifier,
            "type": self.type.to_dict() if self.type else None,
            "order": float(self.order) if self.order is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one source document says about one patient at one imaging time point."""

    source_kind: SourceKind
    source_id: str  # SOP Instance UID (or FHIR resource id)
    sop_class_uid: str | None
    patient_id: str | None
    patient_issuer: str | None
    study_uid: str | None  # the imaging study measured
    sr_study_uid: str | None  # the study the SR itself was filed in
    series_uid: str | None
    accession: str | None
    imaging_date: dt.date | None
    imaging_time: dt.time | None
    imaging_date_source: str | None  # which rule of DESIGN.md §5.4 gave the date
    content_datetime: dt.datetime | None
    modality: str | None
    completion_flag: str | None
    verification_flag: str | None
    preliminary_flag: str | None
    observer: str | None
    predecessors: tuple[str, ...]
    time_point: TimePointContext | None
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    fhir_version: str | None = None  # "R4" | "R4B" | "R5" for FHIR inputs, told apart from the content

    @property
    def lesions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_lesion)

    def to_dict(self) -> dict:
        return {
            "source_kind": self.source_kind.value,
            "source_id": self.source_id,
            "sop_class_uid": self.sop_class_uid,
            "patient": {"id": self.patient_id, "issuer": self.patient_issuer},
            "study_uid": self.study_uid,
            "sr_study_uid": self.sr_study_uid,
            "series_uid": self.series_uid,
            "accession": self.accession,
            "imaging_date": self.imaging_date.isoformat() if self.imaging_date else None,
            "imaging_time": self.imaging_time.isoformat() if self.imaging_time else None,
            "imaging_date_source": self.imaging_date_source,
            "content_datetime": self.content_datetime.isoformat() if self.content_datetime else None,
            "modality": self.modality,
            "completion_flag": self.completion_flag,
            "verification_flag": self.verification_flag,
            "preliminary_flag": self.preliminary_flag,
            "observer": self.observer,
            "predecessors": list(self.predecessors),
            "time_point": self.time_point.to_dict() if self.time_point else None,
            "findings": [f.to_dict() for f in self.findings],
            "warnings": list(self.warnings),
            **({"fhir_version": self.fhir_version} if self.fhir_version else {}),
        }


# --- the longitudinal model (built by adapter.timeline, read by adapter.assess and adapter.emit) -------


class MatchMethod(str, Enum):
    """How an observation was linked to its lesion (DESIGN.md §3: provenance of every link)."""

    FIRST_SEEN = "first-seen"  # the lesion's first appearance on the timeline
    TRACKING_UID = "tracking-uid"  # same Tracking Unique Identifier (112040)
    BODY_STRUCTURE = "body-structure"  # same mCODE Tumor / BodyStructure identifier (FHIR)
    LABEL = "label"  # same normalised tracking identifier or label, same organ group
    PROBABLE = "probable"  # same organ and laterality, nearest size within tolerance, unique pairing


@dataclass(frozen=True, slots=True)
class ScanTimePoint:
    """One imaging study on a patient's timeline (several SRs of one study merge into it)."""

    study_uid: str | None
    date: dt.date | None
    time: dt.time | None
    reports: tuple[str, ...]  # source ids of the reports merged into this time point
    superseded: tuple[str, ...] = ()  # source ids replaced by a later version of the same report
    is_baseline: bool = False
    additional_study_uids: tuple[str, ...] = ()  # same-day studies merged into this time point
    content_datetime: dt.datetime | None = None  # latest authoring time of its reports (FHIR `issued`)
    modality: str | None = None  # imaging modality of the measured study (CT, MR, PT, ...), when stated

    def to_dict(self) -> dict:
        return {
            "study_uid": self.study_uid,
            "date": self.date.isoformat() if self.date else None,
            "time": self.time.isoformat() if self.time else None,
            "reports": list(self.reports),
            "superseded": list(self.superseded),
            "baseline": self.is_baseline,
            "additional_study_uids": list(self.additional_study_uids),
            "content_datetime": self.content_datetime.isoformat() if self.content_datetime else None,
            "modality": self.modality,
        }


@dataclass(frozen=True, slots=True)
class LesionObservation:
    """A lesion as seen at one time point, and how it was linked there."""

    finding: Finding
    source_id: str
    match: MatchMethod

    def to_dict(self) -> dict:
        return {"source_id": self.source_id, "match": self.match.value,
                "measurements": [m.to_dict() for m in self.finding.measurements]}


@dataclass(frozen=True, slots=True)
class TrackedLesion:
    """One lesion across time. `observations` is aligned with `PatientTimeline.time_points`;
    None there means *not assessed* at that time point (absent from the reports), which is not the
    same as *disappeared* (measured as 0 mm)."""

    lesion_id: str
    name: str
    anatomy: Anatomy
    site: Code | None
    laterality: Code | None
    role: Role | None  # as stated at baseline, if stated
    is_new: bool  # first seen after the baseline time point
    observations: tuple[LesionObservation | None, ...]


@dataclass(frozen=True, slots=True)
class PatientTimeline:
    """Everything known about one patient's lesions, ordered by imaging date."""

    patient_id: str
    patient_issuer: str | None
    time_points: tuple[ScanTimePoint, ...]
    lesions: tuple[TrackedLesion, ...]
    conflicts: tuple[str, ...] = ()  # identity conflicts reported instead of guessed
    warnings: tuple[str, ...] = ()
