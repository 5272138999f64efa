"""Real SRs written by other tools (../shared/corpus): what must come out of each."""

from __future__ import annotations

from decimal import Decimal

import pytest

import adapter
from adapter.model import Code, IdentifierKind, MeasurementKind, Role

DATASET2 = "tid1500-fhir/rsna2018_dataset2/Measurements_User2_SemiAuto_Trial2.dcm"
DATASET3 = "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm"


def read(corpus, rel):
    return adapter.read_sr(corpus / rel)


def test_rsna2018_dataset2_has_eleven_lesions_with_sct_sites(corpus):
    report = read(corpus, DATASET2)
    names = [f.tracking_identifier for f in report.findings]
    assert names == ["primary tumor"] + [f"lymph node {i}" for i in range(1, 11)]
    assert report.patient_id == "QIN-HEADNECK-01-0139"
    assert report.imaging_date.isoformat() == "1988-09-13"
    assert report.imaging_date_source == "image-library"
    assert sum(len(f.measurements) for f in report.findings) == 238
    # T-C4004 (SRT) "lymph node of head and neck" -> 312501005 (SCT); nodal
    for node in report.findings[1:]:
        assert node.site == Code("312501005", "SCT")
        assert node.anatomy.nodal and node.anatomy.organ == "lymph node"
        assert node.finding == Code("14799000", "SCT")  # M-80006 Neoplasm, Secondary
    primary = report.findings[0]
    # T-53131 "base of tongue" is missing from the SRT->SCT table; matched by meaning to 47975008
    assert primary.site == Code("47975008", "SCT")
    assert primary.finding == Code("86049000", "SCT")  # M-80003 Neoplasm, Primary
    assert not primary.anatomy.nodal
    assert all(f.identifier_kind is IdentifierKind.HUMAN for f in report.findings)
    # Activity session / time point context from the groups
    assert report.time_point.identifier == "1"


def test_rsna2018_dataset2_volumes_are_converted_from_ml(corpus):
    primary = read(corpus, DATASET2).findings[0]
    volumes = [m for m in primary.measurements if m.kind is MeasurementKind.VOLUME]
    assert len(volumes) == 1
    assert volumes[0].original_unit.value == "ml"
    assert volumes[0].value == Decimal(volumes[0].original_value) * 1000
    assert volumes[0].unit == "mm3"


def test_rsna2018_dataset4_pixelmed_length_on_kidney(corpus):
    report = read(corpus, "tid1500-fhir/rsna2018_dataset4/1.dcm")
    (finding,) = report.findings
    (length,) = finding.measurements
    assert length.kind is MeasurementKind.LENGTH
    assert length.value == Decimal("66.43856134")
    assert length.unit == "mm"
    assert length.concept == Code("410668003", "SCT")  # G-D7FE (SRT)
    assert finding.site == Code("64033007", "SCT")  # T-71000 Kidney
    assert finding.anatomy.organ == "kidney" and finding.anatomy.paired
    assert finding.identifier_kind is IdentifierKind.HASH  # 32-hex tracking identifier is not a name
    assert length.provenance.graphic_type == "POLYLINE"  # SCOORD under the NUM
    assert length.provenance.referenced_sop_instance_uid.endswith("516023762")
    assert report.imaging_date.isoformat() == "1987-06-20"
    assert report.modality == "CT"


def test_dcmjs_structured_report_ohif_v2(corpus):
    report = read(corpus, "dcmjs/structured_report.dcm")
    by_tool = {}
    for finding in report.findings:
        assert finding.identifier_kind is IdentifierKind.TOOL_TAG
        by_tool.setdefault(finding.tracking_identifier.rsplit(":", 1)[1], []).append(finding)
    (bidirectional,) = by_tool["Bidirectional"]
    long_axis, short_axis = bidirectional.measurements
    assert (long_axis.kind, long_axis.value, long_axis.unit) == (MeasurementKind.LONG_AXIS, Decimal("93.9"), "mm")
    assert (short_axis.kind, short_axis.value, short_axis.unit) == (MeasurementKind.SHORT_AXIS, Decimal("47.0"), "mm")
    # the ellipse areas are coded G-D7FE "Length" but carry mm2: read as areas
    areas = [m for f in by_tool["EllipticalRoi"] for m in f.measurements]
    assert [(m.kind, m.unit) for m in areas] == [(MeasurementKind.AREA, "mm2")] * 2
    assert [m.value for m in areas] == [Decimal("4806.42320110457"), Decimal("3905.35929103307")]
    assert [m.value for f in by_tool["Length"] for m in f.measurements] == [
        Decimal("39.3664929116140"), Decimal("133.992062006165")]
    # the ArrowAnnotate NUM has no MeasuredValueSequence: a warning, not a crash
    assert any("Center" in w and "no value" in w for w in report.warnings)
    assert "ArrowAnnotate" not in by_tool  # its group has nothing but a label and the empty NUM
    assert any("coded as a length" in w and "mm2" in w for w in report.warnings)
    assert report.patient_id is None and any("no Patient ID" in w for w in report.warnings)


