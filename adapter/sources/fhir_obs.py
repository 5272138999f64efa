"""FHIR Observations (mCODE TumorSize, HL7 DICOM-SR IG groups, plain LOINC/SNOMED sizes, qualitative
evaluations) -> `Report`s, one per patient per imaging study.

The same clinical facts as a TID 1500 SR (DESIGN.md §5.4, STANDARDS.md §4, §5, §7) arrive here in FHIR's
shapes; they leave in the same model, so one patient's SRs and FHIR inputs form one timeline. Deviations
become warnings on the Report; an input with nothing usable raises `InputError`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from .. import tables
from ..errors import InputError
from ..model import (
    Code,
    Finding,
    Measurement,
    MeasurementKind,
    Provenance,
    Qualitative,
    Report,
    Role,
    SourceKind,
)
from . import fhir_codes
from .fhir_codes import SystemNote
from .fhir_context import (
    UID_SYSTEM,
    LesionIdentity,
    PatientRef,
    accession_of,
    effective_of,
    imaging_study_started,
    parse_date,
    patient_of,
    read_lesion_identity,
    references,
    strip_oid,
    studies_of,
)
from .fhir_load import Entry, FhirInput, describe, load, many, text

UCUM_SYSTEMS = {"http://unitsofmeasure.org", "UCUM"}
MALFORMED = "has FHIR content of an unexpected shape that cannot be read"


def read_fhir(source: str | os.PathLike | bytes | dict | list, *, name: str | None = None) -> list[Report]:
    """Read a FHIR resource, Bundle or NDJSON (path, bytes, JSON text, dict or list) into Reports.

    One Report per patient per imaging study. Raises `InputError` (one line: what the input is and why it
    cannot be used) when it holds no usable lesion observation; never another exception for bad input.
    """
    label = name or describe(source)
    found = load(source, label)
    try:
        return _Reader(found).read()
    except InputError:
        raise
    except (RecursionError, MemoryError):
        raise InputError(label, "is nested too deeply or too large to read") from None
    except (TypeError, AttributeError, KeyError, ValueError, ArithmeticError) as exc:  # last line of defence
        raise InputError(label, f"{MALFORMED} ({type(exc).__name__}: {str(exc)[:120]})") from None


# --- parts: what one top-level Observation says about one lesion ------------------------------------


@dataclass
class _Context:
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
class _Part:
    source: str  # identity of the top-level Observation
    context: _Context
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


class _Reader:
    def __init__(self, found: FhirInput):
        self.found = found
        self.notes: list[SystemNote] = []
        self.set_aside: list[str] = []
        self.skipped: list[str] = []

    # --- top level ---------------------------------------------------------------------------------

    def read(self) -> list[Report]:
        found = self.found
        observations = [e for e in found.entries if e.type == "Observation"]
        if not observations:
            kinds = sorted({e.type for e in found.entries})
            raise InputError(found.label, f"holds no Observation (only {', '.join(kinds)})")
        observations = self._drop_withdrawn(observations)
        observations, predecessors = self._supersede(observations)
        members = self._members(observations)
        reports_of = self._diagnostic_reports()
        parts: list[_Part] = []
        for entry in observations:
            if id(entry.resource) in members:
                continue
            part = self._part(entry, reports_of.get(id(entry.resource)))
            if part is not None:
                part.predecessors += predecessors.get(id(entry.resource), [])
                parts.append(part)
        if not parts:
            raise InputError(found.label, self._nothing_usable())
        return self._reports(parts)

    def _nothing_usable(self) -> str:
        if self.set_aside and not self.skipped:
            return f"holds only {self.set_aside[0]}; set aside" + (
                f" (and {len(self.set_aside) - 1} more)" if len(self.set_aside) > 1 else "")
        reasons = self.skipped + [f"{s}; set aside" for s in self.set_aside]
        shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        return f"holds no usable lesion observation ({shown})" if shown else "holds no usable lesion observation"

    def _skip(self, message: str) -> None:
        if message not in self.skipped:
            self.skipped.append(message)

    def _drop_withdrawn(self, observations: list[Entry]) -> list[Entry]:
        ignored = set(fhir_codes.table()["ignored_statuses"])
        kept = []
        for entry in observations:
            status = text(entry.resource.get("status"))
            if status in ignored:
                self._skip(f"{self._name(entry)} is {status}; ignored")
            else:
                kept.append(entry)
        return kept

    def _supersede(self, observations: list[Entry]) -> tuple[list[Entry], dict[int, list[str]]]:
        """Keep one version per identifier: amended/corrected over others, then the newest."""
        superseding = set(fhir_codes.table()["superseding_statuses"])
        by_identifier: dict[str, list[tuple[int, Entry]]] = defaultdict(list)
        for order, entry in enumerate(observations):
            for ident in many(entry.resource.get("identifier")):
                if isinstance(ident, dict) and ident.get("value"):
                    by_identifier[f"{ident.get('system') or ''}|{ident['value']}"].append((order, entry))

        def rank(item: tuple[int, Entry]):
            order, entry = item
            resource = entry.resource
            meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
            version = str(meta.get("versionId") or "")
            return (text(resource.get("status")) in superseding, int(version) if version.isdigit() else -1,
                    str(meta.get("lastUpdated") or ""), str(resource.get("issued") or ""), order)

        dropped: set[int] = set()
        predecessors: dict[int, list[str]] = defaultdict(list)
        for versions in by_identifier.values():
            if len(versions) < 2:
                continue
            winner = max(versions, key=rank)[1]
            for _, entry in versions:
                if entry is winner or id(entry.resource) in dropped:
                    continue
                dropped.add(id(entry.resource))
                predecessors[id(winner.resource)].append(self._identity(entry))
                self._skip(f"{self._name(entry)} ({entry.resource.get('status')}) is superseded by "
                           f"{self._name(winner)} ({winner.resource.get('status')}) with the same identifier")
        return [e for e in observations if id(e.resource) not in dropped], predecessors

    def _members(self, observations: list[Entry]) -> set[int]:
        members: set[int] = set()
        for entry in observations:
            for ref in references(entry.resource.get("hasMember")):
                target = self.found.resolve(ref, entry)
                if target is not None and target.type == "Observation":
                    members.add(id(target.resource))
        return members

    def _diagnostic_reports(self) -> dict[int, Entry]:
        """Observation -> the DiagnosticReport listing it in `result` (its study, date and identity)."""
        out: dict[int, Entry] = {}
        for entry in self.found.entries:
            if entry.type != "DiagnosticReport":
                continue
            for ref in references(entry.resource.get("result")):
                target = self.found.resolve(ref, entry)
                if target is not None:
                    out.setdefault(id(target.resource), entry)
        return out

    # --- naming --------------------------------------------------------------------------------------

    def _identity(self, entry: Entry) -> str:
        """A stable identity: DICOM Observation UID, a business identifier, Observation/id, or fullUrl."""
        resource = entry.resource
        for ident in many(resource.get("identifier")):
            if isinstance(ident, dict) and ident.get("system") == UID_SYSTEM and ident.get("value"):
                return strip_oid(str(ident["value"]))
        for ident in many(resource.get("identifier")):
            if isinstance(ident, dict) and ident.get("value"):
                system = ident.get("system")
                return f"{system}|{ident['value']}" if system else str(ident["value"])
        ref = entry.reference()
        if ref:
            return ref
        if entry.full_url:
            return entry.full_url
        if entry.container is not None:
            return f"{self._identity(entry.container)}#{entry.resource.get('id')}"
        return f"sha256:{self.found.digest[:16]}#{entry.where.replace(' ', '')}"

    def _name(self, entry: Entry) -> str:
        """How messages name an Observation: its id, else where it is."""
        ref = entry.reference()
        return f"{ref} ({entry.where})" if ref else f"the Observation at {entry.where}"

    # --- one top-level Observation ----------------------------------------------------------------

    def _context(self, entry: Entry, report: Entry | None, warnings: list[str]) -> _Context:
        resource = entry.resource
        found = self.found
        ctx = _Context(status=text(resource.get("status")))
        ctx.patient = patient_of(resource.get("subject"), entry, found)
        if ctx.patient is None and report is not None:
            ctx.patient = patient_of(report.resource.get("subject"), report, found)
        studies = studies_of(entry, found)
        if not studies and report is not None:
            studies = studies_of(report, found, keys=("imagingStudy", "study"))
        if len(studies) > 1:
            warnings.append(f"{self._name(entry)} refers to {len(studies)} imaging studies; the first is used")
        ctx.study_uid = studies[0] if studies else None
        issued = resource.get("issued")
        candidates = [(effective_of(resource), "effective"), (issued, "issued")]
        if report is not None:
            candidates += [(effective_of(report.resource), "report-effective"),
                           (report.resource.get("issued"), "report-issued")]
        candidates.append((imaging_study_started(entry, found, ("partOf", "derivedFrom")), "imaging-study-started"))
        if report is not None:
            candidates.append((imaging_study_started(report, found, ("imagingStudy", "study")),
                               "imaging-study-started"))
        for written, source in candidates:
            date, time = parse_date(written)
            if date is not None:
                ctx.date, ctx.time, ctx.date_source = date, time, source
                break
        issued_date, issued_time = parse_date(issued)
        if issued_date:
            ctx.issued = dt.datetime.combine(issued_date, issued_time or dt.time())
        ctx.accession = accession_of(resource, entry, found) or (
            accession_of(report.resource, report, found) if report is not None else None)
        for performer in references(resource.get("performer")):
            if isinstance(performer.get("display"), str):
                ctx.observer = performer["display"].strip()
                break
        if report is not None:
            ctx.report_id = self._identity(report)
        return ctx

    def _part(self, entry: Entry, report: Entry | None) -> _Part | None:
        resource = entry.resource
        codes = fhir_codes.codes_of(resource.get("code"), self.notes)
        meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
        why = fhir_codes.set_aside_reason(codes, list(many(meta.get("profile"))))
        if why:
            self.set_aside.append(f"{why}: {self._name(entry)}")
            return None
        warnings: list[str] = []
        part = _Part(self._identity(entry), self._context(entry, report, warnings),
                     read_lesion_identity(entry, self.found, self.notes), warnings=warnings)
        self._read_site(entry, part)
        part.method = fhir_codes.first_code(resource.get("method"), self.notes)
        members = [self.found.resolve(r, entry) for r in references(resource.get("hasMember"))]
        members = [m for m in members if m is not None and m.type == "Observation"]
        categories = [c for cat in many(resource.get("category")) for c in fhir_codes.codes_of(cat, self.notes)]
        is_group = bool(resource.get("hasMember")) or any(
            fhir_codes.is_in(c, "measurement_group") for c in categories + codes)
        if is_group:
            self._read_group(entry, members, codes, part)
        elif self._is_tumor_size(resource, codes, meta):
            self._read_tumor_size(entry, codes, part)
        else:
            self._read_observation(entry, part, standalone=True)
        if not (part.measurements or part.role or part.response or part.qualitative or part.finding):
            name = self._name(entry)
            if not part.warnings and not any(s.startswith(name) for s in self.skipped):
                self._skip(f"{name} holds no measurement or evaluation")
            for warning in part.warnings:
                self._skip(warning)
            return None
        return part

    def _is_tumor_size(self, resource: dict, codes: list[Code], meta: dict) -> bool:
        """mCODE TumorSize by profile, or 21889-1 with dimensions in components (a plain 21889-1 carries
        its size in valueQuantity and is read as a plain size Observation)."""
        key = fhir_codes.key_of("tumor_size")
        profile = fhir_codes.table()["tumor_size_profile"]
        if any(str(p).split("|")[0] == profile for p in many(meta.get("profile"))):
            return True
        return any((c.scheme, c.value) == key for c in codes) and bool(resource.get("component"))

    def _read_site(self, entry: Entry, part: _Part) -> None:
        site = fhir_codes.first_code(entry.resource.get("bodySite"), self.notes)
        identity = part.identity
        if site is None:
            return
        if identity.site is None:
            identity.site = site
        elif identity.site != site:
            part.warnings.append(f"{self._name(entry)}: bodySite {site} differs from its BodyStructure's "
                                 f"location {identity.site}; the BodyStructure is used")

    def _read_group(self, entry: Entry, members: list[Entry], codes: list[Code], part: _Part) -> None:
        """HL7 DICOM-SR IG ImagingMeasurementGroup: value = Finding, hasMember = measurements/evaluations."""
        resource = entry.resource
        part.finding = fhir_codes.first_code(resource.get("valueCodeableConcept"), self.notes)
        category = next((c for c in codes if not fhir_codes.is_in(c, "measurement_group")), None)
        part.category = category
        ignored = set(fhir_codes.table()["ignored_statuses"])
        for member in members:
            if text(member.resource.get("status")) in ignored:
                part.warnings.append(f"{self._name(member)} is {member.resource.get('status')}; ignored")
                continue
            identity = read_lesion_identity(member, self.found, self.notes)
            part.identity.merge(identity)
            if part.identity.site is None:
                part.identity.site = fhir_codes.first_code(member.resource.get("bodySite"), self.notes)
            self._read_observation(member, part, standalone=False)

    def _read_tumor_size(self, entry: Entry, codes: list[Code], part: _Part) -> None:
        """mCODE TumorSize: components 33728-7 (longest) and 33729-5 (others, largest first)."""
        resource = entry.resource
        if not resource.get("focus"):
            if resource.get("specimen"):
                part.warnings.append(f"{self._name(entry)} is a TumorSize of an excised specimen, not of a tumour "
                                     "in the body; skipped")
                return
            part.warnings.append(f"{self._name(entry)} is a TumorSize without focus (mCODE requires the Tumor "
                                 "it measures): its lesion identity is unknown")
        part.finding = part.finding or part.identity.morphology
        seen_additional = False
        for index, component in enumerate(many(resource.get("component")), start=1):
            if not isinstance(component, dict):
                continue
            comp_codes = fhir_codes.codes_of(component.get("code"), self.notes)
            if self._identity_component(comp_codes, component, part):
                continue
            found = fhir_codes.size_rule(comp_codes)
            where = f"{self._name(entry)} component {index}"
            if found is None:
                concept = comp_codes[0] if comp_codes else Code("", "")
                self._quantity(component, concept, tables.ConceptRule(MeasurementKind.OTHER, None), where,
                               self._identity(entry), part)
                continue
            concept, rule = found
            if fhir_codes.is_additional_dimension(concept):
                if seen_additional:
                    rule = tables.ConceptRule(fhir_codes.additional_dimension_kind(), rule.dimension)
                seen_additional = True
            self._quantity(component, concept, rule, where, self._identity(entry), part, method=part.method)
        if "valueQuantity" in resource and not resource.get("component"):
            concept, rule = fhir_codes.size_rule(codes)
            self._quantity(resource, concept, rule, self._name(entry), self._identity(entry), part,
                           method=part.method)
        elif not resource.get("component"):
            part.warnings.append(f"{self._name(entry)} is a TumorSize without any dimension; skipped")

    def _identity_component(self, codes: list[Code], component: dict, part: _Part) -> bool:
        spec = fhir_codes.table()["identity_components"]
        keys = {(c.scheme, c.value) for c in codes}
        text = component.get("valueString")
        if not isinstance(text, str):
            text = fhir_codes.text_of(component.get("valueCodeableConcept"))
        if (spec["tracking_uid"]["scheme"], spec["tracking_uid"]["code"]) in keys:
            if text:
                part.identity.set_uid(text)
            return True
        if (spec["tracking_identifier"]["scheme"], spec["tracking_identifier"]["code"]) in keys:
            if text:
                part.identity.set_identifier(text)
            return True
        return False

    def _read_observation(self, entry: Entry, part: _Part, *, standalone: bool) -> None:
        """A single measurement or qualitative evaluation (standalone, or a member of a group)."""
        resource = entry.resource
        codes = fhir_codes.codes_of(resource.get("code"), self.notes)
        concept = codes[0] if codes else None
        name = self._name(entry)
        method = fhir_codes.first_code(resource.get("method"), self.notes) or part.method
        if concept is None:
            part.warnings.append(f"{name} has no coded concept; skipped")
            return
        identity = self._identity(entry)
        size = fhir_codes.size_rule(codes)
        for component in many(resource.get("component")):  # tracking ids carried as components
            if isinstance(component, dict):
                self._identity_component(fhir_codes.codes_of(component.get("code"), self.notes), component, part)
        if "valueQuantity" in resource:
            if standalone and size is None and not self._about_a_lesion(part, resource):
                self._skip(f"{name} ({concept.meaning or concept.value}) is not a lesion measurement; skipped")
                return
            sized_concept, rule = size or (concept, tables.concept_rule(concept))
            self._quantity(resource, sized_concept, rule, name, identity, part, method=method)
            return
        if "valueCodeableConcept" in resource or "valueString" in resource:
            self._evaluation(entry, concept, part, standalone)
            return
        components = [c for c in many(resource.get("component")) if isinstance(c, dict)]
        if components and (size is not None or self._about_a_lesion(part, resource) or not standalone):
            for index, component in enumerate(components, start=1):
                comp_codes = fhir_codes.codes_of(component.get("code"), self.notes)
                if self._identity_component(comp_codes, component, part):
                    continue
                comp_size = fhir_codes.size_rule(comp_codes)
                if comp_size is not None:
                    self._quantity(component, *comp_size, f"{name} component {index}", identity, part, method=method)
                elif size is not None:
                    self._quantity(component, *size, f"{name} component {index}", identity, part, method=method)
                else:  # e.g. Mean / Minimum of an attenuation: derivations of the Observation's concept
                    rule = tables.concept_rule(concept)
                    self._quantity(component, concept, rule, f"{name} component {index}", identity, part,
                                   method=method, derivation=comp_codes[0] if comp_codes else None)
            return
        if standalone and size is None and not self._about_a_lesion(part, resource):
            self._skip(f"{name} ({concept.meaning or concept.value}) is not a lesion observation; skipped")
            return
        absent = fhir_codes.first_code(resource.get("dataAbsentReason"), self.notes)
        why = f" (dataAbsentReason {absent.meaning or absent.value})" if absent else ""
        part.warnings.append(f"{name} ({concept.meaning or concept.value}) has no value{why}; skipped")

    def _about_a_lesion(self, part: _Part, resource: dict) -> bool:
        identity = part.identity
        return bool(identity.tokens or identity.tracking_identifier or resource.get("bodySite"))

    def _evaluation(self, entry: Entry, concept: Code, part: _Part, standalone: bool) -> None:
        resource = entry.resource
        value: Code | str | None = fhir_codes.first_code(resource.get("valueCodeableConcept"), self.notes)
        if value is None:
            value = fhir_codes.text_of(resource.get("valueCodeableConcept")) or text(resource.get("valueString"))
        if (concept.scheme, concept.value) == fhir_codes.key_of("baseline_category"):
            role = fhir_codes.role_of(value if isinstance(value, Code) else None)
            if role is None:
                part.warnings.append(f"{self._name(entry)}: Baseline Category value {value} is not one of CID 6145; "
                                     "role left unset")
            part.role = part.role or role
            return
        if (concept.scheme, concept.value) == fhir_codes.key_of("current_response"):
            if isinstance(value, Code):
                part.response = part.response or value
            return
        if standalone and not self._about_a_lesion(part, resource):
            self._skip(f"{self._name(entry)} ({concept.meaning or concept.value}) is not about a lesion; skipped")
            return
        if value:
            part.qualitative.append(Qualitative(concept, value))

    # --- quantities ----------------------------------------------------------------------------------

    def _quantity(self, holder: dict, concept: Code, rule: tables.ConceptRule, where: str, obs_id: str,
                  part: _Part, *, method: Code | None = None, derivation: Code | None = None) -> None:
        quantity = holder.get("valueQuantity")
        what = concept.meaning or concept.value
        if not isinstance(quantity, dict) or quantity.get("value") is None:
            part.warnings.append(f"{where} ({what}) has no value; skipped")
            return
        raw = quantity["value"]
        number = Decimal(raw) if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool) else None
        if number is None or not number.is_finite():
            part.warnings.append(f"{where} ({what}) has no finite number ({raw!r}); skipped")
            return
        unit_text = str(quantity.get("code") or quantity.get("unit") or "").strip()
        system = text(quantity.get("system"))
        if system and system not in UCUM_SYSTEMS and unit_text:
            part.warnings.append(f"{where}: unit {unit_text!r} is coded in {system}, not UCUM; read as the UCUM unit "
                                 "of that name")
        elif system == "UCUM":
            self.notes.append(SystemNote("UCUM", "is not a URI (non-conformant FHIR); read as UCUM"))
        unit = Code(unit_text, "UCUM", str(quantity.get("unit") or "").strip()) if unit_text else None
        kind, value, unit_code, quarantined = self._normalise(rule, number, unit_text, what, where, part)
        comparator = quantity.get("comparator")
        if comparator and quarantined is None and value is not None:
            quarantined = f"the value is a bound ({comparator} {raw}), not a measurement"
            part.warnings.append(f"{where}: {what} {comparator}{raw} quarantined: {quarantined}")
            value = None
        part.measurements.append(Measurement(
            kind=kind, concept=concept, value=value, unit=unit_code, original_value=str(raw),
            original_unit=unit, derivation=derivation, method=method, quarantined=quarantined,
            provenance=Provenance(observation_uid=obs_id),
        ))

    def _normalise(self, rule: tables.ConceptRule, number: Decimal, unit_text: str, what: str, where: str,
                   part: _Part):
        """Kind from concept and unit dimension; value converted to mm / mm2 / mm3 when it is a size."""
        unit_rule = tables.unit_rule(unit_text)
        if rule.dimension is None:
            if unit_rule.dimension:
                return MeasurementKind.OTHER, number * unit_rule.factor, unit_rule.canonical, None
            return MeasurementKind.OTHER, number, unit_text or None, None
        if unit_rule.dimension is None:
            reason = (f"unit {unit_text!r} is not a calibrated {rule.dimension} (UCUM mm, cm, m or um)"
                      if unit_text else f"no unit given for a {rule.dimension}")
            part.warnings.append(f"{where}: {what} {number} quarantined: {reason}")
            return rule.kind, None, unit_text or None, reason
        kind = rule.kind
        if unit_rule.dimension != rule.dimension:
            kind = MeasurementKind(unit_rule.dimension)
            part.warnings.append(f"{where}: {what} is coded as a {rule.dimension} but its unit {unit_text!r} "
                                 f"measures {unit_rule.dimension}; read as {kind.value}")
        return kind, number * unit_rule.factor, unit_rule.canonical, None

    # --- parts -> findings -> reports ---------------------------------------------------------------

    def _reports(self, parts: list[_Part]) -> list[Report]:
        groups: dict[tuple, list[_Part]] = defaultdict(list)
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

    def _report(self, parts: list[_Part], suffix: str | None, n_patients: int) -> Report:
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

    def _source_id(self, parts: list[_Part], suffix: str | None) -> str:
        report_ids = {p.context.report_id for p in parts}
        if len(report_ids) == 1 and None not in report_ids:
            return report_ids.pop()
        sources = list(dict.fromkeys(p.source for p in parts))
        if len(sources) == 1:
            return sources[0]
        base = self.found.container_id or f"sha256:{self.found.digest[:16]}"
        return f"{base}#{suffix}" if suffix else base

    def _finding(self, parts: list[_Part], warnings: list[str]) -> Finding:
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


def _lesions(parts: list[_Part]) -> list[list[_Part]]:
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
    grouped: dict[int, list[_Part]] = defaultdict(list)
    for index, part in enumerate(parts):
        grouped[root(index)].append(part)
    return [grouped[k] for k in sorted(grouped)]

