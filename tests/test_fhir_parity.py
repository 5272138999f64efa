"""The FHIR twin of a generated SR series reads into the same Reports in everything the timeline uses:
patient, study, date, per-finding tracking UID, site/organ, role, response, measurement kinds and mm."""

from __future__ import annotations

import pytest

import adapter
from adapter.model import Report, SourceKind
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import NON_TARGET_PD, Lesion, Patient, TimePoint, demo_patients, make_series


def timeline_view(report: Report):
    findings = sorted(
        (f.tracking_uid, f.tracking_identifier, f.site, f.laterality, f.anatomy, f.is_lesion, f.role, f.response,
         tuple(sorted((m.kind.value, m.value, m.unit, m.quarantined) for m in f.measurements)))
        for f in report.findings
    )
    return (report.patient_id, report.patient_issuer, report.study_uid, report.imaging_date, tuple(findings))


def a_patient_with_volumes_and_progression() -> Patient:
    import datetime as dt

    patient = Patient("PARITY-3", issuer="OLIGO-DEMO")
    patient.time_points = [
        TimePoint(dt.date(2023, 9, 1), baseline=True, lesions=[
            Lesion("Liver 1", "liver", 35.0, 22.0, volume=4100.0, role="target", template="1411"),
            Lesion("Node 1", "lymph node", 22.0, 16.0, role="target", unit="cm"),
            Lesion("Brain", "brain", role="non-target", template="1501"),
        ]),
        TimePoint(dt.date(2023, 11, 3), lesions=[
            Lesion("Liver 1", "liver", 36.5, 23.0, volume=4300.0, template="1411"),
            Lesion("Node 1", "lymph node", 12.0, 9.0, unit="cm"),
            Lesion("Brain", "brain", response=NON_TARGET_PD, template="1501"),
            Lesion("Kidney new", "kidney", 14.0, 10.0, laterality="right"),
        ]),
    ]
    return patient


PATIENTS = demo_patients() + [a_patient_with_volumes_and_progression()]


@pytest.mark.parametrize("shapes", [("ig-r5",), ("mcode-r4",), ("ig-r5", "mcode-r4")])
@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.patient_id)
def test_fhir_twin_equals_the_sr_series(patient, shapes):
    from_sr = [adapter.read_sr(data) for data in make_series(patient)]
    from_fhir = []
    for bundle in make_fhir_series(patient, shapes):
        (report,) = adapter.read_fhir(bundle)
        assert report.source_kind is SourceKind.FHIR
        assert report.warnings == ()
        from_fhir.append(report)
    assert [timeline_view(r) for r in from_fhir] == [timeline_view(r) for r in from_sr]


def test_the_view_compares_real_values():
    """The comparison above sees sizes, roles and responses: a changed size breaks it."""
    patient = demo_patients()[0]
    sr = adapter.read_sr(make_series(patient)[2])
    (fhir,) = adapter.read_fhir(make_fhir_series(patient)[2])
    assert timeline_view(sr) == timeline_view(fhir)
    lesion2 = next(f for f in fhir.findings if f.tracking_identifier == "Lesion 2")
    assert [(m.kind.value, m.value) for m in lesion2.measurements] == [("long-axis", 20), ("short-axis", 15)]
    patient.time_points[2].lesions[1].long_axis = 21.0
    (changed,) = adapter.read_fhir(make_fhir_series(patient)[2])
    assert timeline_view(changed) != timeline_view(sr)


def test_half_sr_half_fhir_carry_the_same_lesion_identities():
    """A patient described half by SRs and half by FHIR: the same tracking UIDs on both sides."""
    patient = demo_patients()[1]
    srs = [adapter.read_sr(data) for data in make_series(patient)]
    fhir = [adapter.read_fhir(b)[0] for b in make_fhir_series(patient, ("mcode-r4",))]
    mixed = [srs[0], fhir[1], srs[2]]
    uids = [{f.tracking_uid for f in r.findings} for r in mixed]
    assert uids[0] == uids[1] < uids[2]  # two new lesions at the last time point
    assert len({(r.patient_id, r.patient_issuer) for r in mixed}) == 1
    assert [r.imaging_date.isoformat() for r in mixed] == ["2024-02-01", "2024-04-02", "2024-06-04"]