def test_dcmjs_sample_sr_quarantines_unitless_diameters(corpus):
    report = read(corpus, "dcmjs/sample-sr.dcm")
    (finding,) = report.findings
    assert finding.identifier_kind is IdentifierKind.TOOL_TAG
    kinds = [(m.kind, m.value, m.original_value, m.original_unit.value) for m in finding.measurements]
    assert kinds == [
        (MeasurementKind.LONG_AXIS, None, "64.4505437946691", "1"),
        (MeasurementKind.SHORT_AXIS, None, "42.9670291964462", "1"),
    ]
    assert all(m.quarantined and not m.usable_size for m in finding.measurements)
    assert sum("quarantined" in w for w in report.warnings) == 2
    assert report.patient_id == "PD-1-Lung-00018"


def test_highdicom_multiple_groups(corpus):
    report = read(corpus, "highdicom/sr_document_with_multiple_groups.dcm")
    summary = [
        (f.tracking_identifier, f.template, [(m.kind, m.value, m.unit) for m in f.measurements], f.is_lesion)
        for f in report.findings
    ]
    assert summary == [
        ("Image0001", "1501", [(MeasurementKind.OTHER, Decimal("-119.07385253906"), "[hnsf'U]")], True),
        ("LungNodule0001", "1410", [(MeasurementKind.DIAMETER, Decimal("10.0"), "mm")], True),
        ("Aorta0001", "1410", [(MeasurementKind.DIAMETER, Decimal("20.0"), "mm")], False),
        ("Vertebra0001", "1411", [(MeasurementKind.VOLUME, Decimal("200.0"), "mm3")], False),
    ]
    nodule = report.findings[1]
    assert nodule.site == Code("39607008", "SCT") and nodule.anatomy.organ == "lung"
    assert nodule.finding == Code("27925004", "SCT")
    assert [f.name for f in report.lesions] == ["Image0001", "LungNodule0001"]


def test_highdicom_sr_document_area_in_cm2(corpus):
    report = read(corpus, "highdicom/sr_document.dcm")
    (finding,) = report.findings
    (area,) = finding.measurements
    assert (area.kind, area.value, area.unit) == (MeasurementKind.AREA, Decimal("170"), "mm2")
    assert (area.original_value, area.original_unit.value) == ("1.7", "cm2")
    assert finding.finding == Code("2748008", "SCT")  # T-A7010 Spinal cord
    assert not finding.is_lesion  # a structure, not a tumour
    assert finding.site == Code("297171002", "SCT")  # T-D00F7 (SRT)
    assert finding.topographical_modifier == Code("280734009", "SCT")  # T-11531 (SRT)


def test_hl7_ig_dicom_json_read_despite_its_defects(corpus):
    report = read(corpus, "hl7-dicom-sr/Example-MeasurementReport.json")
    assert report.patient_id == "PID-11235" and report.patient_issuer == "Test Hospital"
    assert report.accession == "ACSN-235813"  # the element whose Value is not a list
    assert any("00080050" in w and "not a list" in w for w in report.warnings)
    (nodule,) = report.findings
    assert nodule.tracking_identifier == "Nodule 1"
    values = {m.kind: m.value for m in nodule.measurements}
    assert values[MeasurementKind.VOLUME] == Decimal("31112.2")
    assert values[MeasurementKind.DIAMETER] == Decimal("49.94462")
    assert nodule.anatomy.organ == "lung"
    assert report.verification_flag == "VERIFIED"


def test_hl7_example_part10_and_json_agree(corpus):
    from_json = read(corpus, "hl7-dicom-sr/Example-MeasurementReport.json")
    from_dcm = read(corpus, "_derived/hl7-dicom-sr/Example-MeasurementReport.fixed-accession.dcm")
    assert from_json.findings == from_dcm.findings
    assert from_json.source_id == from_dcm.source_id


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("pydicom/test-SR.dcm", "no TID 1500"),
        ("pydicom/reportsi.dcm", "Basic Text SR"),
        ("highdicom/sm_annotations.dcm", "not a Structured Report"),
    ],
)
def test_negative_corpus_files_are_rejected_plainly(corpus, rel, reason):
    with pytest.raises(adapter.InputError) as info:
        read(corpus, rel)
    message = str(info.value)
    assert message.startswith(str(corpus / rel) + ": ")
    assert reason in message
    assert "\n" not in message


def test_every_corpus_sr_reads_or_is_rejected_cleanly(corpus):
    for path in sorted(corpus.rglob("*.dcm")):
        try:
            report = adapter.read_sr(path)
        except adapter.InputError as exc:
            assert exc.reason
        else:
            assert report.findings


def test_radiomics_sr_with_1561_measurements(corpus):
    report = read(corpus, DATASET3)
    (mass,) = report.findings
    assert len(mass.measurements) == 1561
    diameter = next(m for m in mass.measurements if m.concept == Code("L0JK", "IBSI"))
    assert diameter.kind is MeasurementKind.DIAMETER and diameter.value is None and diameter.quarantined
    assert sum(m.quarantined is not None for m in mass.measurements) == sum(
        1 for m in mass.measurements if m.kind is not MeasurementKind.OTHER)

