"""Timeline rules one by one: patients, time points, identity methods, conflicts, new and disappeared."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import adapter
from adapter.model import MatchMethod, Role
from adapter.timeline import TimelineOptions, build_timeline_result, build_timelines, normalise_label
from fixtures.generate import Lesion, Patient, TimePoint, make_sr

from timeline_series import OHIF_TOOL, c2_patient, clean_series, read, without_labels

D1, D2, D3 = dt.date(2024, 1, 10), dt.date(2024, 3, 6), dt.date(2024, 5, 8)


def one(reports, **options):
    result = build_timeline_result(reports, TimelineOptions(**options) if options else None)
    [timeline] = result.timelines
    return timeline


def by_name(timeline):
    return {lesion.name: lesion for lesion in timeline.lesions}


def long_axes(lesion):
    return [o.finding.measurements[0].value if o else None for o in lesion.observations]


def test_normalised_label_ignores_case_spaces_and_punctuation():
    assert normalise_label("Lesion 1") == normalise_label(" lesion  1 ") == normalise_label("LESION-1") == "lesion1"
    assert normalise_label("Lesion 1") != normalise_label("Lesion 11")
    assert normalise_label(" - ") is None


def test_report_without_patient_id_is_reported_not_placed():
    patient = c2_patient()
    reports = clean_series(patient)
    anonymous = dataclasses.replace(reports[1], patient_id=None, source_id="1.2.3.anonymous")
    result = build_timeline_result(reports + [anonymous])
    assert [p.source_id for p in result.problems] == ["1.2.3.anonymous"]
    assert "no patient id" in result.problems[0].reason and "cannot be assessed" in result.problems[0].reason
    [timeline] = result.timelines
    assert "1.2.3.anonymous" not in timeline.time_points[1].reports


def test_patients_are_keyed_by_id_and_issuer():
    a, b = c2_patient("SAME-ID"), c2_patient("SAME-ID")
    b.issuer = "OTHER-HOSPITAL"
    timelines = build_timelines(clean_series(a) + clean_series(b))
    assert [(t.patient_id, t.patient_issuer) for t in timelines] == [("SAME-ID", "OLIGO-DEMO"),
                                                                      ("SAME-ID", "OTHER-HOSPITAL")]
    assert all(any("another issuer" in w for w in t.warnings) for t in timelines)


def test_report_without_any_date_is_reported():
    reports = clean_series(c2_patient())
    undated = dataclasses.replace(reports[2], imaging_date=None, study_uid="1.2.3.9", source_id="1.2.3.undated")
    result = build_timeline_result(reports + [undated])
    assert [(p.source_id, p.reason) for p in result.problems] == [
        ("1.2.3.undated", "has no imaging date, so it cannot be placed in time")]


def test_non_tumour_findings_never_enter_the_timeline():
    reports = clean_series(c2_patient())
    aorta = dataclasses.replace(reports[0].findings[0], label="Aorta0001", tracking_uid="2.25.77", is_lesion=False)
    reports[0] = dataclasses.replace(reports[0], findings=reports[0].findings + (aorta,))
    timeline = one(reports)
    assert "Aorta0001" not in by_name(timeline) and len(timeline.lesions) == 5
    assert any("not tumour" in w for w in timeline.warnings)


def test_corpus_structures_are_left_out_and_anonymous_report_reported(corpus):
    names = ["highdicom/sr_document_with_multiple_groups.dcm", "highdicom/sr_document.dcm",
             "dcmjs/structured_report.dcm"]
    reports = [adapter.read_sr(corpus / name) for name in names]
    result = build_timeline_result(reports)
    assert [p.source_id for p in result.problems] == [reports[2].source_id]  # empty PatientID (OHIF v2)
    [timeline] = result.timelines
    assert timeline.patient_id == "1CT1" and len(timeline.time_points) == 1  # both SRs of one study
    lesion_names = {lesion.name for lesion in timeline.lesions}
    assert "LungNodule0001" in lesion_names
    assert not lesion_names & {"Aorta0001", "Vertebra0001", "Planar ROI Measurements"}  # aorta, vertebra, cord


def test_disappeared_differs_from_not_assessed():
    patient = c2_patient()
    last = patient.time_points[2]
    last.lesions = [dataclasses.replace(lesion, long_axis=0.0) if lesion.name == "Lung 1" else lesion
                    for lesion in last.lesions if lesion.name != "Lung 2"]
    timeline = one(clean_series(patient))
    lesions = by_name(timeline)
    assert long_axes(lesions["Lung 1"]) == [20, 10, 0]  # disappeared: measured as 0 mm
    assert lesions["Lung 2"].observations[2] is None  # not assessed: absent from the report


def test_new_lesions_are_those_first_seen_after_the_baseline():
    patient = c2_patient()
    pre, base, follow = (TimePoint(dt.date(2023, 12, 1), [Lesion("Early", "liver", 11.0)]),
                         patient.time_points[0], patient.time_points[1])
    base = dataclasses.replace(base, lesions=base.lesions + [Lesion("Early", "liver", 12.0)])
    follow = dataclasses.replace(follow, lesions=follow.lesions + [Lesion("Adrenal new", "adrenal gland", 14.0)])
    timeline = one(read(make_sr(patient, pre, 1), make_sr(patient, base, 2), make_sr(patient, follow, 3)))
    assert [tp.is_baseline for tp in timeline.time_points] == [False, True, False]
    lesions = by_name(timeline)
    assert lesions["Adrenal new"].is_new and lesions["Adrenal new"].role is None
    assert not lesions["Early"].is_new and not lesions["Liver 1"].is_new
    assert lesions["Liver 1"].role is Role.TARGET
    assert [lesion.lesion_id for lesion in timeline.lesions][:2] == ["L1", "L2"]
    assert timeline.lesions[0].name == "Early"  # ids follow first appearance


def test_without_a_baseline_flag_the_first_time_point_is_baseline():
    patient = c2_patient()
    patient.time_points = [dataclasses.replace(tp, baseline=False) for tp in patient.time_points]
    timeline = one(clean_series(patient))
    assert [tp.is_baseline for tp in timeline.time_points] == [True, False, False]


def test_body_structure_identifiers_link_when_nothing_else_does():
    reports = without_labels(read(*(make_sr(c2_patient(), tp, i, tracking_salt=f"x{i}", tool_tag=OHIF_TOOL)
                                    for i, tp in enumerate(c2_patient().time_points, start=1))))
    reports = [dataclasses.replace(r, findings=tuple(
        dataclasses.replace(f, body_structure_ids=(f"urn:oid:1.2.3|tumor-{n}",)) for n, f in enumerate(r.findings)))
        for r in reports]
    timeline = one(reports)
    assert len(timeline.lesions) == 5
    assert {o.match for lesion in timeline.lesions for o in lesion.observations[1:]} == {MatchMethod.BODY_STRUCTURE}
    assert timeline.lesions[1].observations[2].finding.measurements[0].value == 20  # liver 2, C2


def _unnamed(first: list[Lesion], second: list[Lesion]):
    patient = Patient("TL-PROBABLE")
    patient.time_points = [TimePoint(D1, first, baseline=True), TimePoint(D2, second)]
    return without_labels(read(*(make_sr(patient, tp, i, tracking_salt=f"export {i}", tool_tag=OHIF_TOOL)
                                 for i, tp in enumerate(patient.time_points, start=1))))


def test_probable_link_by_organ_laterality_and_size_when_unique():
    timeline = one(_unnamed(
        [Lesion("a", "liver", 30.0), Lesion("b", "lung", 20.0, laterality="left"),
         Lesion("c", "lung", 20.0, laterality="right")],
        [Lesion("a", "liver", 27.0), Lesion("b", "lung", 21.0, laterality="left"),
         Lesion("c", "lung", 19.0, laterality="right")]))
    assert len(timeline.lesions) == 3 and timeline.conflicts == ()
    assert [(long_axes(lesion), lesion.observations[1].match) for lesion in timeline.lesions] == [
        ([30, 27], MatchMethod.PROBABLE), ([20, 21], MatchMethod.PROBABLE), ([20, 19], MatchMethod.PROBABLE)]


def test_probable_needs_a_size_inside_the_tolerance():
    timeline = one(_unnamed([Lesion("a", "liver", 30.0)], [Lesion("a", "liver", 15.0)]))
    assert [lesion.is_new for lesion in timeline.lesions] == [False, True]
    wide = one(_unnamed([Lesion("a", "liver", 30.0)], [Lesion("a", "liver", 15.0)]),
               probable_relative_tolerance=Decimal("0.5"))
    assert [long_axes(lesion) for lesion in wide.lesions] == [[30, 15]]


def test_ambiguous_pairing_is_reported_not_guessed():
    timeline = one(_unnamed([Lesion("a", "liver", 20.0), Lesion("b", "liver", 22.0)],
                            [Lesion("a", "liver", 21.0), Lesion("b", "liver", 21.5)]))
    assert MatchMethod.PROBABLE not in {o.match for lesion in timeline.lesions for o in lesion.observations if o}
    assert len(timeline.conflicts) == 2 and all("ambiguous pairing" in c for c in timeline.conflicts)


def test_two_findings_with_one_name_in_one_report_are_a_conflict():
    patient = c2_patient()
    follow = patient.time_points[1]
    follow = dataclasses.replace(follow, lesions=follow.lesions + [Lesion("liver 1", "liver", 40.0)])
    timeline = one(read(make_sr(patient, patient.time_points[0], 1), make_sr(patient, follow, 2)))
    assert by_name(timeline)["Liver 1"].observations[1] is None
    assert any("two findings claim 'Liver 1'" in c for c in timeline.conflicts)


def test_fragments_sharing_the_lesions_tracking_uid_are_summed():
    """CLINICAL.md §5.2 C12: liver A 40 -> fragments 18 + 15 = 33."""
    patient = Patient("TL-C12")
    uid = "2.25.4242"
    patient.time_points = [
        TimePoint(D1, [Lesion("Liver A", "liver", 40.0, tracking_uid=uid, role="target")], baseline=True),
        TimePoint(D2, [Lesion("Liver A", "liver", 18.0, tracking_uid=uid),
                       Lesion("Liver A (part 2)", "liver", 15.0, tracking_uid=uid)]),
    ]
    timeline = one(clean_series(patient))
    [lesion] = timeline.lesions
    assert long_axes(lesion) == [40, 33]
    assert any("fragments" in w for w in timeline.warnings)


def test_fragments_of_a_node_are_a_conflict():
    patient = Patient("TL-NODE")
    uid = "2.25.4343"
    patient.time_points = [
        TimePoint(D1, [Lesion("Node", "lymph node", 25.0, 18.0, tracking_uid=uid)], baseline=True),
        TimePoint(D2, [Lesion("Node", "lymph node", 12.0, 9.0, tracking_uid=uid),
                       Lesion("Node b", "lymph node", 11.0, 8.0, tracking_uid=uid)]),
    ]
    timeline = one(clean_series(patient))
    assert timeline.lesions[0].observations[1] is None
    assert any("cannot be summed" in c for c in timeline.conflicts)


def test_coalesced_lesions_recorded_by_convention_keep_their_identities():
    """CLINICAL.md §1.3/C12: B 20 and C 15 coalesce into 42, recorded on B, C recorded as 0."""
    patient = Patient("TL-MERGE")
    patient.time_points = [
        TimePoint(D1, [Lesion("B", "liver", 20.0), Lesion("C", "liver", 15.0)], baseline=True),
        TimePoint(D2, [Lesion("B", "liver", 42.0), Lesion("C", "liver", 0.0)]),
    ]
    timeline = one(clean_series(patient))
    assert [long_axes(lesion) for lesion in timeline.lesions] == [[20, 42], [15, 0]]
    assert not any(lesion.is_new for lesion in timeline.lesions)


def test_a_finding_matching_two_lesions_is_a_conflict():
    patient = c2_patient()
    reports = clean_series(patient)
    liver1, liver2 = reports[0].findings[:2]
    # the follow-up's liver 1 carries liver 1's Tracking UID and its BodyStructure id names liver 2 ...
    reports[0] = dataclasses.replace(reports[0], findings=(
        dataclasses.replace(liver1, body_structure_ids=("t|1",)),
        dataclasses.replace(liver2, body_structure_ids=("t|2",))) + reports[0].findings[2:])
    odd = dataclasses.replace(reports[1].findings[0], tracking_uid="2.25.999", label=None,
                              tracking_identifier=OHIF_TOOL, identifier_kind=adapter.model.IdentifierKind.TOOL_TAG,
                              body_structure_ids=("t|1", "t|2"))
    reports[1] = dataclasses.replace(reports[1], findings=(odd,) + reports[1].findings[1:])
    timeline = one(reports)
    assert by_name(timeline)["Liver 1"].observations[1] is None
    assert any("matches 2 lesions by body-structure" in c for c in timeline.conflicts)


def test_a_report_without_study_uid_joins_the_only_study_of_its_day():
    """E.g. a FHIR rendering of the same reading: same sizes, other names, no ImagingStudy."""
    reports = clean_series(c2_patient())
    twin = dataclasses.replace(
        reports[1], source_id="Observation/abc", study_uid=None, observer=None, content_datetime=None,
        findings=tuple(dataclasses.replace(f, label=f"Tumor {n}") for n, f in enumerate(reports[1].findings)))
    timeline = one(reports + [twin])
    assert len(timeline.time_points) == 3
    assert timeline.time_points[1].reports == ("Observation/abc", reports[1].source_id)  # undated first
    assert timeline.conflicts == () and [len(long_axes(lesion)) for lesion in timeline.lesions] == [3] * 5
    assert any("joins study" in w for w in timeline.warnings)
    apart = one(reports + [twin], attach_to_only_study_of_the_day=False)
    assert len(apart.time_points) == 4  # same date, same lesions: kept as a separate time point


def test_a_lesion_conflicted_at_baseline_is_not_new_later():
    patient = c2_patient()
    base = patient.time_points[0]
    base = dataclasses.replace(base, lesions=base.lesions + [Lesion("LIVER 1", "liver", 44.0)])
    timeline = one(read(make_sr(patient, base, 1), make_sr(patient, patient.time_points[1], 2)))
    liver1 = by_name(timeline)["Liver 1"]
    assert liver1.observations[0] is None and long_axes(liver1)[1] == 15 and not liver1.is_new


def test_reports_naming_each_other_as_predecessor_are_both_kept():
    reports = clean_series(c2_patient())
    a = dataclasses.replace(reports[1], source_id="1.9.1", predecessors=("1.9.2",), observer="A")
    b = dataclasses.replace(reports[1], source_id="1.9.2", predecessors=("1.9.1",), observer="B",
                            content_datetime=dt.datetime(2024, 3, 7, 8, 0))
    timeline = one([reports[0], a, b])
    assert timeline.time_points[1].reports == ("1.9.1", "1.9.2")
    assert any("name each other" in w for w in timeline.warnings)


def test_a_differently_named_finding_is_not_paired_by_size_unless_asked():
    patient = Patient("TL-NAMED")
    patient.time_points = [TimePoint(D1, [Lesion("Liver 1", "liver", 30.0)], baseline=True),
                           TimePoint(D2, [Lesion("Liver 9", "liver", 29.0)])]
    reports = clean_series(patient)
    assert [lesion.is_new for lesion in one(reports).lesions] == [False, True]
    [lesion] = one(reports, probable_only_for_unnamed=False).lesions
    assert long_axes(lesion) == [30, 29] and lesion.observations[1].match is MatchMethod.PROBABLE


def test_generic_producer_names_link_only_when_asked():
    patient = Patient("TL-GENERIC")
    patient.time_points = [TimePoint(D1, [Lesion("Measurements group 1", "liver", 40.0)], baseline=True),
                           TimePoint(D2, [Lesion("Measurements group 1", "liver", 20.0)])]
    reports = read(*(make_sr(patient, tp, i, tracking_salt=f"export {i}")
                     for i, tp in enumerate(patient.time_points, start=1)))
    reports = without_labels(reports)
    assert [lesion.is_new for lesion in one(reports).lesions] == [False, True]
    [lesion] = one(reports, match_generic_identifiers=True).lesions
    assert long_axes(lesion) == [40, 20] and lesion.observations[1].match is MatchMethod.LABEL
