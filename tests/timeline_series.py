"""Generated SR series for the timeline tests: a clean series and the ways real archives break it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import adapter
from adapter.model import PatientTimeline, Report
from adapter.timeline import normalise_label
from fixtures.generate import Lesion, Patient, TimePoint, make_sr, to_bytes

OHIF_TOOL = "Cornerstone3DTools@^0.1.0:Bidirectional"


def c2_patient(patient_id: str = "TL-C2") -> Patient:
    """CLINICAL.md §5.2 C2: liver 30, liver 25, lung 20, lung 15, node SA 18 -> 15, 12, 10, 8, 9 ->
    15, 20, 10, 8, 9 (oligoprogression of liver-2 inside a RECIST PR)."""
    def tp(date, sizes, baseline=False, **kw):
        (l1, l2, g1, g2, n1) = sizes
        role = "target" if baseline else None
        return TimePoint(date, baseline=baseline, lesions=[
            Lesion("Liver 1", "liver", l1, role=role, **kw),
            Lesion("Liver 2", "liver", l2, role=role, **kw),
            Lesion("Lung 1", "lung", g1, role=role, laterality="right", **kw),
            Lesion("Lung 2", "lung", g2, role=role, laterality="left", **kw),
            Lesion("Node 1", "lymph node", 24.0, n1, role=role, **kw),
        ])
    patient = Patient(patient_id)
    patient.time_points = [
        tp(dt.date(2024, 1, 10), (30.0, 25.0, 20.0, 15.0, 18.0), baseline=True),
        tp(dt.date(2024, 3, 6), (15.0, 12.0, 10.0, 8.0, 9.0)),
        tp(dt.date(2024, 5, 8), (15.0, 20.0, 10.0, 8.0, 9.0)),
    ]
    return patient


def read(*datasets) -> list[Report]:
    """Through bytes and the real reader, as an archive would deliver them."""
    return [adapter.read_sr(to_bytes(ds)) for ds in datasets]


def clean_series(patient: Patient) -> list[Report]:
    return read(*(make_sr(patient, tp, order) for order, tp in enumerate(patient.time_points, start=1)))


def renamed(tp: TimePoint, spell) -> TimePoint:
    """The time point with its lesions' names respelled (their Tracking UIDs, derived from the name,
    change with it, so only the name can link them)."""
    return dataclasses.replace(tp, lesions=[dataclasses.replace(lesion, name=spell(lesion.name))
                                            for lesion in tp.lesions])


def with_lesions(tp: TimePoint, **changes) -> TimePoint:
    """The time point with the same change applied to every lesion (e.g. unit="cm")."""
    return dataclasses.replace(tp, lesions=[dataclasses.replace(lesion, **changes) for lesion in tp.lesions])


def without_labels(reports: list[Report]) -> list[Report]:
    """Reports whose findings carry no human name at all (only tool tags and fresh UIDs)."""
    return [dataclasses.replace(r, findings=tuple(dataclasses.replace(f, label=None) for f in r.findings))
            for r in reports]


def sizes(observation) -> tuple | None:
    if observation is None:
        return None
    return tuple(sorted((m.kind.value, m.value) for m in observation.finding.measurements if m.usable_size))


def signature(timeline: PatientTimeline) -> tuple:
    """What the assessment reads: time points, and per lesion its name, organ, role, novelty and the
    values in mm at every time point (None = not assessed). Match methods and ids are left out."""
    points = tuple((tp.date, tp.is_baseline) for tp in timeline.time_points)
    lesions = tuple(sorted(
        (normalise_label(lesion.name), lesion.anatomy.organ, lesion.role, lesion.is_new,
         tuple(sizes(o) for o in lesion.observations))
        for lesion in timeline.lesions))
    return points, lesions


def assessed(timeline: PatientTimeline) -> list[dict]:
    """What `oligo assess --json` says of each time point, without the parts that name the inputs
    (report ids, lesion ids and spellings, study UIDs of merged same-day studies)."""
    from adapter.assess import assess_timeline

    document = assess_timeline(timeline).to_dict()
    return [
        {"date": tp["date"], "state": tp["state"], "recist": tp["recist"],
         "progressing_count": tp["progressing_count"], "organ_count": tp["organ_count"],
         "progressing": sorted((p["reason"], p["from_mm"], p["to_mm"], p["organ"]) for p in tp["progressing"])}
        for tp in document["timepoints"]
    ]
