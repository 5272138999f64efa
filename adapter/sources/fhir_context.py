"""Who, which study, when and which lesion: the context an Observation points to.

Patient (subject), imaging study (partOf / derivedFrom / a DiagnosticReport's study), date (effective[x],
then issued) and the lesion's BodyStructure (R5 `bodyStructure`, R4 `focus` or the core bodySite
extension) each arrive in several forms; this module reads all of them into plain values. References
that point outside the input are kept as references.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..model import Code
from . import fhir_codes
from .fhir_codes import SystemNote, many, text
from .fhir_load import Entry, FhirInput

UID_SYSTEM = "urn:dicom:uid"
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_TIME = re.compile(r"T(\d{2}):(\d{2})(?::(\d{2}))?")


def strip_oid(value: str) -> str:
    value = value.strip()
    return value[len("urn:oid:"):] if value.lower().startswith("urn:oid:") else value


def references(value: object) -> list[dict]:
    """A Reference or a list of them (or an R5 CodeableReference) -> a list of Reference dicts."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(item["reference"] if isinstance(item.get("reference"), dict) else item)
    return out


def ref_type(reference: dict, resolved: Entry | None) -> str | None:
    if resolved is not None:
        return resolved.type
    if isinstance(reference.get("type"), str):
        return reference["type"]
    text = reference.get("reference")
    if isinstance(text, str):
        match = re.search(r"(?:^|/)([A-Z][A-Za-z]+)/[^/]+$", text.split("/_history/")[0])
        if match:
            return match.group(1)
    return None


# --- patient -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRef:
    patient_id: str | None
    issuer: str | None
    note: str | None = None  # why the patient is only partly known


def _issuer(identifier: dict) -> str | None:
    """The assigning authority: assigner (as DICOM Issuer of Patient ID names it), else the system."""
    assigner = identifier.get("assigner")
    if isinstance(assigner, dict):
        inner = assigner.get("identifier")
        if isinstance(inner, dict) and inner.get("value"):
            return str(inner["value"]).strip()
        if assigner.get("display"):
            return str(assigner["display"]).strip()
    system = identifier.get("system")
    return strip_oid(system) or None if isinstance(system, str) and system.strip() else None


def _best_identifier(identifiers: object) -> dict | None:
    candidates = [i for i in many(identifiers) if isinstance(i, dict) and str(i.get("value") or "").strip()]
    for ident in candidates:
        codings = many(ident["type"].get("coding")) if isinstance(ident.get("type"), dict) else []
        if any(isinstance(c, dict) and c.get("code") == "MR" for c in codings):
            return ident
    for use in ("official", "usual"):
        for ident in candidates:
            if ident.get("use") == use:
                return ident
    return candidates[0] if candidates else None


def patient_of(subject: object, context: Entry, found: FhirInput) -> PatientRef | None:
    if not isinstance(subject, dict):
        return None
    resolved = found.resolve(subject, context)
    if resolved is not None and resolved.type == "Patient":
        ident = _best_identifier(resolved.resource.get("identifier"))
        if ident:
            return PatientRef(str(ident["value"]).strip(), _issuer(ident))
        ref = resolved.reference() or subject.get("reference")
        return PatientRef(ref, None, f"Patient {ref} has no identifier; its FHIR reference is used as the id")
    if resolved is not None and resolved.type != "Patient":
        return PatientRef(None, None, f"the subject is a {resolved.type}, not a Patient")
    ident = subject.get("identifier")
    if isinstance(ident, dict) and str(ident.get("value") or "").strip():
        return PatientRef(str(ident["value"]).strip(), _issuer(ident))
    ref = subject.get("reference")
    if isinstance(ref, str) and ref.strip():
        return PatientRef(ref.strip(), None, f"patient {ref.strip()} is not in the input and has no identifier; "
                                             "its reference is used as the id")
    return None


# --- study, accession, dates -------------------------------------------------------------------------


def study_of_resource(entry: Entry, found: FhirInput) -> str | None:
    """Study Instance UID of a resolved ImagingStudy (identifier urn:dicom:uid, or STU3 `uid`) or
    ImagingSelection (R5 `studyUid`, or the ImagingStudy it derives from)."""
    resource = entry.resource
    if entry.type == "ImagingStudy":
        for ident in many(resource.get("identifier")):
            if isinstance(ident, dict) and ident.get("system") == UID_SYSTEM and ident.get("value"):
                return strip_oid(str(ident["value"]))
        if isinstance(resource.get("uid"), str):
            return strip_oid(resource["uid"])
    if entry.type == "ImagingSelection":
        if isinstance(resource.get("studyUid"), str):
            return strip_oid(resource["studyUid"])
        for ref in references(resource.get("derivedFrom")):
            target = found.resolve(ref, entry)
            if target is not None and target.type == "ImagingStudy":
                return study_of_resource(target, found)
            uid = _logical_study(ref)
            if uid:
                return uid
    return None


