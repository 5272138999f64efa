"""The worked examples of CLINICAL.md §5 as patient specs, and a builder of in-memory Reports.

Each case is written once (fixtures.generate specs, sizes in mm) and checked twice: in memory and as
generated SR series read by the real reader and assessed by `oligo assess --json`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from adapter import tables
from adapter.model import (Code, Finding, IdentifierKind, Measurement, MeasurementKind, Qualitative, Report, Role,
                           SourceKind, TimePointContext)
from fixtures.generate import (LATERALITY, LESION_STATUS, NON_TARGET_STABLE, SITES, TOO_SMALL_TO_MEASURE, Lesion,
                               Patient, TimePoint)

START = dt.date(2024, 1, 1)


def week(n: int) -> dt.date:
    return START + dt.timedelta(weeks=n)


def T(name, site, size, **kw) -> Lesion:
    """A target lesion at baseline (size = LD, or SA for nodes)."""
    return L(name, site, size, role="target", **kw)


def L(name, site, size=None, **kw) -> Lesion:
    if site == "lymph node" and size is not None:
        return Lesion(name, site, long_axis=size + 8, short_axis=size, **kw)
    return Lesion(name, site, long_axis=size, **kw)


def NT(name, site, **kw) -> Lesion:
    return Lesion(name, site, role="non-target", response=kw.pop("response", None), **kw)


def patient(pid: str, *scans: tuple[int, list[Lesion]]) -> Patient:
    p = Patient(pid)
    p.time_points = [TimePoint(week(w), lesions, baseline=(k == 0)) for k, (w, lesions) in enumerate(scans)]
    return p


@dataclass
class Case:
    id: str
    patient: Patient
    recist: list[str | None]  # overall response per scan (None at the baseline)
    states: list[str]
    preset: str = "consensus-5"
    treated: dict[str, dt.date] = field(default_factory=dict)
    through_sr: bool = True
    progressing: list[int] | None = None  # progressing count per scan


# ---- in-memory Reports (the same facts the SR reader gives) --------------------------------------------

LONG, SHORT = Code("103339001", "SCT", "Long Axis"), Code("103340004", "SCT", "Short Axis")


def measurement(kind: MeasurementKind, concept: Code, value, quarantined: str | None = None) -> Measurement:
    number = None if quarantined else Decimal(str(value))
    return Measurement(kind, concept, number, None if quarantined else "mm", str(value),
                       Code("mm", "UCUM"), quarantined=quarantined)


def finding(p: Patient, lesion: Lesion, extra_measurements: tuple[Measurement, ...] = ()) -> Finding:
    site = Code(SITES[lesion.site].value, "SCT", SITES[lesion.site].meaning)
    ms = []
    if lesion.long_axis is not None:
        ms.append(measurement(MeasurementKind.LONG_AXIS, LONG, lesion.long_axis))
    if lesion.short_axis is not None:
        ms.append(measurement(MeasurementKind.SHORT_AXIS, SHORT, lesion.short_axis))
    qualitative = []
    if lesion.too_small:
        qualitative.append(Qualitative(Code(LESION_STATUS.value, LESION_STATUS.scheme_designator),
                                       Code(TOO_SMALL_TO_MEASURE.value, TOO_SMALL_TO_MEASURE.scheme_designator)))
    response = Code(lesion.response.value, lesion.response.scheme_designator) if lesion.response else None
    lat = LATERALITY.get(lesion.laterality) if lesion.laterality else None
    return Finding(
        tracking_uid=f"{p.patient_id}/{lesion.name}", tracking_identifier=lesion.name,
        identifier_kind=IdentifierKind.HUMAN, label=None, finding=None, finding_category=None, site=site,
        laterality=Code(lat.value, "SCT", lat.meaning) if lat else None, topographical_modifier=None,
        anatomy=tables.anatomy_of(site), is_lesion=True,
        role={"target": Role.TARGET, "non-target": Role.NON_TARGET}.get(lesion.role or ""),
        response=response, qualitative=tuple(qualitative), measurements=tuple(ms) + extra_measurements)


def report(p: Patient, tp: TimePoint, findings: tuple[Finding, ...] | None = None) -> Report:
    findings = findings if findings is not None else tuple(finding(p, lesion) for lesion in tp.lesions)
    return Report(
        SourceKind.DICOM_SR, f"{p.patient_id}-{tp.date}", None, p.patient_id, p.issuer, f"study-{tp.date}",
        None, None, None, tp.date, None, "test", None, "CT", "COMPLETE", "VERIFIED", None, None, (),
        TimePointContext(type=Code("C1442488", "UMLS") if tp.baseline else None), findings, ())


def reports(p: Patient) -> list[Report]:
    return [report(p, tp) for tp in p.time_points]


# ---- CLINICAL.md §5 ---------------------------------------------------------------------------------------

NO, OLIGO, POLY, DIFFUSE, BASE = "no-progression", "oligoprogression", "polyprogression", "diffuse-progression", \
    "baseline"
NE_STATE, WITHOUT = "not-evaluable", "progression-without-prior-control"

C2_SCANS = [
    (0, [T("Liver 1", "liver", 30), T("Lesion 2", "liver", 25), T("Lung 1", "lung", 20),
         T("Lung 2", "lung", 15), T("Node 1", "lymph node", 18)]),
    (8, [L("Liver 1", "liver", 15), L("Lesion 2", "liver", 12), L("Lung 1", "lung", 10), L("Lung 2", "lung", 8),
         L("Node 1", "lymph node", 9)]),
    (16, [L("Liver 1", "liver", 15), L("Lesion 2", "liver", 20), L("Lung 1", "lung", 10), L("Lung 2", "lung", 8),
          L("Node 1", "lymph node", 9)]),
]


def four(size) -> list[Lesion]:
    return [L(f"L{k}", site, size) for k, site in enumerate(("liver", "lung", "kidney", "bone"), start=1)]


def four_targets(size) -> list[Lesion]:
    return [T(f"L{k}", site, size) for k, site in enumerate(("liver", "lung", "kidney", "bone"), start=1)]


CASES = [
    Case("E1", patient("E1", (0, [T("A", "liver", 80), T("B", "lung", 50), T("C", "adrenal gland", 35)]),
                       (8, [L("A", "liver", 30), L("B", "lung", 20), L("C", "adrenal gland", 13)]),
                       (16, [L("A", "liver", 31), L("B", "lung", 21), L("C", "adrenal gland", 13)])),
         [None, "PR", "PR"], [BASE, NO, NO]),
    Case("E2", patient("E2", (0, [T("A", "liver", 60), T("B", "lung", 40), NT("N", "bone")]),
                       *[(w, [L("A", "liver", a), L("B", "lung", b), NT("N", "bone", response=NON_TARGET_STABLE)])
                         for w, a, b in ((8, 42, 28), (16, 42, 28), (24, 48, 32), (32, 48, 32), (40, 48, 32))]),
         [None, "PR", "PR", "PR", "PR", "PR"], [BASE, NO, NO, NO, NO, NO]),
    Case("E2-one-lesion", patient("E2b", (0, [T("A", "liver", 60), T("B", "lung", 40), NT("N", "bone")]),
                                  *[(w, [L("A", "liver", a), L("B", "lung", b), NT("N", "bone")])
                                    for w, a, b in ((8, 42, 28), (16, 42, 28), (24, 42, 38))]),
         [None, "PR", "PR", "PR"], [BASE, NO, NO, OLIGO], through_sr=False),
    Case("C1a", patient("C1a", (0, [T("A", "liver", 50), T("B", "lung", 50)]),
                        (8, [L("A", "liver", 35), L("B", "lung", 35)])), [None, "PR"], [BASE, NO]),
    Case("C1b", patient("C1b", (0, [T("A", "liver", 50), T("B", "lung", 50)]),
                        (8, [L("A", "liver", 36), L("B", "lung", 35)])), [None, "SD"], [BASE, NO], through_sr=False),
    Case("C1c", patient("C1c", (0, [T("A", "liver", 30), T("B", "lung", 30)]),
                        (8, [L("A", "liver", 25), L("B", "lung", 25)]),
                        (16, [L("A", "liver", 25), L("B", "lung", 35)])),
         [None, "SD", "PD"], [BASE, NO, OLIGO], progressing=[0, 0, 1]),
    Case("C1d", patient("C1d", (0, [T("A", "liver", 20)]), (8, [L("A", "liver", 24)])), [None, "SD"], [BASE, NO],
         through_sr=False),
    Case("C1e", patient("C1e", (0, four_targets(25)), (8, four(20)), (16, four(24))),
         [None, "SD", "PD"], [BASE, NO, DIFFUSE], progressing=[0, 0, 0]),
    Case("C1f", patient("C1f", (0, four_targets(25)), (8, four(20)), (16, four(23.75))),
         [None, "SD", "SD"], [BASE, NO, NO], through_sr=False),
    Case("C1g", patient("C1g", (0, [T("A", "liver", 50), T("B", "lung", 50)]),
                        (8, [L("A", "liver", 25), L("B", "lung", 25)]),
                        (16, [L("A", "liver", 25), L("B", "lung", 40)])),
         [None, "PR", "PD"], [BASE, NO, OLIGO], progressing=[0, 0, 1], through_sr=False),
    Case("C2", patient("C2", *C2_SCANS), [None, "PR", "PR"], [BASE, NO, OLIGO], progressing=[0, 0, 1]),
    Case("C3", patient("C3", (0, [T("A", "liver", 22), T("B", "lung", 18), T("C", "kidney", 30)]),
                       (8, [L("A", "liver", 14), L("B", "lung", 12), L("C", "kidney", 20)]),
                       (16, [L("A", "liver", 14), L("B", "lung", 11), L("C", "kidney", 19),
                             L("New adrenal", "adrenal gland", 14), L("New bone", "bone", 12)])),
         [None, "PR", "PD"], [BASE, NO, OLIGO], progressing=[0, 0, 2]),
    Case("C4", patient("C4", (0, [T("A", "liver", 30), T("B", "lung", 20)]),
                       (8, [L("A", "liver", 28), L("B", "lung", 20)]),
                       (16, [L("A", "liver", 28), L("B", "lung", 21)] +
                        [L(f"New liver {k}", "liver", 8 + k) for k in range(1, 7)])),
         [None, "SD", "PD"], [BASE, NO, POLY], progressing=[0, 0, 6]),
    Case("C6", patient("C6", (0, [T(f"L{k}", s, 20) for k, s in enumerate(
        ("liver", "lung", "kidney", "bone", "adrenal gland"), 1)]),
        (8, [L(f"L{k}", s, 20) for k, s in enumerate(("liver", "lung", "kidney", "bone", "adrenal gland"), 1)]),
        (16, [L(f"L{k}", s, 24) for k, s in enumerate(("liver", "lung", "kidney", "bone", "adrenal gland"), 1)])),
         [None, "SD", "PD"], [BASE, NO, DIFFUSE], progressing=[0, 0, 0]),
    Case("C6-first-restaging", patient("C6b", (0, [T(f"L{k}", s, 20) for k, s in enumerate(
        ("liver", "lung", "kidney", "bone", "adrenal gland"), 1)]),
        (8, [L(f"L{k}", s, 24) for k, s in enumerate(("liver", "lung", "kidney", "bone", "adrenal gland"), 1)])),
         [None, "PD"], [BASE, WITHOUT], progressing=[0, 0], through_sr=False),
    Case("C7", patient("C7", (0, [T("A", "liver", 25), T("B", "lung", 12)]),
                       (8, [L("A", "liver", 10), Lesion("B", "lung", too_small=True)]),
                       (16, [L("A", "liver", 10), L("B", "lung", 9)]),
                       (24, [L("A", "liver", 10), L("B", "lung", 11)])),
         [None, "PR", "PR", "PD"], [BASE, NO, NO, OLIGO], progressing=[0, 0, 0, 1]),
    Case("C10", patient("C10", (0, [T("A", "liver", 30), T("B", "lung", 20), T("C", "kidney", 20),
                                    T("D", "bone", 10)]),
                        (8, [L("A", "liver", 20), L("B", "lung", 14), L("C", "kidney", 14), L("D", "bone", 8)]),
                        (16, [L("A", "liver", 21), L("B", "lung", 15), L("C", "kidney", 14)])),
         [None, "PR", "NE"], [BASE, NO, NE_STATE]),
    Case("C13", patient("C13", (0, [T("A", "liver", 40), T("B", "lung", 25)]),
                        (8, [L("A", "liver", 41), L("B", "lung", 26), L("New 1", "liver", 12),
                             L("New 2", "bone", 15)])),
         [None, "PD"], [BASE, WITHOUT], progressing=[0, 2]),
    Case("C18", patient("C18", *C2_SCANS,
                        (24, [L("Liver 1", "liver", 15), L("Lung 1", "lung", 10), L("Lung 2", "lung", 8),
                              L("Node 1", "lymph node", 9)]),
                        (32, [L("Liver 1", "liver", 22), L("Lung 1", "lung", 10), L("Lung 2", "lung", 8),
                              L("Node 1", "lymph node", 9)])),
         [None, "PR", "PR", "NE", "SD"], [BASE, NO, OLIGO, BASE, OLIGO], treated={"Lesion 2": week(17)},
         progressing=[0, 0, 1, 0, 1]),
]
