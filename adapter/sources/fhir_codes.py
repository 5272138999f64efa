"""FHIR codings -> the `Code`s the rest of the pipeline knows (mappings/fhir.yaml).

A FHIR Coding names its system by URI; the tables in mappings/ use DICOM coding scheme designators
(SCT, DCM, LN, UCUM). Translating once, here, lets an SR finding site and a FHIR bodySite compare equal
and lets the same measurement and anatomy tables serve both sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from .. import tables
from ..model import Code, MeasurementKind, Role


def many(value: object) -> list:
    """A FHIR list element as a list, whatever a producer wrote (a lone object counts as one item)."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def text(value: object) -> str | None:
    """A FHIR string element, stripped; None for anything else or empty."""
    return value.strip() or None if isinstance(value, str) else None


@cache
def table() -> dict:
    text = resources.files("adapter.mappings").joinpath("fhir.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _key(entry: dict) -> tuple[str, str]:
    return entry["scheme"], str(entry["code"])


@cache
def _keys(name: str) -> frozenset[tuple[str, str]]:
    entries = table()[name]
    return frozenset(_key(e) for e in (entries if isinstance(entries, list) else [entries]))


def key_of(name: str) -> tuple[str, str]:
    """A single (scheme, code) entry of the table, e.g. key_of("tumor_size") -> ("LN", "21889-1")."""
    return _key(table()[name])


def is_in(code: Code | None, name: str) -> bool:
    return code is not None and (code.scheme, code.value) in _keys(name)


@dataclass(frozen=True, slots=True)
class SystemNote:
    """Why a coding system was read the way it was (the caller turns it into a warning)."""

    system: str
    reason: str


def scheme_of(system: str | None) -> tuple[str, SystemNote | None]:
    """Coding.system -> scheme designator, with a note when the system is not a URI."""
    data = table()
    if not isinstance(system, str) or not system.strip():
        return "", None
    system = system.strip()
    known = data["code_systems"].get(system)
    if known:
        return known, None
    if ":" in system:  # a URI or URN we have no designator for: keep it as the scheme
        return system, None
    bare = {b.upper(): b for b in data["bare_designators"]}
    if system.upper() in bare:
        return bare[system.upper()], SystemNote(system, "is not a URI (non-conformant FHIR); read as the DICOM "
                                                        "coding scheme of that name")
    return system, SystemNote(system, "is not a URI (non-conformant FHIR) and names no known coding scheme")


def code_from_coding(coding: dict, notes: list[SystemNote]) -> Code | None:
    """One FHIR Coding -> Code (legacy SRT translated to SCT); None without a code."""
    if not isinstance(coding, dict):
        return None
    value = coding.get("code")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
        return None
    scheme, note = scheme_of(coding.get("system"))
    if note and note not in notes:
        notes.append(note)
    code = Code(str(value).strip(), scheme, text(coding.get("display")) or "")
    return tables.normalise_code(code)


def codes_of(concept: object, notes: list[SystemNote]) -> list[Code]:
    """All codings of a CodeableConcept (or a bare Coding, as R4 ImagingStudy.modality is)."""
    if not isinstance(concept, dict):
        return []
    codings = many(concept.get("coding")) if "coding" in concept else [concept]
    out = []
    for coding in codings:
        code = code_from_coding(coding, notes)
        if code is not None:
            out.append(code)
    return out


def first_code(concept: object, notes: list[SystemNote]) -> Code | None:
    codes = codes_of(concept, notes)
    return codes[0] if codes else None


def text_of(concept: object) -> str | None:
    return text(concept.get("text")) if isinstance(concept, dict) else None


# --- measurement concepts ----------------------------------------------------------------------------


@cache
def _size_rules() -> dict[tuple[str, str], tables.ConceptRule]:
    return {
        _key(e): tables.ConceptRule(MeasurementKind(e["kind"]), e["dimension"]) for e in table()["size_concepts"]
    }


def size_rule(codes: list[Code]) -> tuple[Code, tables.ConceptRule] | None:
    """The first coding that names a size concept (LOINC here, SNOMED/DICOM in measurements.yaml)."""
    for code in codes:
        rule = _size_rules().get((code.scheme, code.value))
        if rule is not None:
            return code, rule
    for code in codes:
        rule = tables.concept_rule(code)
        if rule.dimension is not None:
            return code, rule
    return None


def additional_dimension_kind() -> MeasurementKind:
    return MeasurementKind(table()["additional_dimension_after_first"])


def is_additional_dimension(code: Code) -> bool:
    return (code.scheme, code.value) == ("LN", "33729-5")


# --- roles, set-aside observations ------------------------------------------------------------------


@cache
def _roles() -> dict[tuple[str, str], Role]:
    return {_key(e): Role(e["role"]) for e in table()["roles"]}


def role_of(value: Code | None) -> Role | None:
    return _roles().get((value.scheme, value.value)) if value else None


def set_aside_reason(codes: list[Code], profiles: list[str]) -> str | None:
    """Why an Observation is read but not used (mCODE CancerDiseaseStatus), or None."""
    for entry in table()["set_aside"]:
        if any((c.scheme, c.value) == _key(entry) for c in codes):
            return entry["why"]
    for profile in profiles:
        why = table()["set_aside_profiles"].get(str(profile).split("|")[0])
        if why:
            return why
    return None


@cache
def resource_types() -> frozenset[str]:
    return frozenset(table()["resource_types"])
