"""Assessment: RECIST 1.1 (optionally iRECIST) and the oligo/polyprogression state of every scan.

    assess_timeline(timeline, preset="consensus-5", treated={"Lesion 2": date}) -> PatientAssessment
    assess(reports, preset="consensus-5") -> list[PatientAssessment]   (one per patient)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from ..model import PatientTimeline, Report
from .engine import CRITERIA, assess_timeline
from .presets import DEFAULT_PRESET, Parameters, Preset, load_preset, preset_names
from .result import (STATES, IrecistResult, LesionAssessment, PatientAssessment, RecistResult,
                     TimePointAssessment)


def assess(
    reports: Iterable[Report],
    preset: str = DEFAULT_PRESET,
    *,
    treated: Mapping[str, dt.date] | None = None,
    criteria: str = "recist",
    **overrides,
) -> list[PatientAssessment]:
    """Reports of any number of patients, in any order -> one assessment per patient.

    Reports that cannot be placed on a timeline (no patient id, ...) are left out; use
    `adapter.timeline.build_timeline_result` and `assess_timelines` to see them and why.
    """
    from ..timeline import build_timelines

    return assess_timelines(build_timelines(list(reports)), preset, treated=treated, criteria=criteria, **overrides)


def assess_timelines(
    timelines: Sequence[PatientTimeline],
    preset: str = DEFAULT_PRESET,
    *,
    treated: Mapping[str, dt.date] | None = None,
    criteria: str = "recist",
    **overrides,
) -> list[PatientAssessment]:
    """One assessment per timeline; each patient gets the treated lesions it has."""
    chosen = load_preset(preset, **overrides)
    treated = dict(treated or {})
    if len(timelines) <= 1:
        return [assess_timeline(t, chosen, treated=treated, criteria=criteria) for t in timelines]
    # several patients: each gets the treated lesions it has; a name no patient has is reported by all
    names = [{key for lesion in t.lesions for key in (lesion.lesion_id, lesion.name.casefold())} for t in timelines]
    unknown = {k: d for k, d in treated.items() if not any(k in n or k.casefold() in n for n in names)}
    return [assess_timeline(t, chosen, criteria=criteria,
                            treated={k: d for k, d in treated.items() if k in n or k.casefold() in n} | unknown)
            for t, n in zip(timelines, names, strict=True)]


__all__ = [
    "CRITERIA", "DEFAULT_PRESET", "STATES", "IrecistResult", "LesionAssessment", "Parameters",
    "PatientAssessment", "Preset", "RecistResult", "TimePointAssessment", "assess", "assess_timeline", "assess_timelines",
    "load_preset", "preset_names",
]
