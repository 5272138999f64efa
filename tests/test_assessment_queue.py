"""The assessment queue (issue 9): ingest stores and queues, assessing happens later. Reports of one
patient arriving together give one assessment and one delivery; a POST then a GET sees the POST; the
queue survives restarts and SIGKILL; two processes draining at once assess each patient once per change;
a patient whose assessment fails does not hold up the others and is reported. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import signal
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import adapter
import adapter.store.store as store_module
from adapter.service.config import Settings
from adapter.service.http import create_app
from adapter.store import AssessmentFailed, Store, bundle_of
from adapter.store.schema import QueuedPatient, StoredAssessment
from fixtures.generate import demo_patients, make_series
from tests.service_support import (REPO, TOKEN, WRITE, FhirReceiver, Service, database_url,  # noqa: F401
                                   postgres_url, wait_until)

DICOM = {"Content-Type": "application/dicom"}
OLIGO, POLY = demo_patients()
EHR = "http://127.0.0.1:9/fhir"  # never contacted: these tests only look at the outbox
ONLY_READS_ASSESS = {"assessment_delay_seconds": 3600, "assessment_max_delay_seconds": 3600}  # the worker waits


def six_time_points():
    """The oligo demo patient followed up three more times (the last time point repeated, later)."""
    patient = dataclasses.replace(OLIGO, patient_id="QUEUE-SIX")
    last = patient.time_points[-1]
    patient.time_points = patient.time_points + [dataclasses.replace(last, date=last.date + dt.timedelta(days=60 * n))
                                                 for n in (1, 2, 3)]
    return patient


def numbered(count: int) -> list:
    """`count` copies of the oligo demo patient under other ids (each its own reports and UIDs)."""
    return [dataclasses.replace(OLIGO, patient_id=f"QUEUE-{n}") for n in range(count)]


def library_result(series: list[bytes]) -> dict:
    (result,) = adapter.assess(adapter.read_sr(data) for data in series)
    return json.loads(json.dumps(result.to_dict()))


def assessments_per_patient(store: Store) -> dict[str, int]:
    with store.session() as session:
        return dict(session.execute(select(StoredAssessment.patient_id, func.count())
                                    .group_by(StoredAssessment.patient_id)).tuples().all())


@pytest.fixture
def store(database_url):  # noqa: F811
    store = Store.open(database_url, delivery_target=EHR)
    yield store
    store.close()


def test_six_reports_of_a_patient_arriving_together_give_one_assessment_and_one_delivery(store):
    patient = six_time_points()
    series = make_series(patient)
    results = [store.ingest(data, label=f"sr-{n}.dcm") for n, data in enumerate(series)]
    assert [r.to_dict()["assessment"] for r in results] == ["queued"] * 6
    assert all(r.assessments == () and r.deliveries == () for r in results)  # nothing assessed on ingest
    assert store.queue_state() == {"waiting": 1, "failing": 0}
    (drained,) = store.drain()
    assert drained.assessment_id and drained.delivery_id and drained.error is None
    assert store.counts() == {"documents": 6, "reports": 6, "assessments": 1, "outbox": 1, "assessment_queue": 0}
    assert store.latest_assessment(patient.patient_id).result == library_result(series)
    assert store.drain() == []  # nothing left


def test_inline_assessment_for_library_users(database_url):  # noqa: F811
    inline = Store.open(database_url, delivery_target=EHR, assess_inline=True)
    try:
        for data in make_series(OLIGO):
            result = inline.ingest(data, label="sr.dcm")
            assert result.to_dict()["assessment"] == "done"
            assert len(result.assessments) == 1 and len(result.deliveries) == 1
        assert inline.counts()["assessments"] == 3 and inline.queue_state()["waiting"] == 0
        resent = inline.ingest(make_series(OLIGO)[0], label="again.dcm")
        assert resent.to_dict()["assessment"] == "unchanged" and resent.assessments == ()
    finally:
        inline.close()


def test_the_queue_survives_a_restart(database_url):  # noqa: F811
    series = make_series(OLIGO)
    first = Store.open(database_url, delivery_target=EHR)
    for data in series:
        first.ingest(data, label="sr.dcm")
    first.close()
    again = Store.open(database_url)  # opened without an EHR: the queue row remembers where to deliver
    try:
        assert again.queue_state() == {"waiting": 1, "failing": 0}
        assert again.latest_assessment(OLIGO.patient_id, assess_queued=False) is None
        (drained,) = again.drain()
        assert drained.delivery_id is not None
        assert again.latest_assessment(OLIGO.patient_id).result == library_result(series)
        assert again.counts()["outbox"] == 1 and again.queue_state()["waiting"] == 0
    finally:
        again.close()


def test_reading_an_assessment_assesses_a_queued_patient_first(store):
    series = make_series(OLIGO)
    for number in range(1, len(series) + 1):
        store.ingest(series[number - 1], label="sr.dcm")
        assert store.latest_assessment(OLIGO.patient_id).result == library_result(series[:number])
    assert store.counts()["assessments"] == 3 and store.queue_state()["waiting"] == 0


def test_a_patient_queued_again_while_assessed_is_assessed_again(store, monkeypatch):
    series = make_series(OLIGO)
    store.ingest(series[0], label="first.dcm")
    original = Store._assess_documents
    sneaked = []

    def with_a_report_arriving(self, bodies, rows, preset):
        if not sneaked:  # the third SR is stored while the first is being assessed (no lock is held here)
            sneaked.append(store.ingest(series[2], label="during.dcm"))
        return original(self, bodies, rows, preset)

    monkeypatch.setattr(Store, "_assess_documents", with_a_report_arriving)
    (drained,) = store.drain()
    assert sneaked[0].status == "stored" and store.queue_state()["waiting"] == 0
    latest = store.latest_assessment(OLIGO.patient_id, assess_queued=False)
    assert latest.id == drained.assessment_id
    assert latest.result == library_result([series[0], series[2]])
    assert store.counts()["assessments"] == 1  # the stale result (first SR only) was never stored


def test_a_failing_patient_does_not_hold_up_the_others_and_is_reported(store, monkeypatch, caplog):
    original = store_module.assess_timelines

    def failing_for_oligo(timelines, preset):
        if any(t.patient_id == OLIGO.patient_id for t in timelines):
            raise ZeroDivisionError(f"a bug that quotes {timelines[0].patient_id}")
        return original(timelines, preset)

    monkeypatch.setattr(store_module, "assess_timelines", failing_for_oligo)
    store.ingest(make_series(OLIGO)[0], label="oligo.dcm")
    store.ingest(make_series(POLY)[0], label="poly.dcm")
    with caplog.at_level(logging.ERROR, logger="oligo.store"):
        drained = store.drain()
    assert {a.patient[0]: (a.error, bool(a.assessment_id)) for a in drained} == {
        OLIGO.patient_id: ("ZeroDivisionError", False), POLY.patient_id: (None, True)}
    assert store.queue_state() == {"waiting": 1, "failing": 1}
    assert store.drain() == []  # it waits for its retry; nothing else is due
    (record,) = [r for r in caplog.records if "queue entry" in r.getMessage()]
    assert "ZeroDivisionError" in record.getMessage() and OLIGO.patient_id not in record.getMessage()
    with pytest.raises(AssessmentFailed, match="could not be made"):
        store.latest_assessment(OLIGO.patient_id)
    app = create_app(Settings(database=store.database, api_tokens=TOKEN), store)
    with TestClient(app, headers=WRITE) as client:
        served = client.get(f"/patients/{OLIGO.patient_id}/assessment")
        assert served.status_code == 500 and "could not be made" in served.json()["issue"][0]["diagnostics"]
        assert client.get(f"/patients/{POLY.patient_id}/assessment").status_code == 200
        assert client.get("/health").json()["assessment_queue"] == {"waiting": 1, "failing": 1}
        monkeypatch.setattr(store_module, "assess_timelines", original)  # fixed: the next read assesses it
        assert client.get(f"/patients/{OLIGO.patient_id}/assessment").status_code == 200
        assert client.get("/health").json()["assessment_queue"] == {"waiting": 0, "failing": 0}


def test_a_bundle_that_cannot_be_made_is_reported_and_the_others_are_delivered(store, monkeypatch, caplog):
    original = store_module.bundle_of

    def failing_for_oligo(result):
        if result.patient_id == OLIGO.patient_id:
            raise ValueError("the emitter refuses it")
        return original(result)

    monkeypatch.setattr(store_module, "bundle_of", failing_for_oligo)
    store.ingest(make_series(OLIGO)[0], label="oligo.dcm")
    store.ingest(make_series(POLY)[0], label="poly.dcm")
    with caplog.at_level(logging.ERROR, logger="oligo.store"):
        assert all(a.assessment_id for a in store.drain())
    assert any("FHIR Bundle" in r.getMessage() for r in caplog.records)
    assert store.latest_assessment(OLIGO.patient_id).bundle is None  # served as an error, not silently
    assert store.latest_assessment(POLY.patient_id).bundle == json.loads(json.dumps(
        bundle_of(adapter.assess([adapter.read_sr(make_series(POLY)[0])])[0])))


DRAIN = """
import json, sys, time
from adapter.store import Store
store = Store.open(sys.argv[1])
while time.time() < float(sys.argv[2]):  # both processes start draining at the same moment
    time.sleep(0.001)
