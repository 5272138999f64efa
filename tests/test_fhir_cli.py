"""`oligo inspect` on FHIR inputs: what was read, the same exit statuses, one line per bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from adapter.cli import app
from fixtures.fhir_generate import write_fhir_series
from fixtures.generate import demo_patients, write_series

FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def run(*args: str):
    return CliRunner().invoke(app, ["inspect", *args])


def test_inspect_json_and_ndjson_exit_0():
    result = run(str(FHIR / "mcode-tumor-size-r4.json"), str(FHIR / "bulk-export.ndjson"))
    assert result.exit_code == 0, result.output
    assert "FHIR R4 Bundle/mcode-restaging-2024-02-01" in result.stdout
    assert "Tumor 1234 [kidney]: long-axis 35 mm, short-axis 21 mm, length 14 mm" in result.stdout
    assert result.stdout.count("bulk-export.ndjson\n") == 3  # one block per report: 2 patients, 3 dates


def test_inspect_json_output_lists_every_report_of_a_file():
    result = run("--json", str(FHIR / "two-patients-bundle.json"))
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    (entry,) = document["inputs"]
    assert [r["patient"]["id"] for r in entry["reports"]] == ["PAT-1", "PAT-2"]
    assert {r["fhir_version"] for r in entry["reports"]} == {"R4"}
    assert entry["reports"][0]["findings"][0]["body_structure_ids"] == []
    assert document["rejected"] == []


def test_bad_fhir_inputs_one_line_each_exit_3(tmp_path):
    result = run(str(FHIR))  # the folder: good files and fixtures/fhir/bad/
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert sorted(lines) == sorted([
        f"{FHIR / 'bad' / 'invalid.json'}: is not valid JSON (Expecting value: line 2 column 1 (char 72))",
        f"{FHIR / 'bad' / 'not-fhir.json'}: is JSON but neither DICOM JSON (PS3.18) nor FHIR",
        f"{FHIR / 'bad' / 'observation-without-value.json'}: holds no usable lesion observation "
        "(Observation/ld-no-value (the resource) (Size.maximum dimension in Tumor) has no value; skipped)",
        f"{FHIR / 'bad' / 'unknown-resource-type.json'}: has resourceType 'TumourMeasurement', which is not a "
        "FHIR resource type",
    ])
    assert "Traceback" not in result.output


def test_only_bad_inputs_exit_2():
    result = run(str(FHIR / "bad" / "unknown-resource-type.json"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1


def test_a_folder_of_srs_and_fhir_for_one_patient(tmp_path):
    patient = demo_patients()[0]
    sr_paths = write_series(patient, tmp_path / "sr")
    fhir_paths = write_fhir_series(patient, tmp_path / "fhir")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(sr_paths[0], mixed / sr_paths[0].name)
    shutil.copy(fhir_paths[1], mixed / fhir_paths[1].name)
    shutil.copy(sr_paths[2], mixed / sr_paths[2].name)
    result = run("--json", str(mixed))
    assert result.exit_code == 0, result.output
    reports = [r for i in json.loads(result.stdout)["inputs"] for r in i["reports"]]
    assert [(r["source_kind"], r["imaging_date"]) for r in reports] == [
        ("dicom-sr", "2024-01-10"), ("fhir", "2024-03-06"), ("dicom-sr", "2024-05-08")]
    assert {r["patient"]["id"] for r in reports} == {"DEMO-OLIGO-1"}
    uids = [sorted(f["tracking_uid"] for f in r["findings"]) for r in reports]
    assert uids[0] == uids[1] == uids[2]
