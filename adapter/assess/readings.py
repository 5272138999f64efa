"""What one lesion shows at one time point, reduced to what RECIST needs (CLINICAL.md §1.3).

The number used is the long axis for non-nodal lesions and the short axis for nodes; "too small to
measure" counts as 5 mm unless a value is given; 0 mm means disappeared. A lesion measured only in
units that cannot become mm is *unusable*, which is not the same as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import cache
from importlib import resources

import yaml

from ..model import Code, Finding, LesionObservation, MeasurementKind
from .presets import Parameters

NON_NODAL_KINDS = (MeasurementKind.LONG_AXIS, MeasurementKind.DIAMETER, MeasurementKind.LENGTH)
LINEAR = frozenset(NON_NODAL_KINDS + (MeasurementKind.SHORT_AXIS,))


class Presence(str, Enum):
    MEASURED = "measured"
    TOO_SMALL = "too-small-to-measure"
    ABSENT = "disappeared"
    PRESENT = "present"  # seen, no usable number (non-target lesions usually)
    UNUSABLE = "unusable-units"
    NOT_ASSESSED = "not-assessed"


@dataclass(frozen=True, slots=True)
class Reading:
    presence: Presence
    value: Decimal | None = None  # mm; None when no number can be used
    nontarget_progression: bool = False
    equivocal: bool = False
    note: str = ""

    @property
    def known(self) -> bool:
        """True when a number for the sum is available."""
        return self.value is not None


NOT_ASSESSED = Reading(Presence.NOT_ASSESSED)


@cache
def _status_table() -> dict[str, tuple[frozenset[tuple[str, str]], tuple[str, ...]]]:
    text = resources.files("adapter.mappings").joinpath("lesion_status.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {
        key: (frozenset((str(c["scheme"]), str(c["code"])) for c in spec.get("codes", [])),
              tuple(t.lower() for t in spec.get("text", [])))
        for key, spec in data.items()
    }


def has_status(finding: Finding, status: str) -> bool:
    """Whether a qualitative item (or the Current Response) of the finding says `status` (lesion_status.yaml)."""
    codes, texts = _status_table()[status]
    values: list[Code | str] = [q.value for q in finding.qualitative]
    if finding.response is not None:
        values.append(finding.response)
    for value in values:
        if isinstance(value, Code):
            if (value.scheme, value.value) in codes or (value.meaning or "").strip().lower() in texts:
                return True
        elif value.strip().lower() in texts:
            return True
    return False


def read(observation: LesionObservation | None, nodal: bool, params: Parameters) -> Reading:
    if observation is None:
        return NOT_ASSESSED
    finding = observation.finding
    flags = dict(
        nontarget_progression=has_status(finding, "nontarget_progression"),
        equivocal=has_status(finding, "equivocal"),
    )
    value = _size(finding, nodal, params)
    if value is not None:
        presence = Presence.ABSENT if value == 0 else Presence.MEASURED
        return Reading(presence, value, **flags)
    if has_status(finding, "too_small_to_measure"):
        return Reading(Presence.TOO_SMALL, params.too_small_to_measure_mm, note="too small to measure", **flags)
    if has_status(finding, "nontarget_absent"):
        return Reading(Presence.ABSENT, None if nodal else Decimal(0), note="reported absent", **flags)
    if any(m.kind in LINEAR and m.quarantined for m in finding.measurements):
        reasons = sorted({m.quarantined for m in finding.measurements if m.quarantined})
        return Reading(Presence.UNUSABLE, None, note="; ".join(reasons), **flags)
    return Reading(Presence.PRESENT, None, **flags)


def _size(finding: Finding, nodal: bool, params: Parameters) -> Decimal | None:
    """LD (non-nodal) or SA (nodal), in mm; several values of the same kind are fragments (summed)."""
    usable = [m for m in finding.measurements if m.usable_size and m.kind in LINEAR and m.derivation is None]
    order: tuple[MeasurementKind, ...] = (MeasurementKind.SHORT_AXIS,) if nodal else NON_NODAL_KINDS
    if nodal and params.node_long_axis_fallback:
        order += NON_NODAL_KINDS
    for kind in order:
        values = [m.value for m in usable if m.kind is kind]
        if values:
            return sum(values, Decimal(0)) if params.sum_fragments else max(values)
    return None
