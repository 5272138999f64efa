"""Assessment: RECIST 1.1 (optionally iRECIST) and the oligo/polyprogression state of every scan.

    assess_timeline(timeline, preset="consensus-5", treated={"Lesion 2": date}) -> PatientAssessment
    assess(reports, preset="consensus-5") -> list[PatientAssessment]   (one per patient)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from ..model import Report
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
    """Reports of any number of patients, in any order -> one assessment per patient."""
    from ..timeline import build_timelines

    chosen = load_preset(preset, **overrides)
    return [assess_timeline(timeline, chosen, treated=treated, criteria=criteria)
            for timeline in build_timelines(list(reports))]


__all__ = [
    "CRITERIA", "DEFAULT_PRESET", "STATES", "IrecistResult", "LesionAssessment", "Parameters",
    "PatientAssessment", "Preset", "RecistResult", "TimePointAssessment", "assess", "assess_timeline",
    "load_preset", "preset_names",
]
