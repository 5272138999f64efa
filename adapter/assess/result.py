"""Result types of an assessment: immutable, complete enough for the FHIR emitter, and serialised to
exactly the JSON shape of DESIGN.md §5.1 (`to_dict`; more keys than the spec, none renamed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..model import PatientTimeline

# states (CLINICAL.md §7.1)
BASELINE = "baseline"
NO_PROGRESSION = "no-progression"
OLIGOPROGRESSION = "oligoprogression"
POLYPROGRESSION = "polyprogression"
DIFFUSE_PROGRESSION = "diffuse-progression"
WITHOUT_PRIOR_CONTROL = "progression-without-prior-control"
INDETERMINATE = "indeterminate"
NOT_EVALUABLE = "not-evaluable"
STATES = (BASELINE, NO_PROGRESSION, OLIGOPROGRESSION, POLYPROGRESSION, DIFFUSE_PROGRESSION,
          WITHOUT_PRIOR_CONTROL, INDETERMINATE, NOT_EVALUABLE)

# why a lesion progresses (DESIGN.md §5.1)
SIZE, NEW, NON_TARGET, REAPPEARANCE = "size", "new", "non-target", "reappearance"


def mm(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def percent(change: Decimal, reference: Decimal) -> Decimal | None:
    if reference == 0:
        return None
    return (change * 100 / reference).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class RecistResult:
    overall: str
    target: str | None
    non_target: str | None
    new_lesions: bool
    sum_mm: Decimal | None  # None when a target is missing
    sum_known_mm: Decimal | None  # the sum of the targets that were measured
    nadir_mm: Decimal | None  # smallest earlier sum on this reference (the PD reference; current excluded)
    baseline_mm: Decimal | None
    missing_targets: int = 0
    sticky_pr: bool = False
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall, "target": self.target, "non_target": self.non_target,
            "new_lesions": self.new_lesions, "sum_mm": mm(self.sum_mm), "nadir_mm": mm(self.nadir_mm),
            "baseline_mm": mm(self.baseline_mm), "sum_known_mm": mm(self.sum_known_mm),
            "missing_targets": self.missing_targets, "sticky_pr": self.sticky_pr, "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class LesionAssessment:
    """One lesion at one time point: the value used, its reference, the change, its class and status."""

    lesion_id: str
    name: str
    lesion_class: str  # target | non-target | new
    organ: str | None
    nodal: bool
    cns: bool
    presence: str  # readings.Presence value
    value_mm: Decimal | None
    reference_mm: Decimal | None = None  # the lesion's own nadir (or the preset's reference)
    progressing: bool = False
    possibly_progressing: bool = False  # unknown now, could progress (widens the count range)
    equivocal: bool = False
    reason: str | None = None  # size | new | non-target | reappearance
    from_mm: Decimal | None = None
    non_measurable: bool = False
    auto_selected: bool = False
    locally_treated: bool = False
    source_id: str | None = None
    explanation: str = ""

    @property
    def change_mm(self) -> Decimal | None:
        if self.value_mm is None or self.reference_mm is None:
            return None
        return self.value_mm - self.reference_mm

    def to_dict(self) -> dict[str, Any]:
        change = self.change_mm
        return {
            "lesion": self.name, "lesion_id": self.lesion_id, "class": self.lesion_class, "organ": self.organ,
            "nodal": self.nodal, "cns": self.cns, "presence": self.presence, "value_mm": mm(self.value_mm),
            "nadir_mm": mm(self.reference_mm), "change_mm": mm(change),
            "change_pct": mm(percent(change, self.reference_mm)) if change is not None else None,
            "progressing": self.progressing, "possibly_progressing": self.possibly_progressing,
            "equivocal": self.equivocal, "reason": self.reason, "non_measurable": self.non_measurable,
            "auto_selected": self.auto_selected, "locally_treated": self.locally_treated,
            "source_id": self.source_id, "explanation": self.explanation,
        }

    def progressing_dict(self) -> dict[str, Any]:
        return {"lesion": self.name, "lesion_id": self.lesion_id, "reason": self.reason,
                "from_mm": mm(self.from_mm), "to_mm": mm(self.value_mm), "organ": self.organ,
                "non_measurable": self.non_measurable, "explanation": self.explanation}


@dataclass(frozen=True, slots=True)
class IrecistResult:
    overall: str  # iCR iPR iSD iUPD iCPD iNE NON-iCR/NON-iUPD
    target_sum_mm: Decimal | None
    new_target_sum_mm: Decimal | None
    new_targets: tuple[str, ...]
    new_non_targets: tuple[str, ...]
    iupd_date: dt.date | None
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "target_sum_mm": mm(self.target_sum_mm),
                "new_target_sum_mm": mm(self.new_target_sum_mm), "new_targets": list(self.new_targets),
                "new_non_targets": list(self.new_non_targets),
                "iupd_date": self.iupd_date.isoformat() if self.iupd_date else None, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class TimePointAssessment:
    date: dt.date | None
    study_uid: str | None
    state: str
    recist: RecistResult | None  # None at the baseline time point
    progressing: tuple[LesionAssessment, ...]
    progressing_count: int  # the count compared with the preset's limit (lower bound of the range)
    progressing_max: int  # upper bound (missing lesions could progress)
    organ_count: int
    pattern: str | None  # oligo | poly | diffuse (beside progression-without-prior-control)
    lesions: tuple[LesionAssessment, ...]
    reasons: tuple[str, ...]
    reference_baseline: bool = False  # this scan is a (new) reference baseline
    reports: tuple[str, ...] = ()
    irecist: IrecistResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "date": self.date.isoformat() if self.date else None,
            "study_uid": self.study_uid,
            "state": self.state,
            "recist": self.recist.to_dict() if self.recist else None,
            "progressing_count": self.progressing_count,
            "progressing": [p.progressing_dict() for p in self.progressing],
            "progressing_range": [self.progressing_count, self.progressing_max],
            "organ_count": self.organ_count,
            "pattern": self.pattern,
            "reference_baseline": self.reference_baseline,
            "reasons": list(self.reasons),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "reports": list(self.reports),
        }
        if self.irecist is not None:
            out["irecist"] = self.irecist.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class PatientAssessment:
    patient_id: str
    patient_issuer: str | None
    preset: str
    preset_source: str
    parameters: Any  # presets.Parameters
    criteria: str
    timepoints: tuple[TimePointAssessment, ...]
    best_overall_response: str | None
    best_overall_reason: str
    treated: tuple[tuple[str, dt.date], ...] = ()
    warnings: tuple[str, ...] = field(default=())
    timeline: PatientTimeline | None = None  # the PatientTimeline assessed (identifiers, sites, axes, UIDs for the FHIR emitter)

    @property
    def latest(self) -> TimePointAssessment | None:
        return self.timepoints[-1] if self.timepoints else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "patient_issuer": self.patient_issuer,
            "preset": self.preset,
            "preset_source": self.preset_source,
            "parameters": self.parameters.to_dict(),
            "criteria": self.criteria,
            "timepoints": [tp.to_dict() for tp in self.timepoints],
            "best_overall_response": self.best_overall_response,
            "best_overall_reason": self.best_overall_reason,
            "treated": [{"lesion": name, "date": date.isoformat()} for name, date in self.treated],
            "warnings": list(self.warnings),
        }
