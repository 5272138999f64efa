"""PatientAssessment -> one FHIR transaction Bundle (DESIGN.md §5.5; codes from STANDARDS.md §8).

The Bundle holds, for the reported (latest) scan: a Tumor BodyStructure per lesion, a TumorSize
Observation per lesion per time point, a per-lesion status Observation, the RECIST 1.1 response
Observation, the oligo/poly assessment Observation, an mCODE CancerDiseaseStatus Observation and the
DiagnosticReport with the spider plot as its presented form.

Every entry is a conditional create (`ifNoneExist` on a deterministic identifier), and every
`fullUrl` is derived from that identifier, so resending the same assessment never duplicates and the
same input always gives the same bytes. Pure: no clock (the issued time comes from the reports or
the caller), no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from functools import cached_property
from urllib.parse import quote

from ..assess.result import LesionAssessment, PatientAssessment, TimePointAssessment, percent
from ..model import IdentifierKind, MeasurementKind, PatientTimeline, ScanTimePoint, TrackedLesion
from .codes import Coder, from_dicom, system, table
from .conclusion import conclusion
from .ids import Identifier, derive, lesion_key, patient_key

VERSIONS = ("R4", "R5")
LONG_KINDS = (MeasurementKind.LONG_AXIS, MeasurementKind.DIAMETER, MeasurementKind.LENGTH)


@dataclass(frozen=True, slots=True)
class EmitOptions:
    """What a site may choose. Defaults come from mappings/fhir_output.yaml."""

    issued: dt.datetime | None = None  # default: latest authoring time of the reported scan's reports
    timezone: dt.tzinfo = dt.timezone.utc  # for report times that carry no offset
    code_system_url: str | None = None  # canonical URL of the local CodeSystem
    identifier_system: str | None = None  # prefix of the systems of identifiers this adapter mints
    patient_identifier_system: str | None = None  # default: from the patient id issuer
    status: str | None = None  # DiagnosticReport.status (default preliminary)
    plot_png: bytes | None = None  # presentedForm; default: the spider plot rendered here
    include_plot: bool = True
    # Check every resource against the fhir.resources models before returning (about 50 ms a Bundle).
    # The tests check every Bundle shape; an archive run may switch this off for speed.
    validate: bool = True
    lesion_response_pct: Decimal = Decimal(30)  # per-lesion "responding": this much smaller than at baseline


def to_fhir(assessment: PatientAssessment, version: str = "R4", *, options: EmitOptions | None = None,
            **overrides) -> dict[str, Any]:
    """A FHIR transaction Bundle (dict) for the latest scan of `assessment`, validated against the
    fhir.resources models of `version` (R4 -> R4B models, R5). Keyword overrides set EmitOptions fields."""
    if version not in VERSIONS:
        raise ValueError(f"unknown FHIR version {version!r}; use one of {', '.join(VERSIONS)}")
    options = options or EmitOptions()
    if overrides:
        unknown = set(overrides) - set(EmitOptions.__slots__)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        options = EmitOptions(**{k: getattr(options, k) for k in EmitOptions.__slots__} | overrides)
    if assessment.timeline is None:
        raise ValueError("the assessment carries no timeline; assess with adapter.assess or assess_timeline")
    if not assessment.timepoints:
        raise ValueError(f"patient {assessment.patient_id}: no time point, nothing to report")
    bundle = _Builder(assessment, version, options).build()
    if options.validate:
        from .validate import validate

        validate(bundle, version)
    return bundle


class _Builder:
    def __init__(self, assessment: PatientAssessment, version: str, options: EmitOptions):
        defaults = table()["defaults"]
        self.a, self.version, self.o = assessment, version, options
        self.timeline: PatientTimeline = assessment.timeline
        self.base = options.identifier_system or defaults["identifier_system"]
        self.coder = Coder(options.code_system_url or defaults["code_system_url"])
        self.status = options.status or defaults["report_status"]
        self.index = len(assessment.timepoints) - 1
        self.tp: TimePointAssessment = assessment.timepoints[self.index]
        self.scan: ScanTimePoint = self.timeline.time_points[self.index]
        self.entries: list[dict[str, Any]] = []
        self.tumors: dict[str, str] = {}  # lesion_id -> fullUrl
        self.sizes: dict[str, list[tuple[int, str]]] = {}  # lesion_id -> [(time point, fullUrl)]
        self.sides = {lesion.lesion_id: (lesion.laterality.meaning or "").lower()
                      for lesion in self.timeline.lesions if lesion.laterality}

    # --- shared pieces -------------------------------------------------------------------------------

    def add(self, resource: dict[str, Any], identifier: Identifier) -> str:
        """Append a conditional create; returns the entry's fullUrl."""
        resource_type = resource["resourceType"]
        query = f"identifier={quote(identifier.system, safe=':/.-_~')}|{quote(identifier.value, safe=':/.-_~')}"
        self.entries.append({
            "fullUrl": identifier.full_url,
            "resource": resource,
            "request": {"method": "POST", "url": resource_type, "ifNoneExist": query},
        })
        return identifier.full_url

    def ident(self, kind: str, *parts: object) -> Identifier:
        return Identifier(f"{self.base}:{kind}", derive(kind, *patient_key(self.timeline), *parts))

    def subject(self) -> dict[str, Any]:
        """The patient by identifier (a logical reference: the EHR already holds the patient)."""
        return {"identifier": {"system": self.patient_system_uri, "value": self.timeline.patient_id},
                "type": "Patient"}

    @cached_property
    def patient_system_uri(self) -> str:
        return self.patient_system()

    def patient_system(self) -> str:
        if self.o.patient_identifier_system:
            return self.o.patient_identifier_system
        issuer = (self.timeline.patient_issuer or "").strip()
        if issuer.startswith(("urn:", "http://", "https://")):
            return issuer
        if issuer:
            return f"{self.base}:patient-id-issuer:{quote(issuer, safe='')}"
        return f"{self.base}:patient-id"

    def study(self, uid: str) -> dict[str, Any]:
        return {"identifier": {"type": self.coder.concept(table()["study_identifier_type"]),
                               "system": system("dicom-uid"), "value": f"urn:oid:{uid}"},
                "type": "ImagingStudy"}

    def sr(self, source_id: str) -> dict[str, Any]:
        """The DICOM SR a value came from, by its SOP Instance UID (provenance, DESIGN.md §3)."""
        return {"identifier": {"system": system("dicom-uid"), "value": f"urn:oid:{source_id}"},
                "type": "DocumentReference", "display": "DICOM SR measurement report"}

    def category(self) -> list[dict[str, Any]]:
        return [self.coder.concept(*table()["observation_category"])]

    def quantity(self, value: Decimal, unit: str = "mm") -> dict[str, Any]:
        if unit == "%":
            return {"value": _json_number(value), "unit": "%", "system": system("ucum"), "code": "%"}
        spec = table()["tumor_size"]["unit"]
        return {"value": _json_number(value), "unit": spec["unit"], "system": system(spec["system"]),
                "code": spec["code"]}

    def effective(self, scan: ScanTimePoint) -> dict[str, Any]:
        return {"effectiveDateTime": scan.date.isoformat()} if scan.date else {}

    def issued(self) -> str | None:
        moment = self.o.issued or self.scan.content_datetime
        if moment is None and self.scan.date is not None:
            moment = dt.datetime.combine(self.scan.date, dt.time(0, 0))
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.o.timezone)
        return moment.isoformat(timespec="seconds")

    def sources(self) -> tuple[str, ...]:
        return tuple(sorted(self.scan.reports))

    # --- resources -----------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        for lesion in self.timeline.lesions:
            self.tumors[lesion.lesion_id] = self.tumor(lesion)
        for lesion in self.timeline.lesions:
            for t in range(self.index + 1):
                url = self.tumor_size(lesion, t)
                if url:
                    self.sizes.setdefault(lesion.lesion_id, []).append((t, url))
        statuses = {row.lesion_id: self.lesion_status(row) for row in self.tp.lesions}
        recist = self.recist(statuses) if self.tp.recist is not None else None
        pattern = self.pattern(statuses, recist)
        disease = self.disease_status()
        results = [url for urls in self.sizes.values() for _, url in urls] + list(statuses.values())
        results += [u for u in (recist, pattern, disease) if u]
        report = self.report(results)
        return {
            "resourceType": "Bundle",
            "identifier": {"system": f"{self.base}:bundle", "value": report.value},
            "type": "transaction",
            "entry": self.entries,
        }

    def tumor(self, lesion: TrackedLesion) -> str:
        spec = table()["tumor"]
        identifier = Identifier(f"{self.base}:tumor", derive("tumor", *lesion_key(self.timeline, lesion)))
        identifiers = [{"use": "usual", "type": self.coder.concept(spec["identifier_type"]),
                        **identifier.to_fhir()}]
        findings = [o.finding for o in lesion.observations if o is not None]
        texts = _unique(f.tracking_identifier for f in findings
                        if f.tracking_identifier and f.identifier_kind is not IdentifierKind.TOOL_TAG)
        identifiers += [{"type": self.coder.concept(spec["tracking_identifier_type"]), "value": text}
                        for text in texts]
        identifiers += [{"type": self.coder.concept(spec["tracking_uid_type"]), "system": system("dicom-uid"),
                         "value": f"urn:oid:{uid}"} for uid in _unique(f.tracking_uid for f in findings)]
        resource: dict[str, Any] = {"resourceType": "BodyStructure", "identifier": identifiers}
        morphology = from_dicom(next((f.finding for f in findings if f.finding is not None), None))
        if morphology and morphology.get("coding"):
            resource["morphology"] = morphology
        site = from_dicom(lesion.site)
        laterality = from_dicom(lesion.laterality)
        modifier = from_dicom(next((f.topographical_modifier for f in findings if f.topographical_modifier), None))
        if self.version == "R4":  # mCODE Tumor: laterality goes into locationQualifier
            if site:
                resource["location"] = site
            qualifiers = [q for q in (laterality, modifier) if q]
            if qualifiers:
                resource["locationQualifier"] = qualifiers
        else:  # R5: includedStructure (DICOM-SR IG BodyStructureFindingSite)
            included: dict[str, Any] = {"structure": site or {"text": lesion.anatomy.organ or "site not stated"}}
            if laterality:
                included["laterality"] = laterality
            if modifier:
                included["qualifier"] = [modifier]
            resource["includedStructure"] = [included]
        resource["description"] = lesion.name
        resource["patient"] = self.subject()
        return self.add(resource, identifier)

    def tumor_size(self, lesion: TrackedLesion, t: int) -> str | None:
        """mCODE TumorSize: longest dimension (and the short axis) as measured in this scan's report."""
        observation = lesion.observations[t]
        if observation is None:
            return None
        finding = observation.finding
        usable = [m for m in finding.measurements if m.usable_size and m.unit == "mm" and m.derivation is None]
        longest = max((m.value for m in usable if m.kind in LONG_KINDS), default=None)
        short = max((m.value for m in usable if m.kind is MeasurementKind.SHORT_AXIS), default=None)
        if longest is None and short is None:
            return None
        spec = table()["tumor_size"]
        scan = self.timeline.time_points[t]
        identifier = self.ident("tumor-size", scan.study_uid, observation.source_id,
                                *lesion_key(self.timeline, lesion))
        identifiers = [identifier.to_fhir()]
        if finding.provenance.observation_uid:
            identifiers.append({"system": system("dicom-uid"),
                                "value": f"urn:oid:{finding.provenance.observation_uid}"})
        components = []
        if longest is not None:
            components.append({"code": self.coder.concept(*spec["longest"]), "valueQuantity": self.quantity(longest)})
        if short is not None:
            components.append({"code": self.coder.concept(*spec["other"]), "valueQuantity": self.quantity(short)})
        resource: dict[str, Any] = {
            "resourceType": "Observation", "identifier": identifiers, "status": "final",
            "category": self.category(), "code": self.coder.concept(spec["code"]), "subject": self.subject(),
            "focus": [{"reference": self.tumors[lesion.lesion_id]}],
            **self.effective(scan),
        }
        if self.version == "R5":
            resource["bodyStructure"] = {"reference": self.tumors[lesion.lesion_id]}
        if scan.study_uid:
            resource["partOf"] = [self.study(scan.study_uid)]
        resource["derivedFrom"] = [self.sr(observation.source_id)]
        method = spec["method"].get((scan.modality or "").upper())
        if method:
            resource["method"] = self.coder.concept(method)
        resource["component"] = components
        return self.add(resource, identifier)

    def lesion_status(self, row: LesionAssessment) -> str:
        lesion = next(lesion for lesion in self.timeline.lesions if lesion.lesion_id == row.lesion_id)
        status = lesion_status_code(row, self._baseline_value(row.lesion_id),
                                    self.a.parameters.node_pathological_sa_mm, self.o.lesion_response_pct)
        identifier = self.ident("lesion-status", self.scan.study_uid, *self.sources(), self.a.preset, self.a.criteria,
                                *lesion_key(self.timeline, lesion))
        components = [{"code": self.coder.local_concept("lesion-class"),
                       "valueCodeableConcept": self.coder.local_concept(f"{row.lesion_class}-lesion")}]
        if row.value_mm is not None:
            components.append({"code": self.coder.local_concept("lesion-size"),
                               "valueQuantity": self.quantity(row.value_mm)})
        if row.reference_mm is not None:
            components.append({"code": self.coder.local_concept("lesion-reference-size"),
                               "valueQuantity": self.quantity(row.reference_mm)})
        if row.change_mm is not None:
            components.append({"code": self.coder.local_concept("lesion-change"),
                               "valueQuantity": self.quantity(row.change_mm)})
            pct = percent(row.change_mm, row.reference_mm)
            if pct is not None:
                components.append({"code": self.coder.local_concept("lesion-change-percent"),
                                   "valueQuantity": self.quantity(pct, "%")})
        if row.reason:
            components.append({"code": self.coder.local_concept("progression-reason"),
                               "valueCodeableConcept": self.coder.local_concept(row.reason)})
        resource: dict[str, Any] = {
            "resourceType": "Observation", "identifier": [identifier.to_fhir()], "status": self.status,
            "category": self.category(), "code": self.coder.local_concept("lesion-status"),
            "subject": self.subject(), "focus": [{"reference": self.tumors[row.lesion_id]}],
            **self.effective(self.scan),
            "valueCodeableConcept": self.coder.local_concept(status),
        }
        if self.scan.study_uid:
            resource["partOf"] = [self.study(self.scan.study_uid)]
        sizes = [{"reference": url} for _, url in self.sizes.get(row.lesion_id, [])]
        if sizes:
            resource["derivedFrom"] = sizes
        if row.explanation:
            resource["note"] = [{"text": row.explanation}]
        resource["component"] = components
        return self.add(resource, identifier)

    def _baseline_value(self, lesion_id: str) -> Decimal | None:
        """The lesion's size at the latest reference baseline up to the reported scan."""
        for tp in reversed(self.a.timepoints[: self.index + 1]):
            if tp.reference_baseline:
                return next((row.value_mm for row in tp.lesions if row.lesion_id == lesion_id), None)
        return None

    def recist(self, statuses: dict[str, str]) -> str:
        spec, recist = table()["recist"], self.tp.recist
        identifier = self.ident("recist", self.scan.study_uid, *self.sources())
        components = []
        for key, value in (("target-response", recist.target), ("non-target-response", recist.non_target)):
            if value is None:
                continue
            coded = spec["target" if key == "target-response" else "non_target"].get(value)
            concept = self.coder.concept(coded) if coded else self.coder.local_concept(value)
            components.append({"code": self.coder.local_concept(key), "valueCodeableConcept": concept})
        components.append({"code": self.coder.local_concept("new-lesions"), "valueBoolean": recist.new_lesions})
        for key, value in (("sum-of-diameters", recist.sum_mm), ("nadir-sum", recist.nadir_mm),
                           ("baseline-sum", recist.baseline_mm)):
            if value is not None:
                components.append({"code": self.coder.local_concept(key), "valueQuantity": self.quantity(value)})
        resource: dict[str, Any] = {
            "resourceType": "Observation", "identifier": [identifier.to_fhir()], "status": self.status,
            "category": self.category(),
            "code": {"coding": [self.coder.coding(spec["code"]), self.coder.local("recist-response")]},
            "subject": self.subject(), **self.effective(self.scan),
            "valueCodeableConcept": self.coder.local_concept(recist.overall),
            "method": self.coder.concept(spec["method"]),
        }
        if self.scan.study_uid:
            resource["partOf"] = [self.study(self.scan.study_uid)]
        targets = [statuses[row.lesion_id] for row in self.tp.lesions if row.lesion_class == "target"]
        if targets:
            resource["hasMember"] = [{"reference": url} for url in targets]
        if recist.reasons:
            resource["note"] = [{"text": reason} for reason in recist.reasons]
        resource["component"] = components
        return self.add(resource, identifier)

    def pattern(self, statuses: dict[str, str], recist: str | None) -> str:
        p = self.a.parameters
        identifier = self.ident("progression-pattern", self.scan.study_uid, *self.sources(), self.a.preset,
                                self.a.criteria)
        components = [
            {"code": self.coder.local_concept("progressing-count"), "valueInteger": self.tp.progressing_count},
            {"code": self.coder.local_concept("progressing-count-max"), "valueInteger": self.tp.progressing_max},
            {"code": self.coder.local_concept("organ-count"), "valueInteger": self.tp.organ_count},
            {"code": self.coder.local_concept("preset"), "valueString": self.a.preset},
            {"code": self.coder.local_concept("progressing-limit"), "valueInteger": p.max_progressing},
        ]
        members = [statuses[row.lesion_id] for row in self.tp.progressing] + ([recist] if recist else [])
        resource: dict[str, Any] = {
            "resourceType": "Observation", "identifier": [identifier.to_fhir()], "status": self.status,
            "category": self.category(), "code": self.coder.local_concept("progression-pattern"),
            "subject": self.subject(), **self.effective(self.scan),
            "valueCodeableConcept": self.coder.local_concept(self.tp.state),
        }
        if self.scan.study_uid:
            resource["partOf"] = [self.study(self.scan.study_uid)]
        if members:
            resource["hasMember"] = [{"reference": url} for url in members]
        notes = [f"preset {self.a.preset} ({self.a.preset_source})"] + list(self.tp.reasons)
        resource["note"] = [{"text": text} for text in notes]
        resource["component"] = components
        return self.add(resource, identifier)

    def trend(self) -> str:
        spec = table()["disease_status"]
        if self.tp.state == "no-progression" and self.tp.recist is not None:
            return spec["by_recist"][self.tp.recist.overall]
        return spec["by_state"].get(self.tp.state, "undetermined")

    def disease_status(self) -> str:
        """mCODE CancerDiseaseStatus: the patient-level trend, with imaging as its evidence."""
        spec = table()["disease_status"]
        identifier = self.ident("disease-status", self.scan.study_uid, *self.sources(), self.a.preset,
                                self.a.criteria)
        resource: dict[str, Any] = {
            "resourceType": "Observation", "identifier": [identifier.to_fhir()], "status": self.status,
            "extension": [{"url": spec["evidence_extension"],
                           "valueCodeableConcept": self.coder.concept(spec["evidence"])}],
            "category": self.category(), "code": self.coder.concept(spec["code"]),
            "subject": self.subject(),
            "focus": [{"reference": self.tumors[row.lesion_id]} for row in self.tp.lesions],
            **self.effective(self.scan),
            "valueCodeableConcept": self.coder.concept(spec["values"][self.trend()]),
        }
        if not resource["focus"]:
            del resource["focus"]
        return self.add(resource, identifier)

    def report(self, results: list[str]) -> Identifier:
        spec = table()["report"]
        all_sources = sorted({s for scan in self.timeline.time_points[: self.index + 1] for s in scan.reports})
        identifier = self.ident("report", self.scan.study_uid, *all_sources, self.a.preset, self.a.criteria)
        studies = _unique(uid for scan in self.timeline.time_points[: self.index + 1]
                          for uid in (scan.study_uid, *scan.additional_study_uids) if uid)
        resource: dict[str, Any] = {
            "resourceType": "DiagnosticReport", "identifier": [identifier.to_fhir()], "status": self.status,
            "category": [self.coder.concept(entry) for entry in spec["category"]],
            "code": self.coder.concept(*spec["code"]),
            "subject": self.subject(), **self.effective(self.scan),
        }
        issued = self.issued()
        if issued:
            resource["issued"] = issued
        if studies:
            resource["imagingStudy" if self.version == "R4" else "study"] = [self.study(uid) for uid in studies]
        resource["result"] = [{"reference": url} for url in results]
        resource["conclusion"] = conclusion(self.a, self.tp, self.sides)
        trend = table()["disease_status"]["values"][self.trend()]
        resource["conclusionCode"] = [self.coder.concept(trend), self.coder.local_concept(self.tp.state)]
        if self.o.include_plot:
            png = self.o.plot_png
            if png is None:
                from .plot import spider_png

                png = spider_png(self.a, self.index)
            resource["presentedForm"] = [{
                "contentType": "image/png", "title": spec["presented_form_title"],
                "data": base64.b64encode(png).decode("ascii"), "size": len(png),
                "hash": base64.b64encode(hashlib.sha1(png).digest()).decode("ascii"),
            }]
        self.add(resource, identifier)
        return identifier


