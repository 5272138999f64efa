"""Where dcmqi's tid1500reader lists measurements, ours are the same; and we keep the sites it drops.

The reader outputs were made by others (corpus/_derived/dcmqi-tid1500reader-output, see MANIFEST.md).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

import adapter
from adapter.model import Code
from adapter.tables import normalise_code

# dcmqi output file -> the SR it was made from (MANIFEST.md, "_derived/")
SOURCES = {
    "1.json": "tid1500-fhir/rsna2018_dataset4/1.dcm",
    "1.2.276.0.7230010.3.1.4.0.13541.15414543.json":
        "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm",
    "Measurements_User2_SemiAuto_Trial2.json":
        "tid1500-fhir/rsna2018_dataset2/Measurements_User2_SemiAuto_Trial2.dcm",
    "sr-tid1500-ct-liver-example.json": "tid1500-fhir/rsna2018_dataset1/sr-tid1500-ct-liver-example.dcm",
    "result.json": "tid1500-fhir/dcmqi/result.dcm",
    "sr.json": "dcmqi/sr.dcm",
    "sample-sr.json": "dcmjs/sample-sr.dcm",
    "structured_report.json": "dcmjs/structured_report.dcm",
    "sr_document.json": "highdicom/sr_document.dcm",
    "sr_document_with_multiple_groups.json": "highdicom/sr_document_with_multiple_groups.dcm",
    "hl7ex.json": "_derived/hl7-dicom-sr/Example-MeasurementReport.fixed-accession.dcm",
}


def _code(d: dict) -> Code:
    return normalise_code(Code(d["CodeValue"], d["CodingSchemeDesignator"], d.get("CodeMeaning", "")))


def _theirs(group: dict) -> Counter:
    return Counter(
        (_code(item["quantity"]), Decimal(item["value"]), item["units"]["CodeValue"],
         _code(item["derivationModifier"]) if "derivationModifier" in item else None)
        for item in group.get("measurementItems", [])
    )


def _ours(finding) -> Counter:
    return Counter(
        (m.concept, Decimal(m.original_value), m.original_unit.value, m.derivation) for m in finding.measurements
    )


@pytest.mark.parametrize("output", sorted(SOURCES))
def test_same_measurements_as_dcmqi(corpus, output):
    theirs = json.loads((corpus / "_derived/dcmqi-tid1500reader-output" / output).read_text())
    report = adapter.read_sr(corpus / SOURCES[output])
    ours = {f.tracking_uid: f for f in report.findings}
    groups = theirs.get("Measurements", [])
    for group in groups:
        finding = ours[group["TrackingUniqueIdentifier"]]
        assert finding.tracking_identifier == group["TrackingIdentifier"]
        assert _ours(finding) == _theirs(group)
        if "FindingSite" in group:
            assert finding.site == _code(group["FindingSite"])
    if not groups:
        # dcmqi exited 0 with no group; we read the lesions it lost
        assert report.findings


# Groups whose SRT-coded Finding Site (G-C0E3) dcmqi leaves out, and the SCT site we read.
DROPPED_BY_DCMQI = [
    ("1.json", "5b6eb4301d3175942d29985a3d0fbb00", "64033007"),  # Kidney (T-71000)
    ("Measurements_User2_SemiAuto_Trial2.json", "primary tumor", "47975008"),  # base of tongue (T-53131)
    *[("Measurements_User2_SemiAuto_Trial2.json", f"lymph node {i}", "312501005") for i in range(1, 11)],
    ("sr-tid1500-ct-liver-example.json", "Measurements group 1", "10200004"),  # Liver
    ("result.json", "Measurements group 1", "10200004"),
    ("sr.json", "primary tumor", "55940004"),  # pharyngeal tonsil (adenoid)
    ("sr_document.json", "Planar ROI Measurements", "297171002"),  # cervico-thoracic spine (T-D00F7)
]


@pytest.mark.parametrize(("output", "identifier", "site"), DROPPED_BY_DCMQI)
def test_we_keep_the_srt_sites_dcmqi_drops(corpus, output, identifier, site):
    theirs = json.loads((corpus / "_derived/dcmqi-tid1500reader-output" / output).read_text())
    (group,) = [g for g in theirs["Measurements"] if g["TrackingIdentifier"] == identifier]
    assert "FindingSite" not in group
    report = adapter.read_sr(corpus / SOURCES[output])
    (finding,) = [f for f in report.findings if f.tracking_uid == group["TrackingUniqueIdentifier"]]
    assert finding.site == Code(site, "SCT")
