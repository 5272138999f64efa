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

from .. import tables
from ..errors import InputError
from ..model import Code, MeasurementKind, Qualitative, Report
from . import fhir_codes
from .fhir_codes import SystemNote, many, text
from .fhir_context import (
    UID_SYSTEM,
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
from .fhir_load import Entry, FhirInput, describe, load
from .fhir_quantity import read_quantity
from .fhir_report import Context, Part, ReportBuilder
from .limits import DEFAULT_LIMITS, ReadLimits

MALFORMED = "has FHIR content of an unexpected shape that cannot be read"


def read_fhir(source: str | os.PathLike | bytes | dict | list, *, name: str | None = None,
              limits: ReadLimits = DEFAULT_LIMITS) -> list[Report]:
    """Read a FHIR resource, Bundle or NDJSON (path, bytes, JSON text, dict or list) into Reports.

    One Report per patient per imaging study. Raises `InputError` (one line: what the input is and why it
    cannot be used) when it holds no usable lesion observation or exceeds `limits` (JSON depth, array
    size); never another exception for bad input.
    """
    label = name or describe(source)
    found = load(source, label, limits)
    try:
        return _Reader(found).read()
    except InputError:
        raise
    except (RecursionError, MemoryError):
        raise InputError(label, "is nested too deeply or too large to read") from None
    except (TypeError, AttributeError, KeyError, ValueError, ArithmeticError) as exc:  # last line of defence
        raise InputError(label, f"{MALFORMED} ({type(exc).__name__}: {str(exc)[:120]})") from None


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
        parts: list[Part] = []
        for entry in observations:
            if id(entry.resource) in members:
                continue
            part = self._part(entry, reports_of.get(id(entry.resource)))
            if part is not None:
                part.predecessors += predecessors.get(id(entry.resource), [])
                parts.append(part)
        if not parts:
            raise InputError(found.label, self._nothing_usable())
        return ReportBuilder(found, self.notes, self.skipped, self.set_aside).reports(parts)

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

    def _context(self, entry: Entry, report: Entry | None, warnings: list[str]) -> Context:
        resource = entry.resource
        found = self.found
        ctx = Context(status=text(resource.get("status")))
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

    def _part(self, entry: Entry, report: Entry | None) -> Part | None:
        resource = entry.resource
        codes = fhir_codes.codes_of(resource.get("code"), self.notes)
        meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
        why = fhir_codes.set_aside_reason(codes, list(many(meta.get("profile"))))
        if why:
            self.set_aside.append(f"{why}: {self._name(entry)}")
            return None
        warnings: list[str] = []
        part = Part(self._identity(entry), self._context(entry, report, warnings),
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

    def _read_site(self, entry: Entry, part: Part) -> None:
        site = fhir_codes.first_code(entry.resource.get("bodySite"), self.notes)
        identity = part.identity
        if site is None:
            return
        if identity.site is None:
            identity.site = site
        elif identity.site != site:
            part.warnings.append(f"{self._name(entry)}: bodySite {site} differs from its BodyStructure's "
                                 f"location {identity.site}; the BodyStructure is used")

    def _read_group(self, entry: Entry, members: list[Entry], codes: list[Code], part: Part) -> None:
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

    def _read_tumor_size(self, entry: Entry, codes: list[Code], part: Part) -> None:
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
                self._measure(part, component, concept, tables.ConceptRule(MeasurementKind.OTHER, None), where,
                              self._identity(entry))
                continue
            concept, rule = found
            if fhir_codes.is_additional_dimension(concept):
                if seen_additional:
                    rule = tables.ConceptRule(fhir_codes.additional_dimension_kind(), rule.dimension)
                seen_additional = True
            self._measure(part, component, concept, rule, where, self._identity(entry), method=part.method)
        if "valueQuantity" in resource and not resource.get("component"):
            concept, rule = fhir_codes.size_rule(codes) or fhir_codes.size_rule([Code("21889-1", "LN", "Size Tumor")])
            self._measure(part, resource, concept, rule, self._name(entry), self._identity(entry), method=part.method)
        elif not resource.get("component"):
            part.warnings.append(f"{self._name(entry)} is a TumorSize without any dimension; skipped")

    def _identity_component(self, codes: list[Code], component: dict, part: Part) -> bool:
        spec = fhir_codes.table()["identity_components"]
        keys = {(c.scheme, c.value) for c in codes}
        written = component.get("valueString")
        if not isinstance(written, str):
            written = fhir_codes.text_of(component.get("valueCodeableConcept"))
        if (spec["tracking_uid"]["scheme"], spec["tracking_uid"]["code"]) in keys:
            if written:
                part.identity.set_uid(written)
            return True
        if (spec["tracking_identifier"]["scheme"], spec["tracking_identifier"]["code"]) in keys:
            if written:
                part.identity.set_identifier(written)
            return True
        return False

    def _read_observation(self, entry: Entry, part: Part, *, standalone: bool) -> None:
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
            self._measure(part, resource, sized_concept, rule, name, identity, method=method)
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
                    self._measure(part, component, *comp_size, f"{name} component {index}", identity, method=method)
                elif size is not None:
                    self._measure(part, component, *size, f"{name} component {index}", identity, method=method)
                else:  # e.g. Mean / Minimum of an attenuation: derivations of the Observation's concept
                    rule = tables.concept_rule(concept)
                    self._measure(part, component, concept, rule, f"{name} component {index}", identity,
                                  method=method, derivation=comp_codes[0] if comp_codes else None)
            return
        if standalone and size is None and not self._about_a_lesion(part, resource):
            self._skip(f"{name} ({concept.meaning or concept.value}) is not a lesion observation; skipped")
            return
        absent = fhir_codes.first_code(resource.get("dataAbsentReason"), self.notes)
        why = f" (dataAbsentReason {absent.meaning or absent.value})" if absent else ""
        part.warnings.append(f"{name} ({concept.meaning or concept.value}) has no value{why}; skipped")

    def _about_a_lesion(self, part: Part, resource: dict) -> bool:
        identity = part.identity
        return bool(identity.tokens or identity.tracking_identifier or resource.get("bodySite"))

    def _evaluation(self, entry: Entry, concept: Code, part: Part, standalone: bool) -> None:
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

    def _measure(self, part: Part, holder: dict, concept: Code, rule: tables.ConceptRule, where: str, obs_id: str,
                 **kwargs) -> None:
        measurement = read_quantity(holder, concept, rule, where, obs_id, part.warnings, self.notes, **kwargs)
        if measurement is not None:
            part.measurements.append(measurement)
