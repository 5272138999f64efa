"""Bad FHIR input: one clear message naming the input and the reason; the rest is processed."""

from __future__ import annotations

from pathlib import Path

import pytest

import adapter
from adapter.sources import looks_like_fhir

FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def reason(source, **kwargs) -> str:
    with pytest.raises(adapter.InputError) as caught:
        adapter.read_fhir(source, **kwargs)
    return caught.value.reason


def test_invalid_json_names_the_position():
    path = FHIR / "bad" / "invalid.json"
    with pytest.raises(adapter.InputError) as caught:
        adapter.read_fhir(path)
    assert caught.value.source == str(path)
    assert caught.value.reason.startswith("is not valid JSON (Expecting value: line 2 column 1")


def test_json_that_is_not_fhir():
    assert reason(FHIR / "bad" / "not-fhir.json") == "is JSON but not FHIR (it has no resourceType)"
    dicom_json = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.88.22"]}}
    assert reason(dicom_json) == "is DICOM JSON (PS3.18), not FHIR"
    assert reason(b"\x00\x01binary") == "is not JSON, so neither a FHIR resource, Bundle nor NDJSON"
    assert reason(b"   ") == "is empty"


def test_unknown_resource_type_at_top_and_inside_a_bundle():
    assert reason(FHIR / "bad" / "unknown-resource-type.json") == (
        "has resourceType 'TumourMeasurement', which is not a FHIR resource type")
    good = {"resourceType": "Observation", "status": "final", "subject": {"identifier": {"value": "U-1"}},
            "effectiveDateTime": "2024-01-01",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "103339001"}]},
            "valueQuantity": {"value": 12, "system": "http://unitsofmeasure.org", "code": "mm"}}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Lesion"}}, {"resource": good}]}
    (report,) = adapter.read_fhir(bundle)
    assert report.findings[0].measurements[0].value == 12
    assert "entry 1 has resourceType 'Lesion', which is not a FHIR resource type; skipped" in report.warnings


def test_observation_without_a_value():
    assert reason(FHIR / "bad" / "observation-without-value.json") == (
        "holds no usable lesion observation (Observation/ld-no-value (the resource) "
        "(Size.maximum dimension in Tumor) has no value; skipped)")


def test_only_withdrawn_observations():
    obs = {"resourceType": "Observation", "id": "gone", "status": "entered-in-error",
           "code": {"coding": [{"system": "http://loinc.org", "code": "33728-7"}]},
           "valueQuantity": {"value": 12, "system": "http://unitsofmeasure.org", "code": "mm"}}
    assert reason(obs) == "holds no usable lesion observation (Observation/gone (the resource) is entered-in-error; ignored)"


def test_a_bundle_without_observations():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}}]}
    assert reason(bundle, name="upload") == "holds no Observation (only Patient)"


def test_tumor_size_of_a_specimen_is_not_a_lesion_in_the_body():
    obs = {"resourceType": "Observation", "id": "path", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "21889-1"}]},
           "specimen": {"reference": "Specimen/s1"},
           "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "33728-7"}]},
                          "valueQuantity": {"value": 1.2, "system": "http://unitsofmeasure.org", "code": "cm"}}]}
    assert "is a TumorSize of an excised specimen" in reason(obs)


def test_sniffing_sends_fhir_to_read_fhir_and_dicom_elsewhere():
    assert looks_like_fhir((FHIR / "mcode-tumor-size-r4.json").read_bytes())
    assert looks_like_fhir((FHIR / "bulk-export.ndjson").read_bytes())
    assert not looks_like_fhir(b'{"00080016": {"vr": "UI", "Value": ["1.2"]}}')
    assert not looks_like_fhir(b"\x00" * 128 + b"DICM")


def test_read_sr_still_refuses_fhir():
    with pytest.raises(adapter.InputError, match="is a FHIR Observation resource, not a DICOM SR"):
        adapter.read_sr(FHIR / "tumor-size-without-focus.json")
