"""Bad input: one clear reason naming the input, never a traceback, never an empty success."""

from __future__ import annotations

import copy
import json

import pytest
from pydicom import Dataset

import adapter
from fixtures import generate as g
from tests.generated import groups, simple_patient, simple_sr

DATASET2 = "tid1500-fhir/rsna2018_dataset2/Measurements_User2_SemiAuto_Trial2.dcm"


def rejected(source, **kwargs) -> str:
    with pytest.raises(adapter.InputError) as info:
        adapter.read_sr(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_not_dicom(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Patient was seen on Monday; lesions measured by hand.\n" * 20)
    assert rejected(path) == f"{path}: is not a DICOM file (no DICM prefix and no SOP Class UID)"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    assert rejected(path) == f"{path}: is empty"


def test_missing_file(tmp_path):
    assert "cannot be read" in rejected(tmp_path / "nope.dcm")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95, 0.999])
def test_truncated(corpus, fraction):
    data = (corpus / DATASET2).read_bytes()
    message = rejected(data[: int(len(data) * fraction)], name="cut.dcm")
    assert message.startswith("cut.dcm: is a damaged or truncated DICOM file")


def test_non_sr_object():
    image = g.source_image(simple_patient(), simple_patient().time_points[0])
    message = rejected(image, name="ct.dcm")
    assert message == "ct.dcm: is not a Structured Report but a CT Image Storage object"


def test_other_sr_class():
    ds = simple_sr()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
    assert "not a measurement SR" in rejected(ds, name="dose.dcm")


def test_sr_without_tid1500_content():
    ds = simple_sr()
    ds.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    ds.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    ds.ConceptNameCodeSequence[0].CodeMeaning = "Diagnostic imaging report"
    del ds.ContentTemplateSequence
    assert rejected(ds, name="x") == (
        "x: has no TID 1500 Imaging Measurement Report (document title: Diagnostic imaging report)")


def test_tid1500_root_without_groups():
    ds = simple_sr()
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "126010":
            item.ContentSequence = []
    assert rejected(ds, name="x") == "x: is a TID 1500 report without any measurement group"


def test_tid1500_root_with_zero_usable_groups():
    """Groups that hold nothing usable: never a success with no lesions (dcmqi exits 0 here)."""
    ds = simple_sr()
    for group in groups(ds):
        group.ContentSequence = [
            item for item in group.ContentSequence
            if item.ValueType not in ("NUM", "CODE") or item.ConceptNameCodeSequence[0].CodeValue == "363698007"
        ]
        for item in group.ContentSequence:
            if item.ConceptNameCodeSequence[0].CodeValue == "363698007":
                group.ContentSequence.remove(item)
    message = rejected(ds, name="x")
    assert message == "x: is a TID 1500 report whose 1 measurement group(s) hold no usable measurement or evaluation"


def test_over_long_uids_are_read_with_a_warning():
    ds = simple_sr(tracking_uid="1.2.840.113747.20080222.83311413144566317081790268995.100.99999999")
    report = adapter.read_sr(ds)
    assert report.findings[0].tracking_uid.endswith("99999999")
    assert any("Tracking UID is 66 characters" in w for w in report.warnings)


def test_broken_character_set_is_read_with_a_warning():
    ds = simple_sr()
    ds.SpecificCharacterSet = "ISO_IR 999"
    ds.PatientName = "M\xfcller^Anna"
    data = g.to_bytes(ds)
    report = adapter.read_sr(data, name="charset.dcm")
    assert report.findings
    assert any("ISO_IR 999" in w for w in report.warnings)


def test_undecodable_text_in_a_declared_character_set():
    ds = simple_sr()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    data = g.to_bytes(ds)
    marker = b"Lesion 1"
    data = data.replace(marker, b"Les\xff\xfen 1", 1)  # invalid UTF-8, same length
    report = adapter.read_sr(data, name="utf8.dcm")
    assert report.findings[0].tracking_identifier == "Les\ufffd\ufffdn 1"
    assert any("Failed to decode" in w and "replacement characters" in w for w in report.warnings)


def test_json_that_is_not_dicom(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"hello": "world"}))
    assert rejected(path) == f"{path}: is JSON but neither DICOM JSON (PS3.18) nor FHIR"


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"00080016": {"vr": "UI", "Value": [')
    assert rejected(path).startswith(f"{path}: is not valid JSON")


def test_fhir_resource_is_not_an_sr():
    message = rejected(json.dumps({"resourceType": "Observation", "status": "final"}).encode(), name="obs.json")
    assert message == "obs.json: is a FHIR Observation resource, not a DICOM SR"


def test_dicom_json_with_bad_values():
    obj = simple_sr().to_json_dict()
    obj["0040A730"]["Value"] = "not a sequence item"
    message = rejected(obj, name="bad.json")
    assert message.startswith("bad.json: ")


def test_measurement_without_unit_is_quarantined():
    ds = simple_sr()
    (group,) = groups(ds)
    num = next(i for i in group.ContentSequence if i.ValueType == "NUM" and i.RelationshipType == "CONTAINS")
    del num.MeasuredValueSequence[0].MeasurementUnitsCodeSequence
    report = adapter.read_sr(ds)
    long_axis = report.findings[0].measurements[0]
    assert long_axis.value is None and long_axis.quarantined == "no unit given for a length"


def test_nan_value_is_skipped_with_a_warning():
    ds = simple_sr()
    (group,) = groups(ds)
    num = next(i for i in group.ContentSequence if i.ValueType == "NUM" and i.RelationshipType == "CONTAINS")
    num.MeasuredValueSequence[0].NumericValue = "NaN"
    report = adapter.read_sr(ds)
    assert len(report.findings[0].measurements) == 1
    assert any("no finite value" in w for w in report.warnings)


def test_input_is_never_changed():
    ds = simple_sr()
    before = copy.deepcopy(ds)
    adapter.read_sr(ds)
    assert ds == before


def test_wrong_argument_type_is_a_programming_error():
    with pytest.raises(TypeError):
        adapter.read_sr(12345)


def test_empty_dataset():
    assert "no TID 1500" in rejected(Dataset(), name="blank")
