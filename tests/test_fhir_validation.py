"""The test validator (tests/fhir_server/validator.mjs: @medplum/core validateResource with R4 core
and the mCODE STU4 profiles of hl7.fhir.us.mcode 4.0.0) finds what it should and nothing else, so a
test can require zero errors: profile rules (mCODE TumorSize's component and code, Tumor's identifier
slice), R4 required bindings, narratives (dom-6), reference targets, claimed profiles it cannot check."""

from __future__ import annotations

import copy

from tests.fhir_server_support import (MCODE_CANCER_DISEASE_STATUS, MCODE_TUMOR, MCODE_TUMOR_SIZE, errors, mcode_profiles,
                                       validate_bundle, validate_resource, validator)

SCT, LOINC, UCUM = "http://snomed.info/sct", "http://loinc.org", "http://unitsofmeasure.org"
NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Lesion 1, liver</div>'}
US_CORE_REPORT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-note"


def tumor() -> dict:
    """mCODE Tumor as the IG's own example has it: the tumor identifier typed resource-types#BodyStructure."""
    return {"resourceType": "BodyStructure", "meta": {"profile": [MCODE_TUMOR]}, "text": NARRATIVE,
            "identifier": [{"use": "usual", "system": "urn:test:tumor", "value": "t1",
                            "type": {"coding": [{"system": "http://hl7.org/fhir/resource-types",
                                                 "code": "BodyStructure"}]}}],
            "morphology": {"coding": [{"system": SCT, "code": "1240414004"}]},
            "location": {"coding": [{"system": SCT, "code": "10200004", "display": "Liver"}]},
            "patient": {"reference": "Patient/p1"}}


def tumor_size() -> dict:
    return {"resourceType": "Observation", "meta": {"profile": [MCODE_TUMOR_SIZE]}, "text": NARRATIVE,
            "status": "final", "code": {"coding": [{"system": LOINC, "code": "21889-1"}]},
            "subject": {"reference": "Patient/p1"}, "focus": [{"reference": "BodyStructure/t1"}],
            "effectiveDateTime": "2024-01-10",
            "component": [{"code": {"coding": [{"system": LOINC, "code": "33728-7"}]},
                           "valueQuantity": {"value": 42, "unit": "mm", "system": UCUM, "code": "mm"}}]}


def messages(issues) -> set[tuple[str, str, str]]:
    return {(i.severity, i.location, i.message) for i in issues}


def test_conformant_resources_have_no_issue():
    assert validate_resource(tumor()) == []
    assert validate_resource(tumor_size()) == []


def test_tumor_size_profile_rules():
    size = tumor_size()
    del size["component"]
    size["code"]["coding"][0]["code"] = "33728-7"
    assert {(i.location, i.message, i.profile) for i in errors(validate_resource(size))} == {
        ("Observation.component", "Missing required property", MCODE_TUMOR_SIZE),
        ("Observation.code", "Value did not match expected pattern", MCODE_TUMOR_SIZE)}


def test_tumor_identifier_slice_follows_its_type_profile():
    """The bodyStructureIdentifier slice is matched on identifier.type, whose pattern is in the type
    profile mcode-body-structure-identifier: an identifier without that type fills no slice."""
    untyped = tumor()
    del untyped["identifier"][0]["type"]
    assert messages(errors(validate_resource(untyped))) == {
        ("error", "BodyStructure.identifier",
         "Incorrect number of values provided for slice 'bodyStructureIdentifier': expected 1..*, but found 0")}


def test_required_binding_of_r4_core():
    size = tumor_size()
    size["status"] = "done"
    assert messages(errors(validate_resource(size))) == {
        ("error", "Observation.status",
         "done is not in the required ValueSet http://hl7.org/fhir/ValueSet/observation-status|4.0.1")}


def test_missing_narrative_is_a_warning():
    bare = tumor()
    del bare["text"]
    assert messages(validate_resource(bare)) == {
        ("warning", "BodyStructure", "Constraint dom-6 not met: A resource should have narrative for robust management")}


def test_profile_not_in_the_packages_is_reported():
    """US Core is not published on npm: a claimed US Core profile is reported as not checked."""
    report = {"resourceType": "DiagnosticReport", "meta": {"profile": [US_CORE_REPORT]}, "text": NARRATIVE,
              "status": "final", "code": {"coding": [{"system": LOINC, "code": "18748-4"}]}}
    assert messages(validate_resource(report)) == {
        ("warning", "DiagnosticReport", f"Profile {US_CORE_REPORT} is not in the loaded packages; not checked")}


def test_bundle_entries_checked_against_the_profiles_named_and_references_inside_the_bundle():
    """Entries reference each other by urn:uuid fullUrl: read as the target's type, so a subject that
    points at a BodyStructure is flagged and a focus that does is not."""
    size, body = tumor_size(), tumor()
    del size["meta"], body["meta"]
    size["focus"] = [{"reference": "urn:uuid:0a0b0c0d-0000-4000-8000-000000000001"}]
    wrong_subject = copy.deepcopy(size)
    wrong_subject["subject"] = {"reference": "urn:uuid:0a0b0c0d-0000-4000-8000-000000000001"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0a0b0c0d-0000-4000-8000-000000000001", "resource": body,
         "request": {"method": "POST", "url": "BodyStructure"}},
        {"fullUrl": "urn:uuid:0a0b0c0d-0000-4000-8000-000000000002", "resource": size,
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:0a0b0c0d-0000-4000-8000-000000000003", "resource": wrong_subject,
         "request": {"method": "POST", "url": "Observation"}}]}
    issues = validate_bundle(bundle, profiles=mcode_profiles)
    assert [(i.severity, i.location) for i in issues] == [("warning", "Bundle.entry[2].resource.subject")]
    assert issues[0].message.startswith('Invalid reference: got "BodyStructure", expected ')
    by_type = validate_bundle(bundle, profiles={"Observation": [MCODE_CANCER_DISEASE_STATUS]})
    assert ("Bundle.entry[1].resource.code", "Value did not match expected pattern") in {
        (i.location, i.message) for i in errors(by_type)}


def test_profiles_medplum_cannot_read_are_named():
    """Two mCODE profiles slice by `profile` discriminators, which Medplum's parser refuses; none of
    them is one this project emits."""
    assert sorted(p.rsplit("/", 1)[-1] for p in validator().unloadable) == ["mcode-genomics-report",
                                                                            "mcode-tnm-stage-group"]
