"""Real SRs written by others (../shared/corpus) through `adapter.assess`: a clear state for every
patient, never an exception."""

from __future__ import annotations

from decimal import Decimal

import adapter
from adapter.assess import STATES
from adapter.inputs import read_all


def test_every_corpus_patient_gets_a_state(corpus):
    reports = [report for outcome in read_all([corpus]) for report in outcome.reports]
    results = adapter.assess(reports)
    # 8 patients; the OHIF v2 SR has no patient id and cannot be placed on any timeline
    assert sorted(r.patient_id for r in results) == [
        "1CT1", "99000", "LIDC-IDRI-0314", "PD-1-Lung-00018", "PID-11235", "QIN-HEADNECK-01-0003",
        "QIN-HEADNECK-01-0139", "TCGA-BP-4343"]
    for result in results:
        for tp in result.timepoints:
            assert tp.state in STATES and tp.reasons


def test_pixelmed_kidney_length_becomes_an_auto_selected_target(corpus):
    report = adapter.read_sr(corpus / "tid1500-fhir/rsna2018_dataset4/1.dcm")
    (result,) = adapter.assess([report])
    (baseline,) = result.timepoints
    assert baseline.state == "baseline"
    (row,) = baseline.lesions
    assert (row.lesion_class, row.auto_selected, row.organ, row.value_mm) == \
        ("target", True, "kidney", Decimal("66.43856134"))


def test_volumes_without_diameters_leave_no_measurable_lesion(corpus):
    """QIN-HEADNECK: nodes with volumes and radiomics but no short axis cannot be RECIST targets."""
    report = adapter.read_sr(corpus / "tid1500-fhir/rsna2018_dataset2/Measurements_User2_SemiAuto_Trial2.dcm")
    (result,) = adapter.assess([report])
    (baseline,) = result.timepoints
    assert baseline.state == "not-evaluable"
    assert "no measurable lesion at baseline" in baseline.reasons[-1]
