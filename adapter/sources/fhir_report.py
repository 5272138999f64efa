"""Parts (what each top-level Observation says about one lesion) -> Findings -> Reports.

One Report per patient per imaging study (or per date when no study is named); Observations that share a
Tracking UID or a BodyStructure describe one lesion and become one Finding.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from .. import tables
from ..model import Code, Finding, Measurement, Provenance, Qualitative, Report, Role, SourceKind
from .fhir_codes import SystemNote
from .fhir_context import LesionIdentity, PatientRef
from .fhir_load import FhirInput



@dataclass
class Context:
    patient: PatientRef | None = None
    study_uid: str | None = None
    date: dt.date | None = None
    time: dt.time | None = None
    date_source: str | None = None
    issued: dt.datetime | None = None
    accession: str | None = None
    status: str | None = None
    observer: str | None = None
    report_id: str | None = None  # the DiagnosticReport that lists this Observation


@dataclass
class Part:
    source: str  # identity of the top-level Observation
    context: Context
    identity: LesionIdentity
    finding: Code | None = None
    category: Code | None = None
    method: Code | None = None
    role: Role | None = None
    response: Code | None = None
    qualitative: list[Qualitative] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    predecessors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)



@dataclass
class ReportBuilder:
    """Everything input-wide a Report needs besides its parts: the input and the reader's notes."""

    found: FhirInput
    notes: list[SystemNote]
    skipped: list[str]
    set_aside: list[str]

    def reports(self, parts: list[Part]) -> list[Report]:
        groups: dict[tuple, list[Part]] = defaultdict(list)
        for part in parts:
            patient = part.context.patient
            key = (patient.patient_id if patient else None, patient.issuer if patient else None,
                   part.context.study_uid or ("date", part.context.date))
            groups[key].append(part)
        patients = {(k[0], k[1]) for k in groups}
        reports = []
        for key, members in groups.items():
            suffix = None
            if len(groups) > 1:
                suffix = f"{key[0] or 'no-patient'}/{key[2] if isinstance(key[2], str) else key[2][1] or 'no-date'}"
            reports.append(self._report(members, suffix, len(patients)))
        reports.sort(key=lambda r: (r.patient_id or "", r.patient_issuer or "", r.imaging_date or dt.date.min,
                                    r.study_uid or "", r.source_id))
        return reports

    def _report(self, parts: list[Part], suffix: str | None, n_patients: int) -> Report:
        warnings = list(self.found.warnings)
        if n_patients > 1:
            warnings.append(f"the input holds {n_patients} patients; read per patient")
        findings = tuple(self._finding(lesion, warnings) for lesion in _lesions(parts))
        ctx = parts[0].context
        dates = sorted({p.context.date for p in parts if p.context.date})
        if len(dates) > 1:
            warnings.append(f"the Observations of study {ctx.study_uid} carry {len(dates)} dates; the earliest is used")
        date_part = min((p for p in parts if p.context.date), key=lambda p: p.context.date, default=parts[0])
        for part in parts:
            warnings += part.warnings
        warnings += [f"coding system {n.system!r} {n.reason}" for n in self.notes]
        warnings += self.skipped
        warnings += [f"{s}; set aside" for s in self.set_aside]
        patient = ctx.patient
        if patient is None:
            warnings.append("no patient (Observation.subject): this report cannot be placed on a patient's timeline")
        elif patient.note:
            warnings.append(patient.note)
        if date_part.context.date is None:
            warnings.append("no date anywhere (effective[x], issued, ImagingStudy.started)")
        if ctx.study_uid is None:
            warnings.append("no imaging study (partOf / derivedFrom ImagingStudy): the date stands for the time point")
        statuses = {p.context.status for p in parts}
        preliminary = "PRELIMINARY" if statuses & {"preliminary", "registered"} else (
            "FINAL" if statuses & {"final", "amended", "corrected", "appended"} else None)
        return Report(
            source_kind=SourceKind.FHIR,
            source_id=self._source_id(parts, suffix),
            sop_class_uid=None,
            patient_id=patient.patient_id if patient else None,
            patient_issuer=patient.issuer if patient else None,
            study_uid=ctx.study_uid,
            sr_study_uid=None,
            series_uid=None,
            accession=next((p.context.accession for p in parts if p.context.accession), None),
            imaging_date=date_part.context.date,
            imaging_time=date_part.context.time,
            imaging_date_source=date_part.context.date_source,
            content_datetime=next((p.context.issued for p in parts if p.context.issued), None),
            modality=None,
            completion_flag=None,
            verification_flag=None,
            preliminary_flag=preliminary,
            observer=next((p.context.observer for p in parts if p.context.observer), None),
            predecessors=tuple(dict.fromkeys(x for p in parts for x in p.predecessors)),
            time_point=None,
            findings=findings,
            warnings=tuple(dict.fromkeys(warnings)),
            fhir_version=self.found.version,
        )

    def _source_id(self, parts: list[Part], suffix: str | None) -> str:
        report_ids = {p.context.report_id for p in parts}
        if len(report_ids) == 1 and None not in report_ids:
            return report_ids.pop()
        sources = list(dict.fromkeys(p.source for p in parts))
        if len(sources) == 1:
            return sources[0]
        base = self.found.container_id or f"sha256:{self.found.digest[:16]}"
        return f"{base}#{suffix}" if suffix else base

    def _finding(self, parts: list[Part], warnings: list[str]) -> Finding:
        identity = LesionIdentity()
        for part in parts:
            identity.merge(part.identity)
        warnings += identity.notes
        first = lambda name: next((getattr(p, name) for p in parts if getattr(p, name) is not None), None)  # noqa: E731
        finding = first("finding") or identity.morphology
        category = first("category")
        role = first("role")
        site = identity.site
        kind = tables.identifier_kind(identity.tracking_identifier) if identity.tracking_identifier else None
        label = identity.label
        if label is None and identity.tracking_identifier is None:
            label = next((t.split("|", 1)[-1] for t in identity.body_structure_ids
                          if not t.startswith("BodyStructure/")), None)
        anatomy = tables.anatomy_of(site)
        if anatomy.organ is None and finding is not None and not tables.is_structure(finding, None):
            anatomy = tables.anatomy_of(finding)
        return Finding(
            tracking_uid=identity.tracking_uid,
            tracking_identifier=identity.tracking_identifier,
            identifier_kind=kind,
            label=label,
            finding=finding,
            finding_category=category,
            site=site,
            laterality=identity.laterality,
            topographical_modifier=identity.topographical_modifier,
            anatomy=anatomy,
            is_lesion=not tables.is_structure(finding, category) and role is not Role.NON_LESION,
            role=role,
            response=first("response"),
            qualitative=tuple(q for p in parts for q in p.qualitative),
            measurements=tuple(m for p in parts for m in p.measurements),
            method=first("method"),
            provenance=Provenance(observation_uid=parts[0].source),
            body_structure_ids=tuple(identity.body_structure_ids),
        )


def _lesions(parts: list[Part]) -> list[list[Part]]:
    """Parts that share any identity token (Tracking UID, BodyStructure) describe one lesion."""
    parent = list(range(len(parts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for index, part in enumerate(parts):
        for token in part.identity.tokens:
            if token in owner:
                parent[root(index)] = root(owner[token])
            else:
                owner[token] = index
    grouped: dict[int, list[Part]] = {}
    for index, part in enumerate(parts):  # groups in order of their first part, whichever index is the root
        grouped.setdefault(root(index), []).append(part)
    return list(grouped.values())
