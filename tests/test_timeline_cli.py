"""`oligo inspect --json` shows each patient's time points and the lesion x time-point matrix."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from adapter.cli import app
from fixtures.generate import make_sr, to_bytes, write_series

from timeline_series import c2_patient


def test_inspect_json_shows_patients_time_points_and_match_matrix(tmp_path):
    patient = c2_patient("TL-CLI")
    write_series(patient, tmp_path)
    anonymous = make_sr(c2_patient("TL-ANON"), patient.time_points[0])
    anonymous.PatientID = ""
    (tmp_path / "anonymous.dcm").write_bytes(to_bytes(anonymous))
    result = CliRunner().invoke(app, ["inspect", "--json", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) >= {"inputs", "rejected", "patients", "unplaced"}
    [timeline] = document["patients"]
    assert timeline["patient_id"] == "TL-CLI"
    assert [tp["date"] for tp in timeline["time_points"]] == ["2024-01-10", "2024-03-06", "2024-05-08"]
    assert timeline["time_points"][0]["baseline"] is True
    rows = {row["name"]: row["links"] for row in timeline["matrix"]["rows"]}
    assert rows["Liver 2"] == ["first-seen", "tracking-uid", "tracking-uid"]
    liver2 = next(lesion for lesion in timeline["lesions"] if lesion["name"] == "Liver 2")
    assert [o["size_mm"] for o in liver2["observations"]] == [25.0, 12.0, 20.0]
    assert liver2["role"] == "target" and liver2["organ"] == "liver" and liver2["new"] is False
    [unplaced] = document["unplaced"]
    assert unplaced["path"].endswith("anonymous.dcm") and "no patient id" in unplaced["reason"]


def test_inspect_text_shows_the_timeline_and_says_what_cannot_be_placed(tmp_path):
    patient = c2_patient("TL-TEXT")
    write_series(patient, tmp_path)
    anonymous = make_sr(c2_patient("TL-ANON"), patient.time_points[0])
    anonymous.PatientID = ""
    (tmp_path / "anonymous.dcm").write_bytes(to_bytes(anonymous))
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "timeline of TL-TEXT (OLIGO-DEMO): 3 time point(s) 2024-01-10* 2024-03-06 2024-05-08" in result.stdout
    assert "L2 Liver 2 [liver, target]: 25 mm (first-seen) | 12 mm (tracking-uid) | 20 mm (tracking-uid)" \
        in result.stdout
    assert "anonymous.dcm: has no patient id" in result.stdout
