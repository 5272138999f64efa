"""Reports -> one PatientTimeline per patient (minimal: lesions linked by Tracking UID only).

Patients are grouped by patient id + issuer; time points are imaging studies ordered by imaging date
(then time, then study UID); the baseline is the scan whose time point context says Baseline, else the
first. A lesion without a Tracking UID is kept as its own lesion at its one time point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .model import (Finding, LesionObservation, MatchMethod, PatientTimeline, Report, ScanTimePoint,
                    TrackedLesion)


def build_timelines(reports: Iterable[Report]) -> list[PatientTimeline]:
    by_patient: dict[tuple[str, str], list[Report]] = {}
    for report in reports:
        by_patient.setdefault((report.patient_id or "", report.patient_issuer or ""), []).append(report)
    return [_timeline(pid, issuer, group) for (pid, issuer), group in sorted(by_patient.items())]


def _scan_key(report: Report) -> tuple:
    return (report.imaging_date or dt.date.min, report.imaging_time or dt.time.min,
            report.study_uid or report.source_id)


def _timeline(patient_id: str, issuer: str, reports: list[Report]) -> PatientTimeline:
    studies: dict[str, list[Report]] = {}
    for report in sorted(reports, key=lambda rep: (_scan_key(rep), rep.source_id)):
        studies.setdefault(report.study_uid or report.source_id, []).append(report)
    ordered = sorted(studies.values(), key=lambda group: _scan_key(group[0]))
    baseline = next((t for t, group in enumerate(ordered)
                     if any(rep.time_point and rep.time_point.is_baseline for rep in group)), 0)
    time_points = tuple(
        ScanTimePoint(group[0].study_uid, group[0].imaging_date, group[0].imaging_time,
                      tuple(rep.source_id for rep in group), is_baseline=(t == baseline))
        for t, group in enumerate(ordered))
    seen: dict[str, list[LesionObservation | None]] = {}
    first: dict[str, tuple[int, Finding]] = {}
    for t, group in enumerate(ordered):
        for report in group:
            for index, finding in enumerate(report.lesions):
                key = finding.tracking_uid or f"{report.source_id}#{index}"
                slots = seen.setdefault(key, [None] * len(ordered))
                if slots[t] is not None:
                    continue  # one observation per scan; the first report of the study wins
                match = MatchMethod.TRACKING_UID if key in first else MatchMethod.FIRST_SEEN
                slots[t] = LesionObservation(finding, report.source_id, match)
                first.setdefault(key, (t, finding))
    lesions = []
    for key, slots in seen.items():
        t0, finding = first[key]
        lesions.append(TrackedLesion(
            lesion_id=key, name=finding.name, anatomy=finding.anatomy, site=finding.site,
            laterality=finding.laterality, role=next((o.finding.role for o in slots if o and o.finding.role), None),
            is_new=t0 > baseline, observations=tuple(slots)))
    lesions.sort(key=lambda lesion: (first[lesion.lesion_id][0], lesion.name, lesion.lesion_id))
    return PatientTimeline(patient_id, issuer or None, time_points, tuple(lesions))
