"""Lookups over the code tables in `mappings/` (loaded once, read-only).

Everything vendor- or standard-specific that a site may need to extend lives in the YAML files; this
module only indexes them. Legacy SRT codes are translated to SCT through pydicom's table (generated from
DICOM PS3.16) before any lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from importlib import resources

import yaml

from .model import Anatomy, Code, IdentifierKind, MeasurementKind


@cache
def _load(name: str) -> dict:
    text = resources.files("adapter.mappings").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


# --- codes -------------------------------------------------------------------------------------------


@cache
def _srt_to_sct() -> dict[str, str]:
    from pydicom.sr._snomed_dict import mapping

    return mapping["SRT"]


@cache
def _sct_by_meaning() -> dict[str, str]:
    """SCT codes indexed by lower-case meaning, for SRT codes missing from the SRT->SCT table."""
    from pydicom.sr._concepts_dict import concepts

    index: dict[str, str] = {}
    for entry in concepts["SCT"].values():
        for value, (meaning, _cids) in entry.items():
            index.setdefault(meaning.strip().lower(), value)
    return index


def normalise_code(code: Code) -> Code:
    """SRT (and the 'SNM3'/'99SDM' spellings of it) -> SCT; everything else unchanged."""
    if code.scheme not in ("SRT", "SNM3", "99SDM"):
        return code
    sct = _srt_to_sct().get(code.value)
    if sct is None and code.meaning:
        sct = _sct_by_meaning().get(code.meaning.strip().lower())
    return Code(sct, "SCT", code.meaning) if sct else code


# --- measurements ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConceptRule:
    kind: MeasurementKind
    dimension: str | None


@cache
def _concepts() -> tuple[dict[tuple[str, str], ConceptRule], list[tuple[re.Pattern, ConceptRule]], frozenset]:
    data = _load("measurements.yaml")
    by_code = {
        (c["scheme"], c["code"]): ConceptRule(MeasurementKind(c["kind"]), c.get("dimension"))
        for c in data["concepts"]
    }
    by_meaning = [
        (re.compile(m["meaning"], re.I), ConceptRule(MeasurementKind(m["kind"]), m["dimension"]))
        for m in data["meanings"]
    ]
    skip = frozenset((c["scheme"], c["code"]) for c in data["not_measurements"])
    return by_code, by_meaning, skip


def concept_rule(concept: Code) -> ConceptRule:
    """Kind and expected dimension of a NUM concept (already SRT->SCT normalised)."""
    return _concept_rule(concept.scheme, concept.value, concept.meaning)


# The lookups below are cached by their whole input (a Code's hash leaves out the meaning, which the
# patterns read): a report repeats its concepts, units, sites and names, and a pattern scan is slow.
@lru_cache(maxsize=4096)
def _concept_rule(scheme: str, value: str, meaning: str | None) -> ConceptRule:
    by_code, by_meaning, _ = _concepts()
    rule = by_code.get((scheme, value))
    if rule:
        return rule
    meaning = " ".join((meaning or "").split())
    for pattern, rule in by_meaning:
        if pattern.fullmatch(meaning):
            return rule
    return ConceptRule(MeasurementKind.OTHER, None)


def is_not_a_measurement(concept: Code) -> bool:
    return (concept.scheme, concept.value) in _concepts()[2]


# --- units -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitRule:
    dimension: str | None  # length | area | volume | None (not a size unit)
    factor: Decimal | None
    canonical: str | None
    uncalibrated: bool


@lru_cache(maxsize=1024)
def unit_rule(unit_code: str) -> UnitRule:
    data = _load("units.yaml")
    entry = data["units"].get(unit_code)
    if entry:
        dim = entry["dimension"]
        return UnitRule(dim, Decimal(entry["factor"]), data["canonical"][dim], False)
    unc = data["uncalibrated"]
    uncalibrated = unit_code in unc["exact"] or any(unit_code.startswith(p) for p in unc["prefixes"])
    return UnitRule(None, None, None, uncalibrated)


# --- anatomy -----------------------------------------------------------------------------------------


@cache
def _anatomy() -> tuple[dict[str, Anatomy], list[tuple[re.Pattern, Anatomy]], frozenset, frozenset]:
    data = _load("anatomy.yaml")
    by_code: dict[str, Anatomy] = {}
    keywords: list[tuple[str, Anatomy]] = []
    for organ, spec in data["organs"].items():
        anatomy = Anatomy(organ, bool(spec.get("nodal")), bool(spec.get("cns")), bool(spec.get("paired")))
        for code in spec.get("codes", []):
            by_code[str(code)] = anatomy
        keywords += [(k, anatomy) for k in spec.get("keywords", [])]
    keywords.sort(key=lambda kv: -len(kv[0]))
    patterns = [(re.compile(rf"\b{re.escape(k)}\b", re.I), a) for k, a in keywords]
    structures = frozenset((c["scheme"], c["code"]) for c in data["structure_findings"]) | frozenset(
        ("SCT", code) for code in by_code
    )
    categories = frozenset((c["scheme"], c["code"]) for c in data["structure_categories"])
    return by_code, patterns, structures, categories


def anatomy_of(site: Code | None) -> Anatomy:
    if site is None:
        return Anatomy()
    return _anatomy_of(site.scheme, site.value, site.meaning)


@lru_cache(maxsize=4096)
def _anatomy_of(scheme: str, value: str, meaning: str | None) -> Anatomy:
    by_code, patterns, _, _ = _anatomy()
    if scheme == "SCT" and value in by_code:
        return by_code[value]
    for pattern, anatomy in patterns:
        if pattern.search(meaning or ""):
            return anatomy
    return Anatomy()


def is_structure(finding: Code | None, category: Code | None) -> bool:
    """True when a group measures a body structure (aorta, vertebra, an organ), not a lesion."""
    _, _, structures, categories = _anatomy()
    if category is not None and (category.scheme, category.value) in categories:
        return True
    return finding is not None and (finding.scheme, finding.value) in structures


# --- tracking identifiers ----------------------------------------------------------------------------


@cache
def _tracking() -> tuple[list[tuple[IdentifierKind, re.Pattern]], frozenset[str]]:
    data = _load("tracking.yaml")
    rules = [
        (kind, re.compile(pattern, re.I))
        for kind, key in ((IdentifierKind.TOOL_TAG, "tool_tag"), (IdentifierKind.HASH, "hash"),
                          (IdentifierKind.GENERIC, "generic"))
        for pattern in data[key]
    ]
    return rules, frozenset(data["free_text_label_codes"])


def identifier_kind(text: str) -> IdentifierKind:
    return _identifier_kind(text) if len(text) <= 256 else _identifier_kind.__wrapped__(text)  # no long text held


@lru_cache(maxsize=4096)
def _identifier_kind(text: str) -> IdentifierKind:
    stripped = text.strip()
    for kind, pattern in _tracking()[0]:
        if pattern.fullmatch(stripped):
            return kind
    return IdentifierKind.HUMAN


def is_free_text_label(code: Code) -> bool:
    return code.value.upper() in _tracking()[1]