def _logical_study(reference: dict) -> str | None:
    ident = reference.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == UID_SYSTEM and ident.get("value"):
        if reference.get("type") in (None, "ImagingStudy"):
            return strip_oid(str(ident["value"]))
    return None


def studies_of(observation: Entry, found: FhirInput, keys=("partOf", "derivedFrom")) -> list[str]:
    uids: list[str] = []
    for key in keys:
        for ref in references(observation.resource.get(key)):
            target = found.resolve(ref, observation)
            uid = study_of_resource(target, found) if target is not None else _logical_study(ref)
            if uid and uid not in uids:
                uids.append(uid)
    return uids


def imaging_study_started(observation: Entry, found: FhirInput, keys) -> str | None:
    for key in keys:
        for ref in references(observation.resource.get(key)):
            target = found.resolve(ref, observation)
            if target is not None and target.type == "ImagingStudy":
                started = target.resource.get("started")
                if isinstance(started, str):
                    return started
    return None


def accession_of(resource: dict, context: Entry, found: FhirInput) -> str | None:
    for ref in references(resource.get("basedOn")):
        target = found.resolve(ref, context)
        idents = target.resource.get("identifier") if target is not None else [ref.get("identifier")]
        for ident in idents or ():
            if isinstance(ident, dict) and ident.get("value"):
                codings = many(ident["type"].get("coding")) if isinstance(ident.get("type"), dict) else []
                if any(isinstance(c, dict) and c.get("code") == "ACSN" for c in codings):
                    return str(ident["value"]).strip()
    return None


def parse_date(text: object) -> tuple[dt.date | None, dt.time | None]:
    """A FHIR date/dateTime/instant as written (its own local date; no time-zone shift)."""
    if not isinstance(text, str):
        return None, None
    text = text.strip()
    match = _DATE.match(text)
    if not match or not match.group(3):
        return None, None
    try:
        date = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None, None
    tm = _TIME.search(text) or re.search(r" (\d{2}):(\d{2})(?::(\d{2}))?", text)
    time = None
    if tm:
        try:
            time = dt.time(int(tm.group(1)), int(tm.group(2)), min(int(tm.group(3) or 0), 59))
        except ValueError:
            time = None
    return date, time


def effective_of(resource: dict) -> str | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(resource.get(key), str):
            return resource[key]
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return period["start"]
    timing = resource.get("effectiveTiming")
    if isinstance(timing, dict) and timing.get("event"):
        return timing["event"][0]
    return None


# --- the lesion (BodyStructure) ----------------------------------------------------------------------


