"""Reports from any source -> one PatientTimeline per patient (pure: no I/O, no clock, deterministic)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..model import PatientTimeline, Report, ScanTimePoint, TrackedLesion
from .keys import human_name
from .linking import Linker, Track
from .options import DEFAULT_OPTIONS, SameDayStudies, TimelineOptions
from .scans import StudyColumn, Unplaced, arrange


@dataclass(frozen=True, slots=True)
class TimelineProblem:
    """A report that could not be placed on any timeline, and why, in plain words."""

    source_id: str
    reason: str

    def to_dict(self) -> dict:
        return {"source_id": self.source_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class TimelineResult:
    timelines: tuple[PatientTimeline, ...]
    problems: tuple[TimelineProblem, ...]


def build_timelines(reports: Iterable[Report], options: TimelineOptions | None = None) -> list[PatientTimeline]:
    """One timeline per patient (patient id + issuer), in patient order. Unplaceable reports are left
    out; `build_timeline_result` says which and why."""
    return list(build_timeline_result(reports, options).timelines)


def build_timeline_result(reports: Iterable[Report], options: TimelineOptions | None = None) -> TimelineResult:
    options = options or DEFAULT_OPTIONS
    problems: list[TimelineProblem] = []
    patients: dict[tuple[str, str], list[Report]] = defaultdict(list)
    for report in reports:
        patient_id = (report.patient_id or "").strip()
        if not patient_id:
            problems.append(TimelineProblem(report.source_id, "has no patient id: it cannot be placed on a "
                                                              "patient's timeline, so it cannot be assessed"))
            continue
        patients[(patient_id, (report.patient_issuer or "").strip())].append(report)
    issuers: dict[str, set[str]] = defaultdict(set)
    for patient_id, issuer in patients:
        issuers[patient_id].add(issuer)
    timelines = []
    for (patient_id, issuer), members in sorted(patients.items()):
        timeline, unplaced = _patient_timeline(patient_id, issuer or None, members, options)
        if len(issuers[patient_id]) > 1:
            timeline = _with_warning(timeline, f"patient id {patient_id} also occurs with another issuer; "
                                               "those reports are on a separate timeline")
        problems += [TimelineProblem(u.source_id, u.reason) for u in unplaced]
        if timeline.time_points:
            timelines.append(timeline)
    problems.sort(key=lambda p: (p.source_id, p.reason))
    return TimelineResult(tuple(timelines), tuple(problems))


def _with_warning(timeline: PatientTimeline, warning: str) -> PatientTimeline:
    return PatientTimeline(timeline.patient_id, timeline.patient_issuer, timeline.time_points, timeline.lesions,
                           timeline.conflicts, timeline.warnings + (warning,))


def _patient_timeline(patient_id: str, issuer: str | None, reports: list[Report],
                      options: TimelineOptions) -> tuple[PatientTimeline, list[Unplaced]]:
    columns, unplaced, warnings = arrange(reports, options)
    linker = Linker(options, columns)
    tracks = linker.run()
    warnings += linker.warnings
    groups = _same_day_groups(columns, tracks, options, warnings)
    position = {column: g for g, members in enumerate(groups) for column in members}
    flagged = [g for g, members in enumerate(groups) if any(columns[c].flagged_baseline for c in members)]
    if len(flagged) > 1:
        warnings.append(f"{len(flagged)} time points are marked Baseline; the first of them is used")
    baseline = flagged[0] if flagged else 0
    time_points = tuple(_time_point([columns[c] for c in members], g == baseline) for g, members in enumerate(groups))
    lesions = []
    for track in sorted(tracks, key=lambda t: (position[t.first_column], t.number)):
        if track.cells:
            lesions.append(_lesion(len(lesions) + 1, track, position, len(groups), baseline))
    timeline = PatientTimeline(patient_id, issuer, time_points, tuple(lesions), tuple(linker.conflicts),
                               tuple(warnings))
    return timeline, unplaced


def _same_day_groups(columns: list[StudyColumn], tracks: list[Track], options: TimelineOptions,
                     warnings: list[str]) -> list[list[int]]:
    """Studies of one date become one time point when no lesion is measured in more than one of them
    (a chest and an abdomen CT of one restaging); otherwise they stay apart, ordered by time."""
    groups: list[list[int]] = []
    for index, column in enumerate(columns):
        if groups and options.same_day_studies is SameDayStudies.MERGE_COMPLEMENTARY:
            group = groups[-1]
            if columns[group[0]].date == column.date:
                if _disjoint(group + [index], tracks):
                    group.append(index)
                    warnings.append(f"{column.date}: {len(group)} studies of the same date measure different "
                                    "lesions and form one time point")
                    continue
                warnings.append(f"{column.date}: two studies of the same date measure the same lesion; "
                                "they stay separate time points")
        groups.append([index])
    return groups


def _disjoint(members: list[int], tracks: list[Track]) -> bool:
    chosen = set(members)
    return all(len(chosen & (set(t.cells) | t.blocked)) <= 1 for t in tracks)


def _time_point(columns: list[StudyColumn], is_baseline: bool) -> ScanTimePoint:
    first = columns[0]
    return ScanTimePoint(
        study_uid=first.study_uid,
        date=first.date,
        time=first.time,
        reports=tuple(r.source_id for c in columns for r in c.reports),
        superseded=tuple(s for c in columns for s in c.superseded),
        is_baseline=is_baseline,
        additional_study_uids=tuple(c.study_uid for c in columns[1:] if c.study_uid),
        content_datetime=max((r.content_datetime for c in columns for r in c.reports if r.content_datetime),
                             default=None),
        modality=next((r.modality for c in columns for r in c.reports if r.modality), None),
    )


def _lesion(number: int, track: Track, position: dict[int, int], width: int, baseline: int) -> TrackedLesion:
    cells = {position[column]: observation for column, observation in track.cells.items()}
    ordered = [cells[g] for g in sorted(cells)]
    first = ordered[0].finding
    first_index = position[track.first_column]  # even if that observation was later withdrawn as a conflict
    name = next((n for n in (human_name(o.finding) for o in ordered) if n), first.name)
    stated = [cells[g].finding.role for g in sorted(cells) if g <= baseline and cells[g].finding.role]
    if not stated and first_index <= baseline:
        stated = [o.finding.role for o in ordered if o.finding.role]
    return TrackedLesion(
        lesion_id=f"L{number}",
        name=name,
        anatomy=first.anatomy,
        site=first.site,
        laterality=first.laterality,
        role=stated[-1] if stated else None,
        is_new=first_index > baseline,
        observations=tuple(cells.get(g) for g in range(width)),
    )