def lesion_status_code(row: LesionAssessment, baseline_mm: Decimal | None, node_normal_below_mm: Decimal,
                       response_pct: Decimal) -> str:
    """The per-lesion status (local CodeSystem). `responding` mirrors the RECIST PR threshold at lesion
    level: at least `response_pct` % smaller than at the reference baseline (a project choice); a node
    below the pathological short axis counts as disappeared, as RECIST counts it for CR."""
    if row.locally_treated:
        return "locally-treated"
    if row.progressing:
        return "progressing"
    if row.equivocal:
        return "equivocal"
    if row.presence == "disappeared":
        return "disappeared"
    if row.possibly_progressing or row.presence in ("not-assessed", "unusable-units"):
        return "lesion-not-evaluable"
    if row.nodal and row.value_mm is not None and row.value_mm < node_normal_below_mm:
        return "disappeared"
    if row.value_mm is not None and baseline_mm and row.value_mm * 100 <= (100 - response_pct) * baseline_mm:
        return "responding"
    return "stable"


def _json_number(value: Decimal) -> int | float:
    """Decimal -> JSON number: integers stay integers (20, not 20.0)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _unique(values) -> list:
    seen: list = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def bundle_json(bundle: dict[str, Any], *, indent: int | None = 2) -> str:
    """The canonical text of a Bundle: the same Bundle always gives the same bytes. `indent=None`
    gives one line without a newline (an NDJSON line), written by the C encoder: several times faster."""
    import json

    if indent is None:
        return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(bundle, indent=indent, ensure_ascii=False) + "\n"
