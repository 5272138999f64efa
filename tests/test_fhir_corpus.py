"""FHIR files written by others (../shared/corpus): read, or set aside with a clear message, never a crash."""

from __future__ import annotations

from decimal import Decimal

import pytest

import adapter
from adapter.inputs import read_one
from adapter.model import Code, MeasurementKind, SourceKind

DISEASE_STATUS = [
    "mcode-extraction-framework/disease-status-resource.json",
    "mcode-extraction-framework/minimal-disease-status-resource.json",
    "mcode-extraction-framework/csv-cancer-disease-status-bundle.json",
]
DSR2FHIR = {  # file -> the DiagnosticReport's identifier (the SR's SOP Instance UID)
    "tid1500-fhir/dcmqi/expected.json": "1.2.276.0.7230010.3.1.4.8323329.5607.1542879484.507970",
    "tid1500-fhir/rsna2018_dataset1/expected.json": "1.2.276.0.7230010.3.1.4.0.83735.1480019874.480726",
}


@pytest.mark.parametrize("rel", DISEASE_STATUS)
def test_mcode_cancer_disease_status_is_read_and_set_aside(corpus, rel):
    with pytest.raises(adapter.InputError) as caught:
        adapter.read_fhir(corpus / rel)
    assert caught.value.reason.startswith("holds only an mCODE CancerDiseaseStatus")
    assert caught.value.reason.endswith("; set aside")
    outcome = read_one(str(corpus / rel))  # the CLI path: one plain line, no traceback
    assert not outcome.ok and "CancerDiseaseStatus" in outcome.reason


def test_amended_disease_status_bundle_names_the_observation(corpus):
    with pytest.raises(adapter.InputError, match=r"Observation/e8293a0d18fb.* \(entry 1\); set aside"):
        adapter.read_fhir(corpus / DISEASE_STATUS[2])


@pytest.mark.parametrize("rel", sorted(DSR2FHIR))
def test_dsr2fhir_bundles_with_bare_code_systems_warn_not_crash(corpus, rel):
    (report,) = adapter.read_fhir(corpus / rel)
    warnings = set(report.warnings)
    for system in ("SRT", "DCM"):
        assert (f"coding system {system!r} is not a URI (non-conformant FHIR); read as the DICOM coding scheme "
                "of that name") in warnings
    # the DiagnosticReport gives patient, study (STU3-style ImagingStudy.uid) and, through it, the date
    assert report.patient_id == "99000" and report.patient_issuer is None
    assert report.study_uid == "1.2.392.200103.20080913.113635.0.2009.6.22.21.43.10.22941.1"
    assert report.imaging_date.isoformat() == "2003-04-17"
    assert report.imaging_date_source == "imaging-study-started"
    assert report.source_id == DSR2FHIR[rel]
    volume = next(m for f in report.findings for m in f.measurements if m.kind is MeasurementKind.VOLUME)
    assert volume.concept == Code("118565006", "SCT")  # SRT G-D705 translated
    assert volume.value is None and volume.original_value == "70361.9"  # unit ".m3" is not UCUM for mm3
    assert "'.m3'" in volume.quarantined
    attenuation = [m for f in report.findings for m in f.measurements if m.kind is MeasurementKind.OTHER]
    assert [m.derivation.value for m in attenuation] == ["373098007", "255605001", "56851009", "386136009"]
    assert attenuation[0].value == Decimal("37.3289") and attenuation[0].unit == "[hnsf'U]"
    for finding in report.findings:
        assert finding.site == Code("10200004", "SCT")  # SRT T-62000 Liver


def test_dicom_json_in_the_corpus_stays_with_read_sr(corpus):
    outcome = read_one(str(corpus / "_derived/hl7-dicom-sr/Example-MeasurementReport.fixed-accession.json"))
    assert outcome.ok
    (report,) = outcome.reports
    assert report.fhir_version is None and report.source_kind is SourceKind.DICOM_SR
    assert report.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