@dataclass
class LesionIdentity:
    """What identifies a lesion and where it is, gathered from every reference an Observation makes."""

    tracking_uid: str | None = None
    tracking_identifier: str | None = None
    body_structure_ids: list[str] = field(default_factory=list)
    tokens: set = field(default_factory=set)  # internal keys that tie Observations of one lesion together
    label: str | None = None
    site: Code | None = None
    laterality: Code | None = None
    topographical_modifier: Code | None = None
    morphology: Code | None = None
    notes: list[str] = field(default_factory=list)

    def add_body_id(self, token: str) -> None:
        if token not in self.body_structure_ids:
            self.body_structure_ids.append(token)
        self.tokens.add(("body", token))

    def set_uid(self, uid: str) -> None:
        uid = strip_oid(uid)
        if self.tracking_uid is None:
            self.tracking_uid = uid
        elif uid != self.tracking_uid:
            self.notes.append(f"two Tracking UIDs for one lesion ({self.tracking_uid}, {uid}); the first is used")
        self.tokens.add(("uid", uid))

    def set_identifier(self, text: str) -> None:
        if self.tracking_identifier is None:
            self.tracking_identifier = text.strip()

    def merge(self, other: "LesionIdentity") -> None:
        if other.tracking_uid:
            self.set_uid(other.tracking_uid)
        if other.tracking_identifier:
            self.set_identifier(other.tracking_identifier)
        for token in other.body_structure_ids:
            self.add_body_id(token)
        self.tokens |= other.tokens
        for name in ("label", "site", "laterality", "topographical_modifier", "morphology"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        self.notes += [n for n in other.notes if n not in self.notes]


def _identifier_token(ident: dict) -> str:
    system = ident.get("system")
    value = str(ident["value"]).strip()
    return f"{system}|{value}" if isinstance(system, str) and system else value


def read_identifiers(identifiers: object, identity: LesionIdentity, notes: list[SystemNote]) -> None:
    """BodyStructure identifiers: DICOM tracking identifier / UID by type (or dsr2fhir's system), any
    other (mCODE Tumor's bodyStructureIdentifier, a local tag) as a body-structure identifier."""
    table = fhir_codes.table()
    for ident in many(identifiers):
        if not isinstance(ident, dict) or not text(str(ident.get("value") or "")):
            continue
        types = fhir_codes.codes_of(ident.get("type"), notes)
        value = str(ident["value"]).strip()
        if any(fhir_codes.is_in(t, "tracking_uid_types") for t in types) or (
            not types and ident.get("system") == UID_SYSTEM
        ):
            identity.set_uid(value)
        elif any(fhir_codes.is_in(t, "tracking_identifier_types") for t in types) or (
            ident.get("system") in table["tracking_identifier_systems"]
        ):
            identity.set_identifier(value)
        else:
            identity.add_body_id(_identifier_token(ident))


def read_body_structure(entry: Entry, identity: LesionIdentity, notes: list[SystemNote]) -> None:
    """A resolved BodyStructure: its identifiers and its location, R4 (location + locationQualifier) or R5
    (includedStructure)."""
    resource = entry.resource
    table = fhir_codes.table()
    ref = entry.reference()
    if ref:
        identity.add_body_id(ref)
    identity.tokens.add(("resource", entry.top.where, entry.where))
    read_identifiers(resource.get("identifier"), identity, notes)
    if identity.label is None and isinstance(resource.get("description"), str) and resource["description"].strip():
        identity.label = resource["description"].strip()
    identity.morphology = identity.morphology or fhir_codes.first_code(resource.get("morphology"), notes)
    # R4 / R4B: location + locationQualifier (laterality lives among the qualifiers)
    site = fhir_codes.first_code(resource.get("location"), notes)
    qualifiers = [q for c in many(resource.get("locationQualifier")) for q in fhir_codes.codes_of(c, notes)]
    # R5: includedStructure[].structure / laterality / qualifier
    for included in many(resource.get("includedStructure")):
        if isinstance(included, dict):
            site = site or fhir_codes.first_code(included.get("structure"), notes)
            lat = fhir_codes.first_code(included.get("laterality"), notes)
            identity.laterality = identity.laterality or lat
            qualifiers += [q for c in many(included.get("qualifier")) for q in fhir_codes.codes_of(c, notes)]
            break
    identity.site = identity.site or site
    for qualifier in qualifiers:
        if qualifier.scheme == "SCT" and qualifier.value in table["laterality_codes"]:
            identity.laterality = identity.laterality or qualifier
        else:
            identity.topographical_modifier = identity.topographical_modifier or qualifier


def lesion_references(resource: dict) -> list[dict]:
    """Every reference by which an Observation can name its lesion, in order of authority."""
    refs = references(resource.get("bodyStructure"))  # R5 (DICOM-SR IG)
    refs += references(resource.get("focus"))  # mCODE TumorSize; the IG's older form
    url = fhir_codes.table()["body_site_extension"]
    holders = [resource, resource.get("bodySite") if isinstance(resource.get("bodySite"), dict) else {}]
    for holder in holders:
        for ext in many(holder.get("extension")):
            if isinstance(ext, dict) and ext.get("url") == url:
                refs += references(ext.get("valueReference"))
    return refs


def read_lesion_identity(observation: Entry, found: FhirInput, notes: list[SystemNote]) -> LesionIdentity:
    identity = LesionIdentity()
    for ref in lesion_references(observation.resource):
        target = found.resolve(ref, observation)
        kind = ref_type(ref, target)
        if target is not None and kind == "BodyStructure":
            read_body_structure(target, identity, notes)
        elif kind == "BodyStructure" or (kind is None and isinstance(ref.get("identifier"), dict)):
            text = ref.get("reference")
            if isinstance(text, str) and text.strip():
                identity.add_body_id(text.strip().split("/_history/")[0])  # not in the input: kept as a reference
            read_identifiers(ref.get("identifier"), identity, notes)  # a logical reference
    return identity
