"""Helpers for the FHIR output tests: find resources in a Bundle and read codes out of them."""

from __future__ import annotations

import adapter
from adapter.emit.codes import table

from tests.assess_cases import CASES, reports

LOCAL = table()["defaults"]["code_system_url"]
LOINC, SCT, DCM, UCUM = "http://loinc.org", "http://snomed.info/sct", "http://dicom.nema.org/resources/ontology/DCM", \
    "http://unitsofmeasure.org"


def case(case_id: str):
    return next(c for c in CASES if c.id == case_id)


def assessment_of(case_id: str, **kw):
    c = case(case_id)
    (result,) = adapter.assess(reports(c.patient), preset=c.preset, treated=c.treated, **kw)
    return result


def resources(bundle: dict, resource_type: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def codes(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def observations(bundle: dict, system: str, code: str) -> list[dict]:
    return [r for r in resources(bundle, "Observation") if (system, code) in codes(r["code"])]


def component(resource: dict, code: str, system: str = LOCAL) -> dict:
    (found,) = [c for c in resource["component"] if (system, code) in codes(c["code"])]
    return found


def url_of(bundle: dict, resource: dict) -> str:
    return next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is resource)


def tumor_named(bundle: dict, name: str) -> dict:
    (tumor,) = [r for r in resources(bundle, "BodyStructure") if r["description"] == name]
    return tumor


def about(bundle: dict, observations_: list[dict], name: str) -> list[dict]:
    """The observations whose focus is the Tumor called `name`."""
    url = url_of(bundle, tumor_named(bundle, name))
    return [o for o in observations_ if {"reference": url} in o.get("focus", [])]
