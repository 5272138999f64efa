"""Each FHIR shape of STANDARDS.md §7, read from JSON the project writes itself (fixtures/fhir)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import adapter
from adapter.model import Code, IdentifierKind, MeasurementKind, Role, SourceKind

FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def sizes(finding):
    return [(m.kind, m.value, m.unit) for m in finding.measurements]


def by_name(report):
    return {f.name: f for f in report.findings}


def test_mcode_tumor_size_components_focus_and_contained_tumor():
    (report,) = adapter.read_fhir(FHIR / "mcode-tumor-size-r4.json")
    assert report.source_kind is SourceKind.FHIR
    assert report.source_id == "Bundle/mcode-restaging-2024-02-01"
    assert report.fhir_version == "R4"
    # Patient by urn:uuid fullUrl; issuer from the identifier system with urn:oid: removed
    assert (report.patient_id, report.patient_issuer) == ("MCODE-001", "1.2.826.0.1.3680043.10.1234")
    assert report.study_uid == "2.25.111111111111111111111111111111111"  # derivedFrom ImagingStudy, urn:oid: removed
    assert report.imaging_date == dt.date(2024, 2, 1) and report.imaging_date_source == "effective"
    assert report.imaging_time == dt.time(9, 0)
    kidney, lung, remote = report.findings
    # 3.5 cm x 2.1 cm x 1.4 cm: 33728-7 longest, first 33729-5 the short axis, a further one a plain length
    assert sizes(kidney) == [(MeasurementKind.LONG_AXIS, Decimal("35.0"), "mm"),
                             (MeasurementKind.SHORT_AXIS, Decimal("21.0"), "mm"),
                             (MeasurementKind.LENGTH, Decimal("14.0"), "mm")]
    assert kidney.body_structure_ids == ("BodyStructure/tumor-1234", "http://radiology.hospital.example.org|Tumor 1234")
    assert kidney.label == "Tumor 1234" and kidney.tracking_uid is None
    assert kidney.site == Code("64033007", "SCT") and kidney.laterality == Code("7771000", "SCT")
    assert kidney.anatomy.organ == "kidney" and kidney.anatomy.paired
    assert kidney.finding == Code("1240414004", "SCT")  # Tumor.morphology
    assert kidney.measurements[0].method == Code("77477000", "SCT")
    assert kidney.measurements[0].provenance.observation_uid == "Observation/tumor-size-1234"
    # a contained Tumor ("#tumor") keeps its identifier; it has no server reference of its own
    assert lung.body_structure_ids == ("http://radiology.hospital.example.org|Tumor 5678",)
    assert lung.site == Code("39607008", "SCT") and lung.laterality == Code("24028007", "SCT")
    assert sizes(lung) == [(MeasurementKind.LONG_AXIS, Decimal("18"), "mm")]
    # a Tumor that is not in the input is kept as a reference; 0.011 m is 11 mm
    assert remote.body_structure_ids == ("BodyStructure/tumor-9",)
    assert sizes(remote) == [(MeasurementKind.LONG_AXIS, Decimal("11.000"), "mm")]
    # the CancerDiseaseStatus in the same Bundle is read and set aside, with a message
    assert any("CancerDiseaseStatus" in w and "set aside" in w for w in report.warnings)


def test_dicom_sr_ig_measurement_group_r5():
    (report,) = adapter.read_fhir(FHIR / "dicom-sr-ig-group-r5.json")
    assert report.fhir_version == "R5"
    assert report.source_id == "2.25.555555555555555555555555555555555"  # the group's DICOM Observation UID
    assert (report.patient_id, report.patient_issuer) == ("IG-042", "HOSPITAL-A")  # issuer = assigner
    assert report.study_uid == "2.25.333333333333333333333333333333333"  # partOf ImagingStudy
    assert report.imaging_date == dt.date(2024, 7, 23)  # effective[x] before issued
    assert report.content_datetime == dt.datetime(2024, 7, 24, 8, 23, 42)
    (nodule,) = report.findings
    assert nodule.tracking_uid == "2.25.444444444444444444444444444444444"
    assert nodule.tracking_identifier == "Nodule 1" and nodule.identifier_kind is IdentifierKind.HUMAN
    assert nodule.site == Code("39607008", "SCT") and nodule.laterality == Code("24028007", "SCT")
    assert nodule.finding == Code("427359005", "SCT")
    assert nodule.finding_category == Code("49755003", "SCT")
    assert nodule.role is Role.TARGET
    assert sizes(nodule) == [(MeasurementKind.LONG_AXIS, Decimal("14.2"), "mm"),
                             (MeasurementKind.VOLUME, Decimal("1250.00"), "mm3")]
    assert nodule.measurements[0].method == Code("126081", "DCM")
    assert nodule.measurements[0].provenance.observation_uid == "2.25.555555555555555555555555555555556"
    assert [(q.concept.value, q.value) for q in nodule.qualitative] == [("246116008", "spiculated")]
    assert report.warnings == ()


def test_dicom_sr_ig_older_focus_form_with_contained_members():
    (report,) = adapter.read_fhir(FHIR / "dicom-sr-ig-focus-r4.json")
    assert report.fhir_version == "R4"  # BodyStructure.location is R4 / R4B
    assert report.source_id == "Observation/group-bone-nt"
    assert report.patient_id == "MCODE-001"  # logical reference: subject.identifier
    assert report.study_uid == "2.25.777777777777777777777777777777777"  # partOf by identifier only
    (lesion,) = report.findings
    # the IG example's identifier types (dicom-identifier-type#tracking-identifier|tracking-uid)
    assert lesion.tracking_identifier == "Bone lesion T7"
    assert lesion.tracking_uid == "2.25.666666666666666666666666666666666"
    assert lesion.role is Role.NON_TARGET
    assert lesion.response == Code("112047", "DCM")  # non-target unequivocal progression
    assert lesion.measurements == () and lesion.is_lesion
    assert lesion.anatomy.organ == "bone"


def test_plain_loinc_and_snomed_observations_with_body_site():
    (report,) = adapter.read_fhir(FHIR / "plain-observations-searchset.json")
    assert report.patient_id == "PLAIN-77"  # Patient/p-77 resolved against an absolute fullUrl
    assert report.source_id == "Bundle/search-7f3a"
    assert report.preliminary_flag == "PRELIMINARY"  # one Observation is preliminary
    found = by_name(report)
    assert set(found) == {"Liver", "Lymph node", "Lung", "Adrenal gland"}
    # the amended version (2.6 cm) supersedes the final one (2.4 cm) with the same identifier
    assert sizes(found["Liver"]) == [(MeasurementKind.LONG_AXIS, Decimal("26"), "mm")]
    assert report.predecessors == ("https://ehr.example.org/obs|ld-liver-1",)
    node = found["Lymph node"]
    assert sizes(node) == [(MeasurementKind.SHORT_AXIS, Decimal("16"), "mm")]
    assert node.anatomy.nodal
    assert node.body_structure_ids == ("BodyStructure/ln-7",)  # R4 core bodySite extension
    assert sizes(found["Lung"]) == [(MeasurementKind.DIAMETER, Decimal("9.000"), "mm")]  # 9000 um
    adrenal = found["Adrenal gland"].measurements[0]
    assert adrenal.value is None and "[in_i]" in adrenal.quarantined and not adrenal.usable_size
    warnings = "\n".join(report.warnings)
    assert "wrong-patient-entry" in warnings and "entered-in-error; ignored" in warnings
    assert "la-bone-pending" in warnings and "has no value (dataAbsentReason Not Performed)" in warnings
    assert "Observation/weight" in warnings and "not a lesion measurement" in warnings
    assert "55" not in " ".join(str(m.value) for f in report.findings for m in f.measurements)


def test_ndjson_bulk_export_per_patient_and_per_date_with_a_bad_line():
    reports = adapter.read_fhir(FHIR / "bulk-export.ndjson")
    assert [(r.patient_id, r.imaging_date.isoformat()) for r in reports] == [
        ("BULK-A", "2024-01-05"), ("BULK-A", "2024-04-05"), ("BULK-B", "2024-01-09")]
    first, later, other = reports
    assert first.findings[0].body_structure_ids == later.findings[0].body_structure_ids == (
        "BodyStructure/bulk-a-t1", "https://ehr.example.org/tumor|A-T1")
    assert sizes(other.findings[0]) == [(MeasurementKind.LONG_AXIS, Decimal("44.0"), "mm")]
    for report in reports:
        assert any(w.startswith("line 7 is not valid JSON") for w in report.warnings)
        assert "the input holds 2 patients; read per patient" in report.warnings


def test_several_patients_in_one_bundle_give_one_report_each_with_tracking_components():
    one, two = adapter.read_fhir(FHIR / "two-patients-bundle.json")
    assert (one.patient_id, one.study_uid) == ("PAT-1", "2.25.888888888888888888888888888888881")
    assert (two.patient_id, two.study_uid) == ("PAT-2", "2.25.888888888888888888888888888888882")
    assert one.findings[0].tracking_uid == "2.25.999999999999999999999999999999991"
    assert one.findings[0].tracking_identifier == "Liver 1"
    assert two.findings[0].tracking_uid == "2.25.999999999999999999999999999999992"
    assert one.source_id != two.source_id


def test_tumor_size_without_focus_is_read_with_a_clear_warning():
    (report,) = adapter.read_fhir(FHIR / "tumor-size-without-focus.json")
    (finding,) = report.findings
    assert sizes(finding) == [(MeasurementKind.LONG_AXIS, Decimal("22.0"), "mm")]
    assert any("TumorSize without focus" in w for w in report.warnings)


def test_same_result_from_path_bytes_text_and_dict():
    path = FHIR / "dicom-sr-ig-group-r5.json"
    text = path.read_text()
    from_path = adapter.read_fhir(path)
    assert adapter.read_fhir(text) == from_path
    assert adapter.read_fhir(path.read_bytes()) == from_path
    assert adapter.read_fhir(json.loads(text)) == from_path


def test_qualitative_observations_focused_on_a_tumor_join_its_size():
    tumor = {"resourceType": "BodyStructure", "id": "t1",
             "identifier": [{"system": "urn:example:tumor", "value": "T1"}],
             "location": {"coding": [{"system": "http://snomed.info/sct", "code": "10200004"}]}}
    base = {"resourceType": "Observation", "status": "final", "subject": {"identifier": {"value": "Q-1"}},
            "effectiveDateTime": "2024-01-01", "focus": [{"reference": "BodyStructure/t1"}]}
    size = {**base, "id": "s", "code": {"coding": [{"system": "http://loinc.org", "code": "21889-1"}]},
            "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "33728-7"}]},
                           "valueQuantity": {"value": 15, "system": "http://unitsofmeasure.org", "code": "mm"}}]}
    role = {**base, "id": "r",
            "code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "112016"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                 "code": "112074"}]}}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (tumor, size, role)]}
    (report,) = adapter.read_fhir(bundle)
    (finding,) = report.findings
    assert finding.role is Role.TARGET
    assert sizes(finding) == [(MeasurementKind.LONG_AXIS, Decimal("15"), "mm")]
    assert finding.anatomy.organ == "liver"


def test_fhir_versions_are_told_apart_from_the_content():
    obs = {"resourceType": "Observation", "status": "final", "subject": {"identifier": {"value": "V-1"}},
           "effectiveDateTime": "2024-01-01",
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "103339001"}]},
           "valueQuantity": {"value": 12, "system": "http://unitsofmeasure.org", "code": "mm"}}

    def version(*extra):
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": obs}] + [{"resource": r} for r in extra]}
        return adapter.read_fhir(bundle)[0].fhir_version

    assert version() == "R4"  # nothing tells: R4 (R4 and R4B read the same)
    assert version({"resourceType": "Citation", "status": "active"}) == "R4B"  # new in R4B
    assert version({"resourceType": "ImagingSelection", "status": "available"}) == "R5"
    assert version({"resourceType": "BodyStructure", "includedStructure": []}) == "R5"
    assert version({"resourceType": "Media", "status": "completed"}) == "R4"  # gone in R5


def test_identity_of_an_unnamed_bundle_survives_reformatting():
    """A Bundle without id or identifier is named by a digest of its content, not of its bytes."""
    from fixtures.fhir_generate import make_fhir_series
    from fixtures.generate import demo_patients

    bundle = make_fhir_series(demo_patients()[0])[0]
    compact = adapter.read_fhir(json.dumps(bundle, separators=(",", ":")))
    pretty = adapter.read_fhir(json.dumps(bundle, indent=4).encode())
    assert compact[0].source_id == pretty[0].source_id == adapter.read_fhir(bundle)[0].source_id
    assert compact[0].source_id.startswith("sha256:") and len(compact[0].source_id) == len("sha256:") + 16
    bundle["entry"][3]["resource"]["valueQuantity"]["value"] = 43.0
    assert adapter.read_fhir(bundle)[0].source_id != compact[0].source_id


def test_r5_imaging_selection_names_the_study():
    selection = {"resourceType": "ImagingSelection", "id": "sel-1", "status": "available",
                 "studyUid": "urn:oid:2.25.123", "code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                                       "code": "111030"}]}}
    obs = {"resourceType": "Observation", "status": "final", "subject": {"identifier": {"value": "S-1"}},
           "effectiveDateTime": "2024-01-01", "derivedFrom": [{"reference": "ImagingSelection/sel-1"}],
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "103339001"}]},
           "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "10200004"}]},
           "valueQuantity": {"value": 12, "system": "http://unitsofmeasure.org", "code": "mm"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": selection}, {"resource": obs}]}
    (report,) = adapter.read_fhir(bundle)
    assert report.study_uid == "2.25.123" and report.fhir_version == "R5"


def test_document_bundle_and_a_searchset_nested_in_a_batch_response():
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "subject": {"identifier": {"system": "urn:mrn", "value": "D-1"}}, "effectiveDateTime": "2024-02-02",
           "code": {"coding": [{"system": "http://loinc.org", "code": "33728-7"}]},
           "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "39607008"}]},
           "valueQuantity": {"value": 1.9, "system": "http://unitsofmeasure.org", "code": "cm"}}
    composition = {"resourceType": "Composition", "status": "final", "title": "Restaging CT",
                   "section": [{"entry": [{"reference": "Observation/o1"}]}]}
    document = {"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:docs", "value": "doc-7"},
                "entry": [{"fullUrl": "https://x.example/Composition/c1", "resource": composition},
                          {"fullUrl": "https://x.example/Observation/o1", "resource": obs}]}
    (report,) = adapter.read_fhir(document)
    assert report.source_id == "Observation/o1"  # one Observation: its own identity
    assert [(m.kind, m.value) for m in report.findings[0].measurements] == [(MeasurementKind.LONG_AXIS, Decimal("19.0"))]
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": obs}]}
    batch = {"resourceType": "Bundle", "type": "batch-response",
             "entry": [{"resource": searchset, "response": {"status": "200 OK"}},
                       {"request": {"method": "DELETE", "url": "Observation/old"}}]}
    (nested,) = adapter.read_fhir(batch)
    assert nested.findings == report.findings
    assert "entry 2 deletes Observation/old; a delete is not read" in nested.warnings
