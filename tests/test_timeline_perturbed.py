"""Each way an archive breaks a clean series gives the same timeline as the clean series (issue 4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from adapter.model import MatchMethod
from adapter.timeline import build_timeline_result, build_timelines, timeline_to_dict
from fixtures.generate import make_sr

from timeline_series import (OHIF_TOOL, assessed, c2_patient, clean_series, read, renamed, signature,
                             with_lesions)


@pytest.fixture(scope="module")
def patient():
    return c2_patient()


@pytest.fixture(scope="module")
def clean(patient):
    [timeline] = build_timelines(clean_series(patient))
    return timeline


def only(reports):
    result = build_timeline_result(reports)
    assert result.problems == ()
    [timeline] = result.timelines
    return timeline


def links(timeline) -> set[MatchMethod]:
    return {o.match for lesion in timeline.lesions for o in lesion.observations[1:] if o}


def test_clean_series_is_c2(clean):
    assert [tp.date for tp in clean.time_points] == [dt.date(2024, 1, 10), dt.date(2024, 3, 6), dt.date(2024, 5, 8)]
    assert [tp.is_baseline for tp in clean.time_points] == [True, False, False]
    by_name = {lesion.name: lesion for lesion in clean.lesions}
    liver2 = [o.finding.measurements[0].value for o in by_name["Liver 2"].observations]
    assert liver2 == [25, 12, 20]
    node = by_name["Node 1"]
    assert node.anatomy.nodal and [o.finding.measurements[1].value for o in node.observations] == [18, 9, 9]
    assert links(clean) == {MatchMethod.TRACKING_UID}
    assert clean.conflicts == ()
    # CLINICAL.md C2: oligoprogression inside a RECIST PR (every perturbed series must say the same)
    states = [(tp["state"], tp["recist"] and tp["recist"]["overall"]) for tp in assessed(clean)]
    assert states == [("baseline", None), ("no-progression", "PR"), ("oligoprogression", "PR")]


def test_reverse_delivery(patient, clean):
    assert signature(perturbed := only(list(reversed(clean_series(patient))))) == signature(clean)
    assert assessed(perturbed) == assessed(clean)


def test_any_arrival_order_gives_identical_output(patient):
    reports = clean_series(patient)
    outputs = {repr(timeline_to_dict(only(list(order)))) for order in itertools.permutations(reports)}
    assert len(outputs) == 1


def test_ohif_exports_with_fresh_tracking_uids_link_by_label(patient, clean):
    reports = read(*(make_sr(patient, tp, order, tracking_salt=f"export {order}", tool_tag=OHIF_TOOL)
                     for order, tp in enumerate(patient.time_points, start=1)))
    assert len({f.tracking_uid for r in reports for f in r.findings}) == 15  # a new UID at every export
    assert {f.tracking_identifier for r in reports for f in r.findings} == {OHIF_TOOL}
    timeline = only(reports)
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    assert links(timeline) == {MatchMethod.LABEL}


def test_labels_differing_in_case_and_spacing(patient, clean):
    spellings = [str, lambda n: n.lower().replace(" ", "  "), lambda n: n.upper().replace(" ", "-")]
    tps = [renamed(tp, spell) for tp, spell in zip(patient.time_points, spellings, strict=True)]
    reports = read(*(make_sr(patient, tp, order) for order, tp in enumerate(tps, start=1)))
    assert {f.name for f in reports[2].findings} >= {"LIVER-1", "NODE-1"}
    timeline = only(reports)
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    assert links(timeline) == {MatchMethod.LABEL}


def test_labels_link_only_within_one_organ_group(patient):
    first, second = patient.time_points[:2]
    moved = dataclasses.replace(second, lesions=[
        dataclasses.replace(lesion, site="kidney", name="Liver 1", tracking_uid="2.25.1")
        if lesion.name == "Liver 1" else lesion for lesion in second.lesions])
    timeline = only(read(make_sr(patient, first, 1), make_sr(patient, moved, 2)))
    named = [lesion for lesion in timeline.lesions if lesion.name == "Liver 1"]
    assert sorted((lesion.anatomy.organ, lesion.is_new) for lesion in named) == [("kidney", True), ("liver", False)]


def test_resaved_sr_naming_its_predecessor_supersedes_it(patient, clean):
    tp = patient.time_points[1]
    wrong = dataclasses.replace(tp, lesions=[dataclasses.replace(lesion, long_axis=99.0) for lesion in tp.lesions])
    first = make_sr(patient, wrong, 2, instance="v1", observer="Reader^Two", content_time=dt.time(13, 0))
    corrected = make_sr(patient, tp, 2, instance="v2", content_time=dt.time(12, 0), previous_versions=[first])
    reports = read(make_sr(patient, patient.time_points[0], 1), first, corrected,
                   make_sr(patient, patient.time_points[2], 3))
    assert reports[2].predecessors == (first.SOPInstanceUID,)
    timeline = only(reports)
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    assert timeline.time_points[1].superseded == (first.SOPInstanceUID,)
    assert timeline.time_points[1].reports == (corrected.SOPInstanceUID,)


def test_later_save_by_the_same_observer_supersedes(patient, clean):
    tp = patient.time_points[1]
    draft = with_lesions(tp, long_axis=50.0)
    early = make_sr(patient, draft, 2, instance="save 1", content_time=dt.time(10, 0))
    late = make_sr(patient, tp, 2, instance="save 2", content_time=dt.time(11, 30))
    reports = read(make_sr(patient, patient.time_points[2], 3), late, early,
                   make_sr(patient, patient.time_points[0], 1))
    timeline = only(reports)
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    assert timeline.time_points[1].superseded == (early.SOPInstanceUID,)


def test_two_readers_disagreeing_on_one_study_is_a_conflict_not_a_guess(patient):
    tp = patient.time_points[1]
    other = make_sr(patient, with_lesions(tp, long_axis=50.0), 2, instance="reader 2", observer="Reader^Two")
    timeline = only(read(make_sr(patient, patient.time_points[0], 1), make_sr(patient, tp, 2), other))
    liver1 = next(lesion for lesion in timeline.lesions if lesion.name == "Liver 1")
    assert liver1.observations[1] is None  # not assessed there, rather than one reader picked
    assert any("two findings claim 'Liver 1'" in c for c in timeline.conflicts)


def test_duplicate_delivery_is_ignored(patient, clean):
    reports = clean_series(patient)
    timeline = only(reports + [reports[1], reports[1]])
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    assert timeline.time_points[1].reports == (reports[1].source_id,)
    assert any("arrived 3 times" in w for w in timeline.warnings)


def test_two_studies_on_one_date_measuring_different_lesions_form_one_time_point(patient, clean):
    tp = patient.time_points[1]
    chest = dataclasses.replace(tp, study_key="chest", study_time="080000",
                                lesions=[lesion for lesion in tp.lesions if lesion.site == "lung"])
    abdomen = dataclasses.replace(tp, study_key="abdomen", study_time="101500",
                                  lesions=[lesion for lesion in tp.lesions if lesion.site != "lung"])
    reports = read(make_sr(patient, patient.time_points[0], 1), make_sr(patient, abdomen, 2),
                   make_sr(patient, chest, 2), make_sr(patient, patient.time_points[2], 3))
    assert len({r.study_uid for r in reports}) == 4
    timeline = only(reports)
    assert signature(perturbed := timeline) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
    merged = timeline.time_points[1]
    assert merged.study_uid == reports[2].study_uid and merged.time == dt.time(8, 0)  # the earlier study
    assert merged.additional_study_uids == (reports[1].study_uid,)


def test_two_studies_on_one_date_measuring_the_same_lesion_stay_apart(patient):
    tp = patient.time_points[1]
    morning = dataclasses.replace(tp, study_key="morning", study_time="080000")
    repeat = dataclasses.replace(tp, study_key="repeat", study_time="150000")
    timeline = only(read(make_sr(patient, patient.time_points[0], 1), make_sr(patient, repeat, 2),
                         make_sr(patient, morning, 2)))
    assert [(tp.date, tp.time) for tp in timeline.time_points] == [
        (dt.date(2024, 1, 10), dt.time(9, 30)), (dt.date(2024, 3, 6), dt.time(8, 0)),
        (dt.date(2024, 3, 6), dt.time(15, 0))]
    assert all(o is not None for lesion in timeline.lesions for o in lesion.observations)
    assert {o.match for lesion in timeline.lesions for o in lesion.observations[1:]} == {MatchMethod.TRACKING_UID}
    assert not any(lesion.is_new for lesion in timeline.lesions)


def test_centimetres_in_one_report_and_millimetres_in_the_next(patient, clean):
    tps = list(patient.time_points)
    tps[1] = with_lesions(tps[1], unit="cm")
    reports = read(*(make_sr(patient, tp, order) for order, tp in enumerate(tps, start=1)))
    assert {m.original_unit.value for f in reports[1].findings for m in f.measurements} == {"cm"}
    assert signature(perturbed := only(reports)) == signature(clean)
    assert assessed(perturbed) == assessed(clean)
