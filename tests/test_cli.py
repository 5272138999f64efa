"""`oligo inspect`: exit statuses, one stderr line per rejected input, JSON shape (DESIGN.md §5.1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures import generate as g


def oligo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapter", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    for patient in g.demo_patients():
        g.write_series(patient, out)
    return out


def test_all_inputs_used(demo_dir):
    result = oligo("inspect", str(demo_dir))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("patient DEMO-OLIGO-1 (OLIGO-DEMO)") == 3
    assert "Lesion 2 [target, liver]: long-axis 12 mm, short-axis 9 mm" in result.stdout


def test_some_inputs_rejected(corpus, demo_dir, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    result = oligo("inspect", str(demo_dir / "DEMO-POLY-2"), str(corpus / "pydicom" / "reportsi.dcm"), str(junk),
                   str(tmp_path / "missing.dcm"))
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert lines == [
        f"{corpus / 'pydicom' / 'reportsi.dcm'}: is a Basic Text SR, which cannot hold TID 1500 measurements",
        f"{junk}: is not a DICOM file (no DICM prefix and no SOP Class UID)",
        f"{tmp_path / 'missing.dcm'}: does not exist",
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.count("patient DEMO-POLY-2") == 3


def test_no_usable_input(corpus):
    result = oligo("inspect", str(corpus / "pydicom"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 2


def test_usage_errors():
    assert oligo("inspect").returncode == 2
    assert oligo("inspect", "--no-such-option", "x").returncode == 2
    assert oligo().returncode == 2


def test_json_output(corpus):
    path = corpus / "tid1500-fhir" / "rsna2018_dataset4" / "1.dcm"
    result = oligo("inspect", "--json", str(path), str(corpus / "highdicom" / "sm_annotations.dcm"))
    assert result.returncode == 3
    document = json.loads(result.stdout)
    assert document["rejected"] == [{
        "path": str(corpus / "highdicom" / "sm_annotations.dcm"),
        "reason": "is not a Structured Report but a Microscopy Bulk Simple Annotations Storage object",
    }]
    (entry,) = document["inputs"]
    (report,) = entry["reports"]
    assert report["patient"] == {"id": "TCGA-BP-4343", "issuer": None}
    assert report["imaging_date"] == "1987-06-20"
    (finding,) = report["findings"]
    assert finding["site"] == {"code": "64033007", "scheme": "SCT", "meaning": "Kidney"}
    assert finding["organ"] == "kidney"
    (length,) = finding["measurements"]
    assert (length["kind"], length["value"], length["unit"]) == ("length", 66.43856134, "mm")
    assert length["original"] == {"value": "66.43856134",
                                  "unit": {"code": "mm", "scheme": "UCUM", "meaning": "mm"}}
