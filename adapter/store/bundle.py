"""The one place a PatientAssessment becomes the FHIR Bundle that is stored, served and delivered."""

from __future__ import annotations

from ..assess import PatientAssessment

FHIR_VERSION = "R4"


def bundle_of(assessment: PatientAssessment) -> dict:
    from ..emit import to_fhir

    return to_fhir(assessment, version=FHIR_VERSION)
