"""One rule for every source: a number's kind from its concept *and* its unit's dimension, and its
value in mm / mm2 / mm3 when it is a size (DESIGN.md §7: only lengths convertible to mm enter RECIST)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from .. import tables
from ..model import MeasurementKind


class Sized(NamedTuple):  # a tuple: made once per measurement, and a frozen dataclass costs more to make
    kind: MeasurementKind
    value: Decimal | None  # None when quarantined
    unit: str | None  # canonical for sizes, else the unit as given
    quarantined: str | None = None  # why a size cannot be used
    dimension_conflict: str | None = None  # "coded as a length but its unit 'mm2' measures area"


def size_of(rule: tables.ConceptRule, number: Decimal, unit_code: str, unit_meaning: str = "") -> Sized:
    unit_rule = tables.unit_rule(unit_code)
    if rule.dimension is None:
        if unit_rule.dimension:  # an unknown concept in a size unit: converted, but never a diameter
            return Sized(MeasurementKind.OTHER, number * unit_rule.factor, unit_rule.canonical)
        return Sized(MeasurementKind.OTHER, number, unit_code or None)
    if unit_rule.dimension is None:
        if rule.kind is MeasurementKind.OTHER:  # e.g. a radiomics axis length in "1": kept, never used
            return Sized(MeasurementKind.OTHER, number, unit_code or None)
        shown = f" ({unit_meaning})" if unit_meaning else ""
        reason = (f"unit {unit_code!r}{shown} is not a calibrated {rule.dimension}" if unit_code
                  else f"no unit given for a {rule.dimension}")
        return Sized(rule.kind, None, unit_code or None, quarantined=reason)
    if unit_rule.dimension != rule.dimension:
        return Sized(MeasurementKind(unit_rule.dimension), number * unit_rule.factor, unit_rule.canonical,
                     dimension_conflict=f"is coded as a {rule.dimension} but its unit {unit_code!r} "
                                        f"measures {unit_rule.dimension}")
    return Sized(rule.kind, number * unit_rule.factor, unit_rule.canonical)
