"""SRs the project writes itself (fixtures/generate.py, highdicom) read back exactly."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest

import adapter
from adapter.model import Code, IdentifierKind, MeasurementKind, Role
from fixtures import generate as g

from tests.generated import groups, simple_sr, walk


@pytest.fixture(scope="module")
def demo_reports():
    oligo = g.demo_patients()[0]
    return [adapter.read_sr(data) for data in g.make_series(oligo)]


def test_series_header_and_dates(demo_reports):
    assert [r.imaging_date for r in demo_reports] == [dt.date(2024, 1, 10), dt.date(2024, 3, 6), dt.date(2024, 5, 8)]
    assert {(r.patient_id, r.patient_issuer) for r in demo_reports} == {("DEMO-OLIGO-1", "OLIGO-DEMO")}
    assert len({r.study_uid for r in demo_reports}) == 3
    assert all(r.completion_flag == "COMPLETE" and r.verification_flag == "VERIFIED" for r in demo_reports)
    assert all(r.warnings == () for r in demo_reports)


def test_tracking_uids_are_stable_across_time_points(demo_reports):
    uids = [[f.tracking_uid for f in r.findings] for r in demo_reports]
    assert uids[0] == uids[1] == uids[2]
    assert len(set(uids[0])) == 5


def test_templates_roles_and_sizes(demo_reports):
    baseline = {f.tracking_identifier: f for f in demo_reports[0].findings}
    assert {name: f.template for name, f in baseline.items()} == {
        "Lesion 1": "1410", "Lesion 2": "1410", "Lesion 3": "1501", "Lesion 4": "1411", "Lesion 5": "1501"}
    assert {name: f.role for name, f in baseline.items()} == {
        "Lesion 1": Role.TARGET, "Lesion 2": Role.TARGET, "Lesion 3": Role.TARGET, "Lesion 4": Role.TARGET,
        "Lesion 5": Role.NON_TARGET}
    sizes = {name: [(m.kind, m.value, m.unit) for m in f.measurements] for name, f in baseline.items()}
    assert sizes["Lesion 1"] == [(MeasurementKind.LONG_AXIS, Decimal("42.0"), "mm"),
                                 (MeasurementKind.SHORT_AXIS, Decimal("30.0"), "mm")]
    # written in cm (1.2 cm, 0.9 cm), read in mm
    assert sizes["Lesion 2"] == [(MeasurementKind.LONG_AXIS, Decimal("12.0"), "mm"),
                                 (MeasurementKind.SHORT_AXIS, Decimal("9.0"), "mm")]
    assert [m.original_unit.value for m in baseline["Lesion 2"].measurements] == ["cm", "cm"]
    assert sizes["Lesion 5"] == []
    node = baseline["Lesion 4"]
    assert node.anatomy.nodal and node.anatomy.organ == "lymph node"
    lung = baseline["Lesion 3"]
    assert lung.laterality == Code("7771000", "SCT") and lung.anatomy.paired
    # TID 1501: the SCOORD sits under each NUM
    assert all(m.provenance.graphic_type == "POLYLINE" for m in lung.measurements)
    assert all(f.identifier_kind is IdentifierKind.HUMAN for f in baseline.values())
    assert all(f.method is None and m.method == Code("126081", "DCM")
               for f in baseline.values() for m in f.measurements)


def test_time_point_context_and_responses(demo_reports):
    assert demo_reports[0].time_point.is_baseline
    assert demo_reports[0].time_point.order == 1
    assert demo_reports[2].time_point.identifier == "follow-up 2"
    assert not demo_reports[2].time_point.is_baseline
    bone = next(f for f in demo_reports[1].findings if f.tracking_identifier == "Lesion 5")
    assert bone.response == Code("112046", "DCM")
    assert bone.role is None


def test_dicom_json_and_part10_agree():
    ds = simple_sr()
    from_part10 = adapter.read_sr(g.to_bytes(ds))
    from_json = adapter.read_sr(ds.to_json_dict())
    assert from_json.findings == from_part10.findings
    assert from_json.imaging_date == from_part10.imaging_date
    assert from_json.source_id == from_part10.source_id


def test_missing_template_ids_change_nothing_but_the_template():
    ds = simple_sr()
    plain = adapter.read_sr(copy.deepcopy(ds))
    for group in groups(ds):
        del group.ContentTemplateSequence
    del ds.ContentTemplateSequence  # the root keeps its title (126000, DCM)
    stripped = adapter.read_sr(ds)
    assert [f.template for f in stripped.findings] == [None]
    assert stripped.findings[0].measurements == plain.findings[0].measurements
    assert stripped.findings[0].role == plain.findings[0].role


def test_legacy_srt_codes_and_contains_finding_site_read_the_same():
    ds = simple_sr()
    plain = adapter.read_sr(copy.deepcopy(ds))
    legacy = {"103339001": ("G-A185", "Long Axis"), "103340004": ("G-A186", "Short Axis"),
              "363698007": ("G-C0E3", "Finding Site"), "10200004": ("T-62000", "Liver")}
    for item in walk(ds.ContentSequence):
        for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            for code in item.get(seq) or ():
                if code.CodeValue in legacy:
                    code.CodeValue, code.CodeMeaning = legacy[code.CodeValue]
                    code.CodingSchemeDesignator = "SRT"
        if item.ConceptNameCodeSequence[0].CodeValue == "G-C0E3":
            item.RelationshipType = "CONTAINS"  # dcmjs writes Finding Site this way
    legacy_report = adapter.read_sr(ds)
    assert legacy_report.findings[0].site == plain.findings[0].site == Code("10200004", "SCT")
    assert legacy_report.findings[0].measurements == plain.findings[0].measurements


def test_labels_from_comment_and_free_text_codes():
    ds = simple_sr()
    (group,) = groups(ds)
    finding_item = next(i for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121071")
    code = finding_item.ConceptCodeSequence[0]
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CORNERSTONEFREETEXT", "CST4", "Liver met A"
    report = adapter.read_sr(ds)
    assert report.findings[0].label == "Liver met A"
    assert report.findings[0].finding is None
    assert report.findings[0].name == "Liver met A"


def test_laterality_and_role_codes_from_other_producers():
    ds = simple_sr(laterality="right", site="kidney")
    report = adapter.read_sr(ds)
    (finding,) = report.findings
    assert finding.laterality == Code("24028007", "SCT")
    assert finding.anatomy.organ == "kidney"
    assert finding.qualitative == ()  # role and response are not repeated as free evaluations


def test_long_and_urn_code_values():
    ds = simple_sr()
    (group,) = groups(ds)
    finding_item = next(i for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121071")
    code = finding_item.ConceptCodeSequence[0]
    del code.CodeValue
    code.LongCodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        "LOCAL-NEOPLASM-CODE-LONGER-THAN-16", "99LOCAL", "Local neoplasm")
    site_item = next(i for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "363698007")
    site = site_item.ConceptCodeSequence[0]
    del site.CodeValue
    site.URNCodeValue, site.CodingSchemeDesignator, site.CodeMeaning = (
        "urn:oid:2.16.840.1.113883.99.1", "99URN", "Liver segment VII")
    (finding,) = adapter.read_sr(ds).findings
    assert finding.finding == Code("LOCAL-NEOPLASM-CODE-LONGER-THAN-16", "99LOCAL")
    assert finding.site == Code("urn:oid:2.16.840.1.113883.99.1", "99URN")
    assert finding.anatomy.organ == "liver"  # by the meaning's keyword


def test_groups_under_derived_imaging_measurements():
    ds = simple_sr()
    container = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    container.ConceptNameCodeSequence[0].CodeValue = "126011"
    container.ConceptNameCodeSequence[0].CodeMeaning = "Derived Imaging Measurements"
    (finding,) = adapter.read_sr(ds).findings
    assert finding.tracking_identifier == "Lesion 1"
    assert [m.value for m in finding.measurements] == [Decimal("42.0"), Decimal("30.0")]
