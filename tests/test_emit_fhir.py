"""The FHIR Bundle, resource by resource, for three worked cases of CLINICAL.md §5 (C2 oligoprogression
inside a RECIST PR, C4 polyprogression, E1 no progression), and the rules every Bundle keeps: valid R4B
and R5, conditional creates, references that resolve, identical bytes for identical input."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

import adapter
from adapter.emit import BundleError, bundle_json, code_system, to_fhir, validate
from adapter.emit.validate import references

from tests.assess_cases import CASES, reports
from tests.emit_helpers import (DCM, LOCAL, LOINC, SCT, UCUM, about, assessment_of, case, codes, component,
                                observations, resources, tumor_named, url_of)

FIXED = dt.datetime(2024, 4, 23, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def c2():
    return to_fhir(assessment_of("C2"), issued=FIXED)


@pytest.fixture(scope="module")
def c4():
    return to_fhir(assessment_of("C4"), issued=FIXED)


@pytest.fixture(scope="module")
def e1():
    return to_fhir(assessment_of("E1"), issued=FIXED)


def report_of(bundle):
    (report,) = resources(bundle, "DiagnosticReport")
    return report


# --- C2: oligoprogression inside a RECIST partial response ------------------------------------------------


def test_c2_tumors_carry_tracking_identifiers_site_and_patient(c2):
    tumors = resources(c2, "BodyStructure")
    assert [t["description"] for t in tumors] == ["Liver 1", "Lesion 2", "Lung 1", "Lung 2", "Node 1"]
    tumor = tumor_named(c2, "Lesion 2")
    usual, text, uid = tumor["identifier"]
    assert usual["use"] == "usual" and codes(usual["type"]) == {("http://hl7.org/fhir/resource-types", "BodyStructure")}
    assert usual["system"] == "urn:oligo-adapter:tumor"
    assert codes(text["type"]) == {(DCM, "112039")} and text["value"] == "Lesion 2"
    assert codes(uid["type"]) == {(DCM, "112040")}
    assert (uid["system"], uid["value"]) == ("urn:dicom:uid", "urn:oid:C2/Lesion 2")
    assert codes(tumor["location"]) == {(SCT, "10200004")}
    assert tumor["patient"]["identifier"] == {"system": "urn:oligo-adapter:patient-id-issuer:OLIGO-DEMO",
                                              "value": "C2"}
    assert codes(tumor_named(c2, "Node 1")["location"]) == {(SCT, "59441001")}


def test_c2_tumor_size_per_lesion_per_time_point(c2):
    sizes = observations(c2, LOINC, "21889-1")
    assert len(sizes) == 15  # 5 lesions x 3 scans
    lesion2 = about(c2, sizes, "Lesion 2")
    assert [o["effectiveDateTime"] for o in lesion2] == ["2024-01-01", "2024-02-26", "2024-04-22"]
    longest = [component(o, "33728-7", LOINC)["valueQuantity"] for o in lesion2]
    assert [q["value"] for q in longest] == [25, 12, 20]
    assert longest[0] == {"value": 25, "unit": "mm", "system": UCUM, "code": "mm"}
    assert codes(component(lesion2[0], "33728-7", LOINC)["code"]) == {(LOINC, "33728-7"), (SCT, "103339001")}
    last = lesion2[-1]
    assert codes(last["code"]) == {(LOINC, "21889-1")}
    assert last["status"] == "final"
    assert codes(last["category"][0]) == {("http://terminology.hl7.org/CodeSystem/observation-category", "imaging")}
    assert last["focus"] == [{"reference": url_of(c2, tumor_named(c2, "Lesion 2"))}]
    assert last["partOf"][0]["identifier"]["value"] == "urn:oid:study-2024-04-22"
    assert last["derivedFrom"][0]["identifier"]["value"] == "urn:oid:C2-2024-04-22"
    node = about(c2, sizes, "Node 1")[0]  # nodes: long axis 26, short axis 18 (the RECIST value)
    assert component(node, "33728-7", LOINC)["valueQuantity"]["value"] == 26
    other = component(node, "33729-5", LOINC)
    assert other["valueQuantity"]["value"] == 18 and codes(other["code"]) == {(LOINC, "33729-5"), (SCT, "103340004")}


def test_c2_lesion_status(c2):
    statuses = observations(c2, LOCAL, "lesion-status")
    assert len(statuses) == 5
    by_name = {name: about(c2, statuses, name)[0] for name in ("Liver 1", "Lesion 2", "Node 1", "Lung 1")}
    value = {name: next(iter(codes(o["valueCodeableConcept"])))[1] for name, o in by_name.items()}
    # Liver 1 30 -> 15 (-50 % from baseline); Node 1 short axis 9 < 10 mm (normal); Lung 1 20 -> 10
    assert value == {"Liver 1": "responding", "Lesion 2": "progressing", "Node 1": "disappeared",
                     "Lung 1": "responding"}
    lesion2 = by_name["Lesion 2"]
    assert component(lesion2, "lesion-size")["valueQuantity"]["value"] == 20
    assert component(lesion2, "lesion-reference-size")["valueQuantity"]["value"] == 12
    assert component(lesion2, "lesion-change")["valueQuantity"]["value"] == 8
    assert component(lesion2, "lesion-change-percent")["valueQuantity"] == {
        "value": 66.7, "unit": "%", "system": UCUM, "code": "%"}
    assert codes(component(lesion2, "progression-reason")["valueCodeableConcept"]) == {(LOCAL, "size")}
    assert codes(component(lesion2, "lesion-class")["valueCodeableConcept"]) == {(LOCAL, "target-lesion")}
    assert lesion2["note"] == [{"text": "Lesion 2 (liver): 12 → 20 mm, +67 % and +8 mm from its nadir"}]
    assert lesion2["status"] == "preliminary"
    sizes = about(c2, observations(c2, LOINC, "21889-1"), "Lesion 2")
    assert lesion2["derivedFrom"] == [{"reference": url_of(c2, o)} for o in sizes]


def test_c2_recist_response(c2):
    (recist,) = observations(c2, DCM, "112048")
    assert codes(recist["code"]) == {(DCM, "112048"), (LOCAL, "recist-response")}
    assert codes(recist["method"]) == {(DCM, "126081")}
    assert codes(recist["valueCodeableConcept"]) == {(LOCAL, "PR")}
    assert codes(component(recist, "target-response")["valueCodeableConcept"]) == {(DCM, "112042")}
    assert component(recist, "new-lesions")["valueBoolean"] is False
    assert [component(recist, k)["valueQuantity"]["value"] for k in ("sum-of-diameters", "nadir-sum", "baseline-sum")] \
        == [62, 54, 108]
    assert not [c for c in recist["component"] if (LOCAL, "non-target-response") in codes(c["code"])]
    assert len(recist["hasMember"]) == 5  # the five target lesions' status


def test_c2_progression_pattern(c2):
    (pattern,) = observations(c2, LOCAL, "progression-pattern")
    assert codes(pattern["valueCodeableConcept"]) == {(LOCAL, "oligoprogression")}
    assert component(pattern, "progressing-count")["valueInteger"] == 1
    assert component(pattern, "progressing-count-max")["valueInteger"] == 1
    assert component(pattern, "organ-count")["valueInteger"] == 1
    assert component(pattern, "preset")["valueString"] == "consensus-5"
    assert component(pattern, "progressing-limit")["valueInteger"] == 5
    (status,) = about(c2, observations(c2, LOCAL, "lesion-status"), "Lesion 2")
    (recist,) = observations(c2, DCM, "112048")
    assert pattern["hasMember"] == [{"reference": url_of(c2, status)}, {"reference": url_of(c2, recist)}]


def test_c2_disease_status_is_worsened(c2):
    (status,) = observations(c2, LOINC, "97509-4")
    assert codes(status["valueCodeableConcept"]) == {(SCT, "271299001")}
    (evidence,) = status["extension"]
    assert evidence["url"].endswith("mcode-cancer-disease-status-evidence-type")
    assert codes(evidence["valueCodeableConcept"]) == {(SCT, "363679005")}


def test_c2_diagnostic_report(c2):
    report = report_of(c2)
    assert report["status"] == "preliminary"
    assert [codes(c) for c in report["category"]] == [
        {(LOINC, "LP29684-5")}, {("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD")}]
    assert codes(report["code"]) == {(LOINC, "18748-4"), (LOCAL, "progression-pattern-assessment")}
    assert report["effectiveDateTime"] == "2024-04-22"
    assert report["issued"] == "2024-04-23T09:30:00+00:00"
    assert [s["identifier"]["value"] for s in report["imagingStudy"]] == [
        "urn:oid:study-2024-01-01", "urn:oid:study-2024-02-26", "urn:oid:study-2024-04-22"]
    observation_urls = [e["fullUrl"] for e in c2["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert sorted(r["reference"] for r in report["result"]) == sorted(observation_urls)
    assert [codes(c) for c in report["conclusionCode"]] == [{(SCT, "271299001")}, {(LOCAL, "oligoprogression")}]
    assert report["conclusion"] == (
        "Oligoprogression: 1 of 5 tracked lesions progressing [Lesion 2 in the liver, 12 → 20 mm, +67 % from its "
        "nadir]; the other lesions are controlled; RECIST 1.1 partial response (sum of diameters 62 mm, −43 % "
        "from baseline 108 mm). Lesion 2: candidate for local therapy (e.g. SBRT or ablation) while systemic "
        "therapy continues. Preset consensus-5: oligoprogression up to 5 progressing lesions.")
    (form,) = report["presentedForm"]
    png = base64.b64decode(form["data"])
    assert form["contentType"] == "image/png" and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert form["size"] == len(png) and form["hash"] == base64.b64encode(hashlib.sha1(png).digest()).decode()


# --- C4: polyprogression ---------------------------------------------------------------------------------


def test_c4_polyprogression(c4):
    (pattern,) = observations(c4, LOCAL, "progression-pattern")
    assert codes(pattern["valueCodeableConcept"]) == {(LOCAL, "polyprogression")}
    assert component(pattern, "progressing-count")["valueInteger"] == 6
    assert component(pattern, "organ-count")["valueInteger"] == 1
    assert len(pattern["hasMember"]) == 7  # six new lesions and the RECIST response
    (recist,) = observations(c4, DCM, "112048")
    assert codes(recist["valueCodeableConcept"]) == {(LOCAL, "PD")}
    assert codes(component(recist, "target-response")["valueCodeableConcept"]) == {(DCM, "112044")}  # SD
    assert component(recist, "new-lesions")["valueBoolean"] is True
    (new1,) = about(c4, observations(c4, LOCAL, "lesion-status"), "New liver 1")
    assert codes(new1["valueCodeableConcept"]) == {(LOCAL, "progressing")}
    assert codes(component(new1, "lesion-class")["valueCodeableConcept"]) == {(LOCAL, "new-lesion")}
    assert codes(component(new1, "progression-reason")["valueCodeableConcept"]) == {(LOCAL, "new")}
    assert component(new1, "lesion-size")["valueQuantity"]["value"] == 9
    (size,) = about(c4, observations(c4, LOINC, "21889-1"), "New liver 1")
    assert size["effectiveDateTime"] == "2024-04-22"
    report = report_of(c4)
    assert [codes(c) for c in report["conclusionCode"]] == [{(SCT, "271299001")}, {(LOCAL, "polyprogression")}]
    assert report["conclusion"].startswith("Polyprogression: 6 progressing lesions [New liver 1, new, 9 mm; ")
    assert "above the limit of 5" in report["conclusion"]
    assert "candidate" not in report["conclusion"]


# --- E1: no progression (RECIST PR) ----------------------------------------------------------------------


def test_e1_no_progression(e1):
    (pattern,) = observations(e1, LOCAL, "progression-pattern")
    assert codes(pattern["valueCodeableConcept"]) == {(LOCAL, "no-progression")}
    assert component(pattern, "progressing-count")["valueInteger"] == 0
    (recist,) = observations(e1, DCM, "112048")
    assert codes(recist["valueCodeableConcept"]) == {(LOCAL, "PR")}
    assert component(recist, "sum-of-diameters")["valueQuantity"]["value"] == 65
    (status,) = observations(e1, LOINC, "97509-4")
    assert codes(status["valueCodeableConcept"]) == {(SCT, "268910001")}  # improved
    statuses = {next(iter(codes(o["valueCodeableConcept"])))[1] for o in observations(e1, LOCAL, "lesion-status")}
    assert statuses == {"responding"}
    report = report_of(e1)
    assert [codes(c) for c in report["conclusionCode"]] == [{(SCT, "268910001")}, {(LOCAL, "no-progression")}]
    assert report["conclusion"] == (
        "No progressing lesion among 3 tracked lesions; RECIST 1.1 partial response (sum of diameters 65 mm, "
        "−61 % from baseline 165 mm). Preset consensus-5: oligoprogression up to 5 progressing lesions.")


@pytest.mark.parametrize(("case_id", "trend", "state"), [
    ("C6", "271299001", "diffuse-progression"), ("C10", "709137006", "not-evaluable"),
    ("C13", "271299001", "progression-without-prior-control"), ("C1b", "359746009", "no-progression")])
def test_other_states_and_trends(case_id, trend, state):
    report = report_of(to_fhir(assessment_of(case_id), issued=FIXED))
    assert [codes(c) for c in report["conclusionCode"]] == [{(SCT, trend)}, {(LOCAL, state)}]


# --- rules every Bundle keeps ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_every_bundle_is_valid_conditional_and_closed(c, version):
    (result,) = adapter.assess(reports(c.patient), preset=c.preset, treated=c.treated)
    bundle = to_fhir(result, version, issued=FIXED, include_plot=False)
    from fhir.resources import get_fhir_model_class as r5
    from fhir.resources.R4B import get_fhir_model_class as r4b

    model = r4b if version == "R4" else r5
    for entry in bundle["entry"]:
        resource = entry["resource"]
        model(resource["resourceType"]).model_validate(resource)
        request = entry["request"]
        assert request["method"] == "POST" and request["url"] == resource["resourceType"]
        identifier = resource["identifier"][0] if isinstance(resource["identifier"], list) else resource["identifier"]
        assert request["ifNoneExist"] == f"identifier={identifier['system']}|{identifier['value']}"
        assert entry["fullUrl"].startswith("urn:uuid:")
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])
    assert set(references(bundle)) <= urls
    assert bundle["type"] == "transaction"


def test_identical_input_identical_bytes():
    first = bundle_json(to_fhir(assessment_of("C2")))
    second = bundle_json(to_fhir(assessment_of("C2")))
    assert first == second
    assert "2026" not in first  # nothing from the clock: the in-memory reports carry no authoring time


def test_switching_validation_off_changes_no_byte(c2):
    assert bundle_json(to_fhir(assessment_of("C2"), issued=FIXED, validate=False)) == bundle_json(c2)


def test_a_later_scan_reuses_tumors_and_earlier_measurements():
    """Resending with one more scan: the Tumors and the earlier TumorSize entries keep their identifiers,
    so a server that holds the first Bundle creates only what is new."""
    c = case("C2")
    (early,) = adapter.assess(reports(c.patient)[:2])
    (late,) = adapter.assess(reports(c.patient))

    def identifiers(bundle, resource_type):
        return {r["identifier"][0]["value"] for r in resources(bundle, resource_type)}

    a, b = to_fhir(early, include_plot=False), to_fhir(late, include_plot=False)
    assert identifiers(a, "BodyStructure") == identifiers(b, "BodyStructure")
    sizes_a = {o["identifier"][0]["value"] for o in observations(a, LOINC, "21889-1")}
    sizes_b = {o["identifier"][0]["value"] for o in observations(b, LOINC, "21889-1")}
    assert len(sizes_a) == 10 and sizes_a < sizes_b
    assert identifiers(a, "DiagnosticReport") != identifiers(b, "DiagnosticReport")


def test_r5_uses_study_included_structure_and_body_structure():
    bundle = to_fhir(assessment_of("C3"), "R5", issued=FIXED)
    report = report_of(bundle)
    assert "imagingStudy" not in report and len(report["study"]) == 3
    lung = tumor_named(bundle, "B")
    assert "location" not in lung
    assert codes(lung["includedStructure"][0]["structure"]) == {(SCT, "39607008")}
    (size,) = about(bundle, observations(bundle, LOINC, "21889-1"), "B")[-1:]
    assert size["bodyStructure"] == {"reference": url_of(bundle, lung)}


def test_laterality_is_a_location_qualifier_in_r4_and_laterality_in_r5():
    from tests.assess_cases import L, T, patient

    p = patient("LAT", (0, [T("A", "lung", 30, laterality="left")]), (8, [L("A", "lung", 20, laterality="left")]))
    (result,) = adapter.assess(reports(p))
    r4 = tumor_named(to_fhir(result, include_plot=False), "A")
    r5 = tumor_named(to_fhir(result, "R5", include_plot=False), "A")
    assert [codes(q) for q in r4["locationQualifier"]] == [{(SCT, "7771000")}]
    assert codes(r5["includedStructure"][0]["laterality"]) == {(SCT, "7771000")}


def test_site_options_code_system_url_and_identifier_system():
    bundle = to_fhir(assessment_of("C2"), code_system_url="https://hospital.example/fhir/CodeSystem/oligo",
                     identifier_system="urn:oid:1.2.3.4", patient_identifier_system="urn:oid:1.2.3.4.5",
                     include_plot=False)
    text = bundle_json(bundle)
    assert LOCAL not in text and "urn:oligo-adapter" not in text
    (pattern,) = observations(bundle, "https://hospital.example/fhir/CodeSystem/oligo", "progression-pattern")
    assert pattern["identifier"][0]["system"] == "urn:oid:1.2.3.4:progression-pattern"
    assert pattern["subject"]["identifier"] == {"system": "urn:oid:1.2.3.4.5", "value": "C2"}


def test_every_local_code_used_is_in_the_shipped_code_system():
    cs = code_system("https://hospital.example/cs")
    from fhir.resources.R4B.codesystem import CodeSystem

    CodeSystem.model_validate(cs)
    assert cs["url"] == "https://hospital.example/cs" and code_system()["url"] == LOCAL

    def walk(concepts):
        for concept in concepts:
            yield concept["code"]
            yield from walk(concept.get("concept", []))

    defined = list(walk(cs["concept"]))
    assert len(defined) == len(set(defined)) == cs["count"]
    used = set()
    for case_id in ("C2", "C4", "E1", "C6", "C10", "C13", "C18"):
        bundle = to_fhir(assessment_of(case_id), include_plot=False)
        used |= {code for system, code in _all_codings(bundle) if system == LOCAL}
    assert used <= set(defined)
    assert {"oligoprogression", "polyprogression", "no-progression", "progressing", "locally-treated"} <= used


def _all_codings(node):
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield node["system"], node["code"]
        for value in node.values():
            yield from _all_codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_codings(value)


def test_issued_defaults_to_the_scan_date_without_authoring_time():
    report = report_of(to_fhir(assessment_of("C2"), include_plot=False))
    assert report["issued"] == "2024-04-22T00:00:00+00:00"


def test_bad_calls_are_refused():
    result = assessment_of("C2")
    with pytest.raises(ValueError, match="unknown FHIR version"):
        to_fhir(result, "R3")
    with pytest.raises(TypeError, match="unknown option"):
        to_fhir(result, colour="red")
    from dataclasses import replace

    with pytest.raises(ValueError, match="no timeline"):
        to_fhir(replace(result, timeline=None))


def test_validation_catches_a_dangling_reference_and_a_plain_create():
    bundle = to_fhir(assessment_of("E1"), include_plot=False)
    bundle["entry"][-1]["resource"]["result"].append({"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"})
    with pytest.raises(BundleError, match="do not resolve"):
        validate(bundle, "R4")
    bundle = to_fhir(assessment_of("E1"), include_plot=False)
    del bundle["entry"][0]["request"]["ifNoneExist"]
    with pytest.raises(BundleError, match="not a conditional create"):
        validate(bundle, "R4")


def test_a_baseline_that_cannot_be_assessed_says_why():
    from tests.assess_cases import L, patient

    p = patient("NOTARGET", (0, [L("A", "liver", 8)]))  # 8 mm: not measurable, no target stated
    (result,) = adapter.assess(reports(p))
    report = report_of(to_fhir(result, include_plot=False))
    assert report["conclusion"].startswith("Not evaluable at the baseline scan: no measurable lesion at baseline")
    assert [codes(c) for c in report["conclusionCode"]] == [{(SCT, "709137006")}, {(LOCAL, "not-evaluable")}]
    assert observations(to_fhir(result, include_plot=False), DCM, "112048") == []  # no RECIST at a baseline
