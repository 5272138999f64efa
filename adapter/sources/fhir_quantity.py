"""FHIR Quantities -> Measurements: UCUM lengths, areas and volumes to mm, mm2, mm3; anything else kept
as it is or quarantined (DESIGN.md §7: only lengths convertible to mm enter RECIST)."""

from __future__ import annotations

from decimal import Decimal

from .. import tables
from ..model import Code, Measurement, Provenance
from .limits import usable_number
from .fhir_codes import SystemNote, text
from .sizes import size_of

UCUM_SYSTEMS = {"http://unitsofmeasure.org", "UCUM"}


def read_quantity(holder: dict, concept: Code, rule: tables.ConceptRule, where: str, obs_id: str,
                  warnings: list[str], notes: list[SystemNote], *, method: Code | None = None,
                  derivation: Code | None = None) -> Measurement | None:
    """`holder.valueQuantity` -> Measurement in mm / mm2 / mm3 (or quarantined); None without a number."""
    quantity = holder.get("valueQuantity")
    what = concept.meaning or concept.value
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        warnings.append(f"{where} ({what}) has no value; skipped")
        return None
    raw = quantity["value"]
    number = Decimal(raw) if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool) else None
    if not usable_number(number):
        warnings.append(f"{where} ({what}) has no finite number of plausible size ({raw!r}); skipped")
        return None
    unit_text = str(quantity.get("code") or quantity.get("unit") or "").strip()
    system = text(quantity.get("system"))
    if system and system not in UCUM_SYSTEMS and unit_text:
        warnings.append(f"{where}: unit {unit_text!r} is coded in {system}, not UCUM; read as the UCUM unit "
                             "of that name")
    elif system == "UCUM":
        notes.append(SystemNote("UCUM", "is not a URI (non-conformant FHIR); read as UCUM"))
    unit = Code(unit_text, "UCUM", str(quantity.get("unit") or "").strip()) if unit_text else None
    kind, value, unit_code, quarantined = normalise(rule, number, unit_text, what, where, warnings)
    comparator = quantity.get("comparator")
    if comparator and quarantined is None and value is not None:
        quarantined = f"the value is a bound ({comparator} {raw}), not a measurement"
        warnings.append(f"{where}: {what} {comparator}{raw} quarantined: {quarantined}")
        value = None
    return Measurement(
        kind=kind, concept=concept, value=value, unit=unit_code, original_value=str(raw),
        original_unit=unit, derivation=derivation, method=method, quarantined=quarantined,
        provenance=Provenance(observation_uid=obs_id),
    )

def normalise(rule: tables.ConceptRule, number: Decimal, unit_text: str, what: str, where: str,
              warnings: list[str]):
    """Kind, value in mm / mm2 / mm3, unit and quarantine reason (sources/sizes.py), warnings added."""
    sized = size_of(rule, number, unit_text)
    if sized.quarantined:
        warnings.append(f"{where}: {what} {number} quarantined: {sized.quarantined} (UCUM mm, cm, m or um)")
    if sized.dimension_conflict:
        warnings.append(f"{where}: {what} {sized.dimension_conflict}; read as {sized.kind.value}")
    return sized.kind, sized.value, sized.unit, sized.quarantined