print(json.dumps([[a.patient[0], a.assessment_id, a.error] for a in store.drain()]))
store.close()
"""


def drain_in_two_processes(database: str) -> list[list]:
    import time

    start = time.time() + 3
    processes = [subprocess.Popen([sys.executable, "-c", DRAIN, database, str(start)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    return [json.loads(out) for out, _ in outputs]


def test_two_processes_draining_at_once_assess_each_patient_once_per_change(store, database_url):  # noqa: F811
    patients = numbered(8)
    series = {p.patient_id: make_series(p) for p in patients}
    for rounds, upto in enumerate((2, 3), start=1):  # two SRs of everyone, then the third of everyone
        for patient in patients:
            for data in series[patient.patient_id][upto - 2 if rounds == 1 else 2:upto]:
                store.ingest(data, label="sr.dcm")
        assert store.queue_state()["waiting"] == len(patients)
        drained = drain_in_two_processes(database_url)
        made = [patient for output in drained for patient, assessment_id, error in output if assessment_id]
        assert sorted(made) == sorted(p.patient_id for p in patients)  # each once, by one process or the other
        assert all(error is None for output in drained for *_, error in output)
        assert assessments_per_patient(store) == {p.patient_id: rounds for p in patients}
        assert store.queue_state()["waiting"] == 0 and store.counts()["outbox"] == rounds * len(patients)
    for patient in patients:
        assert store.latest_assessment(patient.patient_id).result == library_result(series[patient.patient_id])


# --- the service ------------------------------------------------------------------------------------------


def test_post_then_get_sees_the_post(database_url, tmp_path):  # noqa: F811
    series = make_series(OLIGO)
    service = Service(database_url, tmp_path, **ONLY_READS_ASSESS).start()
    try:
        with service.client() as client:
            for number, data in enumerate(series, start=1):
                posted = client.post("/dicom", content=data, headers=DICOM)
                assert posted.status_code == 201
                body = posted.json()
                assert body["assessment"] == "queued" and body["assessments"] == []
                (patient,) = body["patients"]
                assert patient["assessment_url"] == f"/patients/{OLIGO.patient_id}/assessment?issuer={OLIGO.issuer}"
                summary = client.get(patient["assessment_url"].replace("/assessment?", "/assessment/summary?"))
                assert summary.json()["patients"][0] == library_result(series[:number])
                assert client.get(patient["assessment_url"]).json()["resourceType"] == "Bundle"
            health = client.get("/health").json()
    finally:
        service.stop()
    assert health["counts"]["assessments"] == 3 and health["assessment_queue"] == {"waiting": 0, "failing": 0}


def test_a_serve_process_killed_before_assessing_assesses_and_delivers_once_after_restart(database_url,  # noqa: F811
                                                                                           tmp_path):
    series = make_series(OLIGO)
    with FhirReceiver() as receiver:
        service = Service(database_url, tmp_path, ehr_base_url=receiver.base, **ONLY_READS_ASSESS,
                          delivery_poll_seconds=0.2).start()
        try:
            with service.client() as client:
                for data in series:
                    assert client.post("/dicom", content=data, headers=DICOM).status_code == 201
        finally:
            service.stop(signal.SIGKILL)  # every ingest committed; nothing assessed yet
        killed = Store.open(database_url)
        try:
            assert killed.queue_state()["waiting"] == 1 and killed.counts()["assessments"] == 0
        finally:
            killed.close()
        service.env["OLIGO_ASSESSMENT_DELAY_SECONDS"] = "0"
        service.start()
        try:
            wait_until(lambda: receiver.accepted, "the delivery after the restart")
            with service.client() as client:
                wait_until(lambda: client.get("/deliveries?status=delivered").json()["deliveries"], "delivered")
                health = client.get("/health").json()
        finally:
            service.stop()
    (result,) = adapter.assess(adapter.read_sr(data) for data in series)
    assert receiver.accepted == [json.loads(json.dumps(bundle_of(result)))]  # once, all three SRs in it
    assert health["counts"]["assessments"] == 1 and health["counts"]["outbox"] == 1
    assert health["assessment_queue"]["waiting"] == 0


def test_queue_rows_carry_the_generation(store):
    store.ingest(make_series(OLIGO)[0], label="a.dcm")
    store.ingest(make_series(OLIGO)[1], label="b.dcm")
    store.ingest(make_series(OLIGO)[1], label="b-again.dcm")  # unchanged: not queued again
    with store.session() as session:
        (row,) = session.scalars(select(QueuedPatient)).all()
    assert (row.patient_id, row.patient_issuer, row.generation, row.delivery_target) == (
        OLIGO.patient_id, OLIGO.issuer, 2, EHR)


def test_a_burst_of_reports_is_assessed_when_it_ends_or_after_the_maximum_delay(store):
    from adapter.store import queue

    store.ingest(make_series(OLIGO)[0], label="oligo.dcm")
    store.ingest(make_series(POLY)[0], label="poly.dcm")
    second = dt.timedelta(seconds=1)

    def claim(now: dt.datetime):
        with store.session() as session, session.begin():
            found = queue.claim_due(session, now, settle_seconds=0.5, lease_seconds=60, max_delay_seconds=10)
            if found:
                queue.release(session, found)
            return found and found.patient[0]

    with store.session() as session:
        oldest, newest = session.execute(select(func.min(QueuedPatient.queued_at),
                                                func.max(QueuedPatient.queued_at))).one()
    assert claim(newest + second / 5) is None  # reports still coming in: nobody is due yet
    assert claim(newest + second * 0.6) == OLIGO.patient_id  # quiet: the longest waiting first
    with store.session() as session, session.begin():
        session.execute(QueuedPatient.__table__.update().where(QueuedPatient.patient_id == OLIGO.patient_id)
                        .values(queued_at=oldest - 20 * second))
    assert claim(newest + second / 5) == OLIGO.patient_id  # still coming in, but it waited past the maximum
    with store.session() as session:
        due, leased = queue.next_due(session, newest + second / 5, 0.5, 10)
    assert due == oldest - 10 * second and leased is None


def test_several_service_processes_share_the_port_and_the_queue(tmp_path):
    series = make_series(OLIGO)
    service = Service(str(tmp_path / "store.sqlite3"), tmp_path, workers=2).start()
    try:
        with service.client() as client:
            for data in series:
                assert client.post("/dicom", content=data, headers=DICOM).status_code == 201
            summary = client.get(f"/patients/{OLIGO.patient_id}/assessment/summary")
            wait_until(lambda: client.get("/health").json()["counts"]["assessment_queue"] == 0, "an empty queue")
    finally:
        service.stop()
    assert summary.json()["patients"][0] == library_result(series)
    assert "Started parent process" in service.output()  # uvicorn's supervisor of the worker processes
