"""One patient's reports -> imaging studies in time order (before any lesion is linked).

Re-deliveries and re-saves are the rule in real archives (PEERS.md §2): the same SR arrives twice,
OHIF writes a new SR at every save, a corrected SR names its predecessor. Only the latest version of
each report is read; nothing depends on the order in which reports arrived.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, replace

from ..model import Report
from .options import TimelineOptions


@dataclass(frozen=True, slots=True)
class StudyColumn:
    """The reports of one imaging study that remain after duplicates and superseded versions left."""

    key: str
    study_uid: str | None
    date: dt.date
    time: dt.time | None
    reports: tuple[Report, ...]
    superseded: tuple[str, ...]
    flagged_baseline: bool


@dataclass(frozen=True, slots=True)
class Unplaced:
    source_id: str
    reason: str


def arrange(reports: list[Report], options: TimelineOptions) -> tuple[list[StudyColumn], list[Unplaced], list[str]]:
    """Studies in imaging-date order, the reports that cannot be placed, and warnings."""
    warnings: list[str] = []
    kept = _without_duplicates(reports, warnings)
    superseded = _named_predecessors(kept, warnings)
    current = [r for r in kept if r.source_id not in superseded]
    studies: dict[str, list[Report]] = defaultdict(list)
    for report in current:
        studies[_study_key(report, current, options, warnings)].append(report)
    columns, unplaced = [], []
    for key in sorted(studies):
        members = studies[key]
        dates = sorted({r.imaging_date for r in members if r.imaging_date})
        if not dates:
            unplaced += [Unplaced(r.source_id, "has no imaging date, so it cannot be placed in time")
                         for r in sorted(members, key=_report_order)]
            continue
        if len(dates) > 1:
            warnings.append(f"study {key}: reports give {len(dates)} imaging dates; the earliest is used")
        resaved = _resaved(members, options, warnings)
        current = sorted((r for r in members if r.source_id not in resaved), key=_report_order)
        times = sorted({r.imaging_time for r in members if r.imaging_date == dates[0] and r.imaging_time})
        replaced = {s for s in superseded if any(s in r.predecessors for r in members)} | resaved
        columns.append(StudyColumn(
            key=key,
            study_uid=next((r.study_uid for r in members if r.study_uid), None),
            date=dates[0],
            time=times[0] if times else None,
            reports=tuple(current),
            superseded=tuple(sorted(replaced)),
            flagged_baseline=any(_flags_baseline(r) for r in current),
        ))
    columns.sort(key=lambda c: (c.date, c.time or dt.time.min, c.key))
    return columns, unplaced, warnings


def _report_order(report: Report) -> tuple:
    return (report.content_datetime or dt.datetime.min, report.source_id)


def _content(report: Report) -> Report:
    """The report without the identifiers a re-delivery may change; hashable, so equal content is
    found without serialising anything."""
    return replace(report, source_id="", series_uid=None, warnings=())


def _fingerprint(report: Report) -> str:
    """A total order among copies of one report that differ (rare): their content as JSON."""
    return json.dumps(_content(report).to_dict(), sort_keys=True, default=str)


def _without_duplicates(reports: list[Report], warnings: list[str]) -> list[Report]:
    """Exact duplicates (same SOP Instance UID, or the same content under another one) count once."""
    by_id: dict[str, list[Report]] = defaultdict(list)
    for report in reports:
        by_id[report.source_id].append(report)
    unique: list[Report] = []
    for source_id in sorted(by_id):
        copies = by_id[source_id]
        if len(copies) > 1:
            copies = sorted(copies, key=lambda r: (_report_order(r), _fingerprint(r)))
        if len({_content(r) for r in copies}) > 1:
            warnings.append(f"report {source_id} arrived {len(copies)} times with different content; "
                            "the version with the latest content date/time is used")
        elif len(copies) > 1:
            warnings.append(f"report {source_id} arrived {len(copies)} times; the copies were ignored")
        unique.append(copies[-1])
    seen: dict[Report, str] = {}
    out = []
    for report in unique:
        fingerprint = _content(report)
        if fingerprint in seen:
            warnings.append(f"report {report.source_id} repeats report {seen[fingerprint]} exactly; ignored")
            continue
        seen[fingerprint] = report.source_id
        out.append(report)
    return out


def _named_predecessors(reports: list[Report], warnings: list[str]) -> set[str]:
    """Reports named in another report's Predecessor Documents Sequence are replaced by it (two reports
    naming each other replace neither: that is reported)."""
    named = {r.source_id: set(r.predecessors) - {r.source_id} for r in reports}
    replaced = set()
    for source_id, predecessors in sorted(named.items()):
        for uid in sorted(predecessors & named.keys()):
            if source_id in named[uid]:
                warnings.append(f"reports {source_id} and {uid} name each other as predecessor; both are kept")
            else:
                replaced.add(uid)
    return replaced


def _study_key(report: Report, reports: list[Report], options: TimelineOptions, warnings: list[str]) -> str:
    """The imaging study; without a Study UID, date and time; never the date alone (but see
    `TimelineOptions.attach_to_only_study_of_the_day`)."""
    if report.study_uid:
        return report.study_uid
    if options.attach_to_only_study_of_the_day and report.imaging_date:
        same_day = {r.study_uid for r in reports if r.study_uid and r.imaging_date == report.imaging_date}
        if len(same_day) == 1:
            [study] = same_day
            warnings.append(f"report {report.source_id} names no study; it joins study {study}, the only study "
                            f"of {report.imaging_date}")
            return study
    if report.imaging_date and report.imaging_time:
        return f"(no study UID) {report.imaging_date.isoformat()}T{report.imaging_time.isoformat()}"
    return f"(no study UID) report {report.source_id}"


def _resaved(members: list[Report], options: TimelineOptions, warnings: list[str]) -> set[str]:
    """Within one study, a later save by the same observer replaces the earlier ones."""
    by_observer: dict[str, list[Report]] = defaultdict(list)
    for report in members:
        if report.observer:
            by_observer["observer:" + report.observer].append(report)
        elif options.unknown_observer_is_same:
            by_observer["unknown"].append(report)
    replaced: set[str] = set()
    for observer, saves in sorted(by_observer.items()):
        if len(saves) < 2:
            continue
        dated = [r for r in saves if r.content_datetime]
        if len(dated) < len(saves):
            warnings.append(f"{len(saves)} reports of one study by the same observer, some without a content "
                            "date/time: all are kept")
            continue
        latest = max(r.content_datetime for r in dated)
        newest = [r for r in dated if r.content_datetime == latest]
        if len(newest) > 1:
            warnings.append(f"{len(newest)} reports of one study by the same observer share the content date/time "
                            f"{latest.isoformat()}: all are kept")
        replaced |= {r.source_id for r in dated if r.content_datetime < latest}
    return replaced


def _flags_baseline(report: Report) -> bool:
    if report.time_point and report.time_point.is_baseline:
        return True
    return any(f.time_point and f.time_point.is_baseline for f in report.findings)
