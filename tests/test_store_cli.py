"""`oligo ingest` and `oligo assess --database URL --patient ID` (issue 7)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from adapter.cli import app
from fixtures.generate import demo_patients, write_series
from tests.service_support import database_url, postgres_url  # noqa: F401 (fixtures)

OLIGO = demo_patients()[0]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_ingest_then_assess_from_the_store(database_url, tmp_path):  # noqa: F811
    paths = write_series(OLIGO, tmp_path / "in")
    first = run("ingest", str(tmp_path / "in"), "--database", database_url)
    assert first.exit_code == 0, first.output
    assert first.stdout.count(": stored") == 3
    # the three SRs of one patient are assessed once, after the last is stored, before the command ends
    assert first.stdout.splitlines()[-1] == "1 patient(s) assessed: 1 new assessment(s)"
    again = run("ingest", str(tmp_path / "in"), "--database", database_url, "--json")
    assert again.exit_code == 0
    assert [r["status"] for r in json.loads(again.stdout)["results"]] == ["unchanged"] * 3
    assert json.loads(again.stdout)["assessed"] == []

    stored = run("assess", "--database", database_url, "--patient", OLIGO.patient_id, "--json")
    direct = run("assess", *map(str, paths), "--json")
    assert stored.exit_code == 0, stored.output
    (patient,) = json.loads(stored.stdout)["patients"]
    assert [tp["state"] for tp in patient["timepoints"]] == ["baseline", "no-progression", "oligoprogression"]
    assert json.loads(stored.stdout) == json.loads(direct.stdout)
    text = run("assess", "--database", database_url, "--patient", OLIGO.patient_id)
    assert "oligoprogression" in text.stdout


def test_rejected_inputs_are_named_and_the_rest_is_stored(database_url, tmp_path, corpus):  # noqa: F811
    folder = tmp_path / "in"
    write_series(OLIGO, folder)
    shutil.copy(corpus / "pydicom/reportsi.dcm", folder / "text-report.dcm")
    result = run("ingest", str(folder), "--database", database_url)
    assert result.exit_code == 3
    (line,) = [ln for ln in result.stderr.splitlines() if "text-report.dcm" in ln]
    assert line.startswith(str(folder / "text-report.dcm") + ": ")
    assert "Traceback" not in result.output


def test_usage_errors(database_url, tmp_path):  # noqa: F811
    assert run("assess", "--database", database_url).exit_code == 2  # no --patient
    assert run("assess").exit_code == 2  # neither inputs nor a store
    missing = run("assess", "--database", database_url, "--patient", "NOBODY")
    assert missing.exit_code == 2 and "no reports of this patient are stored" in missing.stderr
    assert run("deliveries", "--database", database_url, "--status", "lost").exit_code == 2
    assert run("ingest", str(tmp_path / "nothing-here"), "--database", database_url).exit_code == 2
