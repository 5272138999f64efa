"""The DICOM listener (issue 8) run for real: `oligo listen` receives SRs from DCMTK's storescu (an
independent DICOM implementation) and the assessment appears in the store, on SQLite and PostgreSQL.
Refusals: a non-SR SOP class, a disallowed calling AE title, a wrong called AE title and SRs the reader
cannot use each get their DIMSE outcome, and nothing is stored for them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import adapter
from adapter.service.config import ConfigError, Settings
from adapter.store import bundle_of
from fixtures.generate import demo_patients, make_series, to_bytes
from tests.dicom_support import ListenerProcess, counts, echoscu, latest, storescu, tool
from tests.generated import simple_sr
from tests.service_support import REPO, FhirReceiver, database_url, postgres_url, wait_until  # noqa: F401 (fixtures)

OLIGO, POLY = demo_patients()
SUCCESS, CANNOT_UNDERSTAND = 0x0000, 0xC000
CORPUS_SRS = ("tid1500-fhir/rsna2018_dataset4/1.dcm", "_derived/hl7-dicom-sr/Example-MeasurementReport.fixed-accession.dcm",
              "highdicom/sr_document_with_multiple_groups.dcm")
EMPTY = {"documents": 0, "reports": 0, "assessments": 0, "outbox": 0, "assessment_queue": 0}


def write(folder: Path, series: list[bytes], stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}-{number}.dcm" for number in range(len(series))]
    for path, data in zip(paths, series):
        path.write_bytes(data)
    return paths


def as_json(value) -> object:
    return json.loads(json.dumps(value))


@pytest.fixture
def listener(database_url, tmp_path):  # noqa: F811
    # the worker waits an hour: only reading a patient's assessment (read your writes) assesses it here
    running = ListenerProcess(database_url, tmp_path, "--allow-ae", "STORESCU", "--allow-ae", "ROUTER",
                              assessment_delay_seconds=3600, assessment_max_delay_seconds=3600).start()
    yield running
    assert running.stop() == 0, running.output()


def test_corpus_and_generated_srs_are_stored_and_assessed(listener, corpus, tmp_path):
    series = make_series(OLIGO)
    files = [corpus / name for name in CORPUS_SRS] + write(tmp_path / "sr", series, "oligo")
    sent = storescu(listener.port, files)
    assert sent.returncode == 0 and sent.statuses == [SUCCESS] * 6, sent.output

    stored = latest(listener.database, OLIGO.patient_id)
    (expected,) = adapter.assess(adapter.read_sr(data) for data in series)
    assert [tp["state"] for tp in stored.result["timepoints"]] == ["baseline", "no-progression", "oligoprogression"]
    assert stored.result == as_json(expected.to_dict())
    assert stored.bundle == as_json(bundle_of(expected))
    # a corpus SR written by PixelMed (Crowds Cure Cancer): one kidney length of 66.44 mm
    kidney = latest(listener.database, "TCGA-BP-4343").result["timepoints"]
    assert [(tp["date"], tp["state"]) for tp in kidney] == [("1987-06-20", "baseline")]
    assert "baseline sum of diameters 66.4 mm over 1 target lesion(s)" in kidney[0]["reasons"]
    assert latest(listener.database, "PID-11235") is not None and latest(listener.database, "1CT1") is not None
    before = counts(listener.database)  # the oligo patient's three SRs arrived together: one assessment
    assert before == {"documents": 6, "reports": 6, "assessments": 4, "outbox": 0, "assessment_queue": 0}

    # sending everything again (another allowed sender) is acknowledged and changes nothing
    again = storescu(listener.port, files, calling="ROUTER")
    assert again.returncode == 0 and again.statuses == [SUCCESS] * 6, again.output
    assert counts(listener.database) == before


@pytest.mark.parametrize("option, transfer_syntax", [
    ("-xd", "DeflatedLittleEndianExplicit"), ("-xb", "BigEndianExplicit"), ("-xi", "LittleEndianImplicit")])
def test_every_uncompressed_transfer_syntax(tmp_path, option, transfer_syntax):
    running = ListenerProcess(str(tmp_path / "store.sqlite3"), tmp_path).start()
    try:
        series = make_series(OLIGO)
        sent = storescu(running.port, write(tmp_path / "sr", series, "oligo"), options=(option,))
        assert sent.statuses == [SUCCESS] * 3, sent.output
        assert f"Accepted Transfer Syntax: ={transfer_syntax}" in sent.output
        (expected,) = adapter.assess(adapter.read_sr(data) for data in series)
        assert latest(running.database, OLIGO.patient_id).result == as_json(expected.to_dict())
    finally:
        assert running.stop() == 0, running.output()


def test_refused_instances_get_their_dimse_outcome_and_nothing_is_stored(corpus, tmp_path):
    running = ListenerProcess(str(tmp_path / "store.sqlite3"), tmp_path, "--allow-ae", "STORESCU").start()
    try:
        good = write(tmp_path / "sr", make_series(POLY)[:1], "poly")
        # a non-SR instance (microscopy bulk annotations) and a Basic Text SR: refused at association
        for name in ("highdicom/sm_annotations.dcm", "pydicom/reportsi.dcm"):
            refused = storescu(running.port, [corpus / name])
            assert refused.returncode != 0 and refused.statuses == [], refused.output
            assert "Abstract Syntax Not Supported" in refused.output
            assert "No Acceptable Presentation Contexts" in refused.output
        # a calling AE title that is not allowed, an association addressed to another AE title
        intruder = storescu(running.port, good, calling="INTRUDER")
        assert intruder.returncode != 0 and intruder.statuses == []
        assert "Rejected Permanent" in intruder.output and "Calling AE Title Not Recognized" in intruder.output
        misaddressed = storescu(running.port, good, called="PACS")
        assert "Called AE Title Not Recognized" in misaddressed.output and misaddressed.statuses == []
        assert "Calling AE Title Not Recognized" in echoscu(running.port, calling="INTRUDER").stderr
        assert "association from INTRUDER at 127.0.0.1 rejected: calling AE title not allowed" in running.output()
        assert "rejected: called AE title 'PACS' is not ours (OLIGO)" in running.output()

        # SRs of an accepted SOP class that the reader cannot use: 0xC000 with the reason
        empty_tree, no_patient = simple_sr(), simple_sr()
        del empty_tree.ContentSequence
        del no_patient.PatientID
        malformed = [corpus / "pydicom/test-SR.dcm"] + write(tmp_path / "bad", [to_bytes(empty_tree)], "empty") \
            + write(tmp_path / "unplaced", [to_bytes(no_patient)], "no-patient")
        answered = storescu(running.port, malformed)
        assert answered.statuses == [CANNOT_UNDERSTAND] * 3, answered.output
        assert answered.comments[0].startswith("has no TID 1500 Imaging Measurement Report")
        assert answered.comments[1] == "is a TID 1500 report with an empty content tree"
        assert answered.comments[2].startswith("has no patient id")
        assert counts(running.database) == EMPTY

        # the listener is still up, and a good SR afterwards is stored
        accepted = storescu(running.port, good)
        assert accepted.statuses == [SUCCESS], accepted.output
        assert latest(running.database, POLY.patient_id) is not None
        assert counts(running.database) == {"documents": 1, "reports": 1, "assessments": 1, "outbox": 0,
                                            "assessment_queue": 0}
    finally:
        assert running.stop() == 0, running.output()


def test_concurrent_senders_and_the_association_bound(tmp_path):
    running = ListenerProcess(str(tmp_path / "store.sqlite3"), tmp_path, "--max-associations", "2",
                              listen_acse_timeout=5, listen_network_timeout=5).start()
    try:
        oligo = write(tmp_path / "oligo", make_series(OLIGO), "oligo")
        poly = write(tmp_path / "poly", make_series(POLY), "poly")
        senders = [subprocess.Popen([tool("storescu"), "-R", "-aet", "STORESCU", "-aec", "OLIGO", "127.0.0.1",
                                     str(running.port), *map(str, files)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for files in (oligo, poly)]
        for sender in senders:
            output, _ = sender.communicate(timeout=120)
            assert sender.returncode == 0, output
        assert [tp["state"] for tp in latest(running.database, OLIGO.patient_id).result["timepoints"]] == [
            "baseline", "no-progression", "oligoprogression"]
        assert [tp["state"] for tp in latest(running.database, POLY.patient_id).result["timepoints"]] == [
            "baseline", "no-progression", "polyprogression"]

        # two connections that never finish association hold both slots: the next association is refused
        holders = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(2)]
        try:
            refused = wait_until(lambda: (r := echoscu(running.port)).returncode != 0 and r, "a refused association")
            assert "Rejected Transient" in refused.stderr and "Local Limit Exceeded" in refused.stderr
            assert "rejected: more than 2 concurrent associations" in running.output()
        finally:
            for holder in holders:
                holder.close()
        wait_until(lambda: echoscu(running.port).returncode == 0, "a free association slot again")
    finally:
        assert running.stop() == 0, running.output()


def test_delivery_to_the_ehr_never_holds_the_association(tmp_path):
    with FhirReceiver() as ehr:
        ehr.down = True
        running = ListenerProcess(str(tmp_path / "store.sqlite3"), tmp_path, ehr_base_url=ehr.base,
                                  delivery_backoff_seconds=0.1, delivery_backoff_max_seconds=0.2,
                                  delivery_poll_seconds=0.2).start()
        try:
            series = make_series(POLY)
            for number, path in enumerate(write(tmp_path / "sr", series, "poly"), start=1):
                sent = storescu(running.port, [path])
                # acknowledged while the EHR refuses every delivery: stored, then assessed (here when it is
                # read, so each SR gives its own assessment) and queued for delivery
                assert sent.statuses == [SUCCESS], sent.output
                assert len(latest(running.database, POLY.patient_id).result["timepoints"]) == number
            wait_until(lambda: ehr.tries() >= 2, "delivery attempts against the EHR that is down")
            assert ehr.accepted == []
            ehr.down = False
            wait_until(lambda: len(ehr.accepted) == 3, "the three assessments delivered")
            stored = latest(running.database, POLY.patient_id)
            (expected,) = adapter.assess(adapter.read_sr(data) for data in series)
            assert ehr.accepted[-1] == stored.bundle == as_json(bundle_of(expected))
        finally:
            assert running.stop() == 0, running.output()


def test_listen_usage_errors_are_one_line(tmp_path):
    """A port already taken and an AE title DICOM does not allow: exit 2 and one plain line, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "adapter", "listen", "--port", str(port), "--database",
                               str(tmp_path / "store.sqlite3")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.stderr + busy.stdout
    long_title = subprocess.run([sys.executable, "-m", "adapter", "listen", "--ae-title", "A" * 17, "--database",
                                 str(tmp_path / "store.sqlite3")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert long_title.returncode == 2 and "AE title 'AAAAAAAAAAAAAAAAA': 1 to 16 printable characters" in long_title.stderr
    assert "Traceback" not in long_title.stderr


def test_listener_settings_from_environment_and_their_checks():
    settings = Settings.load(environ={"OLIGO_LISTEN_ALLOWED_AETS": "PACS, ROUTER ,", "OLIGO_LISTEN_DIMSE_TIMEOUT": "5"})
    assert settings.allowed_calling_aets() == ("PACS", "ROUTER") and settings.listen_dimse_timeout == 5.0
    assert Settings.load(environ={}).listen_ae_title == "OLIGO" and Settings.load(environ={}).allowed_calling_aets() == ()
    for bad, message in ((dict(listen_max_associations=0), "listen_max_associations must be positive"),
                         (dict(listen_acse_timeout=0), "must be positive"),
                         (dict(listen_allowed_aets="GOOD,BAD\\TITLE"), "without backslash")):
        with pytest.raises(ConfigError, match=message):
            Settings.load(environ={}, **bad)
