"""`oligo report` on SRs written by fixtures/generate.py: the demo case end to end (the real reader,
the timeline, the assessment, the Bundle and the plot), options and bad usage."""

from __future__ import annotations

import base64
import json

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.emit import validate
from fixtures import generate as g

from tests.emit_helpers import DCM, LOCAL, LOINC, codes, component, observations, resources

runner = CliRunner()

DEMO_CONCLUSION = (
    "Oligoprogression: 1 of 5 tracked lesions progressing [Lesion 2 in the liver, 10 → 20 mm, +100 % from its "
    "nadir]; the other lesions are controlled; RECIST 1.1 partial response (sum of diameters 66 mm, −32 % from "
    "baseline 97 mm). Lesion 2: candidate for local therapy (e.g. SBRT or ablation) while systemic therapy "
    "continues. Preset consensus-5: oligoprogression up to 5 progressing lesions.")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    for patient in g.demo_patients():
        g.write_series(patient, out)
    return out


def test_demo_case(demo, tmp_path):
    bundle_path, plot_path = tmp_path / "out" / "bundle.json", tmp_path / "out" / "spider.png"
    result = runner.invoke(app, ["report", str(demo / "DEMO-OLIGO-1"), "-o", str(bundle_path),
                                 "--plot", str(plot_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"patient DEMO-OLIGO-1: FHIR R4 Bundle (26 entries) -> {bundle_path}; spider plot -> "
                             f"{plot_path}\n  conclusion: {DEMO_CONCLUSION}\n")
    bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    validate(bundle, "R4")
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["conclusion"] == DEMO_CONCLUSION
    assert report["effectiveDateTime"] == "2024-05-08"
    assert report["issued"] == "2024-05-08T12:00:00+00:00"  # the SR's content date and time
    assert base64.b64decode(report["presentedForm"][0]["data"]) == plot_path.read_bytes()
    # real UIDs from the SRs
    tumor = next(t for t in resources(bundle, "BodyStructure") if t["description"] == "Lesion 2")
    assert tumor["identifier"][2]["value"] == f"urn:oid:{g.uid('DEMO-OLIGO-1', 'lesion', 'Lesion 2')}"
    patient = g.demo_patients()[0]
    study = g.source_image(patient, patient.time_points[2]).StudyInstanceUID
    assert report["imagingStudy"][-1]["identifier"]["value"] == f"urn:oid:{study}"
    assert tumor["patient"]["identifier"]["system"] == "urn:oligo-adapter:patient-id-issuer:OLIGO-DEMO"
    # the measured modality is the TumorSize method (CT, SNOMED 77477000)
    sizes = observations(bundle, LOINC, "21889-1")
    assert len(sizes) == 12  # four target lesions measured at three scans; the bone lesion has no number
    assert {next(iter(codes(o["method"])))[1] for o in sizes} == {"77477000"}
    (recist,) = observations(bundle, DCM, "112048")
    assert codes(recist["valueCodeableConcept"]) == {(LOCAL, "PR")}
    assert codes(component(recist, "non-target-response")["valueCodeableConcept"]) == {(DCM, "112046")}


def test_same_srs_same_bytes(demo, tmp_path):
    outputs = []
    for k in range(2):
        path = tmp_path / f"b{k}.json"
        plot = tmp_path / f"p{k}.png"
        result = runner.invoke(app, ["report", str(demo / "DEMO-OLIGO-1"), "-o", str(path), "--plot", str(plot)])
        assert result.exit_code == 0, result.output
        outputs.append((path.read_bytes(), plot.read_bytes()))
    assert outputs[0] == outputs[1]


def test_stdout_r5_issued_and_code_system(demo):
    result = runner.invoke(app, ["report", str(demo / "DEMO-POLY-2"), "--fhir-version", "r5",
                                 "--issued", "2024-06-05T08:00:00+02:00",
                                 "--code-system-url", "https://hospital.example/cs"])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    validate(bundle, "R5")
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["issued"] == "2024-06-05T08:00:00+02:00"
    assert "study" in report
    assert [codes(c) for c in report["conclusionCode"]][1] == {("https://hospital.example/cs", "polyprogression")}


def test_several_patients_need_an_output_file(demo, tmp_path):
    result = runner.invoke(app, ["report", str(demo)])
    assert result.exit_code == 2
    assert "2 patients in the inputs: give -o FILE" in result.stderr
    result = runner.invoke(app, ["report", str(demo), "-o", str(tmp_path / "bundle.json"),
                                 "--plot", str(tmp_path / "spider.png"), "--preset", "iyengar-2014"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle-DEMO-OLIGO-1.json", "bundle-DEMO-POLY-2.json", "spider-DEMO-OLIGO-1.png", "spider-DEMO-POLY-2.png"]
    poly = json.loads((tmp_path / "bundle-DEMO-POLY-2.json").read_text(encoding="utf-8"))
    (pattern,) = observations(poly, LOCAL, "progression-pattern")
    # six progressing lesions: oligo under iyengar-2014 (limit 6)
    assert codes(pattern["valueCodeableConcept"]) == {(LOCAL, "oligoprogression")}
    assert component(pattern, "progressing-limit")["valueInteger"] == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--fhir-version", "R3"], "unknown FHIR version 'R3'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--issued", "yesterday"], "--issued 'yesterday': expected an ISO date-time"),
])
def test_bad_usage(demo, args, message):
    result = runner.invoke(app, ["report", str(demo / "DEMO-OLIGO-1"), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_rejected_inputs_are_named_and_the_rest_reported(demo, tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    result = runner.invoke(app, ["report", str(demo / "DEMO-OLIGO-1"), str(junk), "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 3
    assert f"{junk}: is not a DICOM file" in result.stderr
    assert (tmp_path / "b.json").is_file()
    result = runner.invoke(app, ["report", str(junk)])
    assert result.exit_code == 2
