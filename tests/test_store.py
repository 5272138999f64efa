"""The store (issue 7): documents kept as received, idempotent ingest, versions, assessments, against
SQLite and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json

import pydicom
import pytest
from sqlalchemy import inspect, select

import adapter
from adapter.store import Store, bundle_of
from adapter.store.schema import Document, StoredReport
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import Lesion, demo_patients, make_series, make_sr
from tests.service_support import database_url, postgres_url  # noqa: F401 (fixtures)

OLIGO_STATES = ["baseline", "no-progression", "oligoprogression"]  # CLINICAL.md C2-like demo patient


def states(result: dict) -> list[str]:
    return [tp["state"] for tp in result["timepoints"]]


@pytest.fixture
def store(database_url):  # noqa: F811
    store = Store.open(database_url, delivery_target="http://127.0.0.1:9/fhir")
    yield store
    store.close()


def test_series_is_stored_and_assessed_like_the_library(store):
    patient = demo_patients()[0]
    series = make_series(patient)
    for number, data in enumerate(series):
        result = store.ingest(data, label=f"sr-{number}.dcm")
        assert result.status == "stored" and [r["status"] for r in result.reports] == ["new"]
        assert result.to_dict()["assessment"] == "queued" and [p[0] for p in result.queued] == [patient.patient_id]
        (drained,) = store.drain()  # each SR assessed before the next arrives: one assessment per SR
        assert drained.assessment_id and drained.delivery_id and not drained.error
    latest = store.latest_assessment(patient.patient_id)
    (expected,) = adapter.assess(adapter.read_sr(d) for d in series)
    assert states(latest.result) == OLIGO_STATES
    assert latest.result == json.loads(json.dumps(expected.to_dict()))
    assert latest.bundle == json.loads(json.dumps(bundle_of(expected)))
    assert latest.bundle["resourceType"] == "Bundle" and latest.bundle["type"] == "transaction"
    assert store.counts() == {"documents": 3, "reports": 3, "assessments": 3, "outbox": 3, "assessment_queue": 0}


def test_documents_are_kept_byte_for_byte(store):
    data = make_series(demo_patients()[0])[0]
    store.ingest(data, label="first.dcm", media_type="application/dicom")
    with store.session() as session:
        (document,) = session.scalars(select(Document)).all()
        assert document.body == data
        assert document.sha256 == hashlib.sha256(data).hexdigest()
        assert (document.kind, document.label, document.size) == ("dicom", "first.dcm", len(data))
        (report,) = session.scalars(select(StoredReport)).all()
        assert report.normalised == json.loads(json.dumps(adapter.read_sr(data).to_dict(), default=str))


def test_resending_changes_nothing_in_any_encoding(store):
    patient = demo_patients()[0]
    data = make_series(patient)[0]
    store.ingest(data, label="a.dcm")
    before = store.counts()
    again = store.ingest(data, label="a-again.dcm")
    assert again.status == "unchanged" and again.document_id is None
    dicom_json = json.dumps(pydicom.dcmread(io.BytesIO(data)).to_json_dict()).encode()
    as_json = store.ingest(dicom_json, label="a.json", media_type="application/dicom+json")
    assert as_json.status == "unchanged"
    assert store.counts() == before


def test_fhir_bundles_are_stored_and_resending_them_changes_nothing(store):
    patient = demo_patients()[0]
    bundles = [json.dumps(b).encode() for b in make_fhir_series(patient, shapes=("mcode-r4",))]
    for number, data in enumerate(bundles):
        assert store.ingest(data, label=f"bundle-{number}.json").status == "stored"
    counts = store.counts()
    assert [store.ingest(data, label="again").status for data in bundles] == ["unchanged"] * len(bundles)
    assert store.counts() == counts
    assert states(store.latest_assessment(patient.patient_id).result) == OLIGO_STATES


def test_a_new_version_of_a_report_replaces_it_and_the_old_document_stays(store):
    patient = demo_patients()[0]
    series = make_series(patient)
    for data in series:
        store.ingest(data, label="sr.dcm")
    last = patient.time_points[-1]
    shrunk = dataclasses.replace(last, lesions=[dataclasses.replace(lesion, long_axis=lesion.long_axis and 10.0,
                                                                    short_axis=lesion.short_axis and 8.0)
                                                for lesion in last.lesions])
    corrected = make_sr(patient, shrunk, 3)
    assert corrected.SOPInstanceUID == adapter.read_sr(series[-1]).source_id
    from fixtures.generate import to_bytes

    result = store.ingest(to_bytes(corrected), label="corrected.dcm")
    assert [r["status"] for r in result.reports] == ["updated"]
    assert states(store.latest_assessment(patient.patient_id).result)[-1] != "oligoprogression"
    with store.session() as session:
        versions = session.scalars(select(StoredReport).where(StoredReport.source_id == corrected.SOPInstanceUID)
                                   .order_by(StoredReport.id)).all()
        assert [v.current for v in versions] == [False, True]
        assert session.get(Document, versions[0].document_id).body == series[-1]
    # the first version sent again is current again, and so is its assessment
    assert store.ingest(series[-1], label="sr.dcm").reports[0]["status"] == "updated"
    assert states(store.latest_assessment(patient.patient_id).result) == OLIGO_STATES


def test_bad_input_is_refused_with_its_name_and_leaves_the_store_as_it_was(store, corpus):
    store.ingest(make_series(demo_patients()[0])[0], label="good.dcm")
    before = store.counts()
    for path in ("pydicom/reportsi.dcm", "dcmjs/structured_report.dcm", "highdicom/sm_annotations.dcm"):
        with pytest.raises(adapter.InputError) as caught:
            store.ingest((corpus / path).read_bytes(), label=path)
        assert caught.value.source == path and caught.value.reason
    with pytest.raises(adapter.InputError, match="no patient id"):
        patient = demo_patients()[0]
        nameless = make_sr(patient, patient.time_points[0], 1)
        nameless.PatientID = ""
        from fixtures.generate import to_bytes

        store.ingest(to_bytes(nameless), label="nameless.dcm")
    assert store.counts() == before


def test_reports_without_an_ehr_go_to_no_outbox(database_url):  # noqa: F811
    store = Store.open(database_url)
    try:
        store.ingest(make_series(demo_patients()[1])[0], label="x.dcm")
        (drained,) = store.drain()
        assert drained.assessment_id and drained.delivery_id is None
        assert store.counts()["outbox"] == 0 and store.counts()["assessments"] == 1
    finally:
        store.close()


def test_migrations_reach_the_newest_revision_and_reopening_is_harmless(store, database_url):  # noqa: F811
    store.ingest(make_series(demo_patients()[0])[0], label="x.dcm")
    again = Store.open(database_url)
    try:
        with again.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
            assert {"documents", "reports", "assessments", "outbox", "assessment_queue"} <= \
                set(inspect(connection).get_table_names())
        assert again.counts()["documents"] == 1
    finally:
        again.close()


def test_a_lesion_first_seen_later_is_new_in_the_stored_assessment(store):
    patient = demo_patients()[0]
    series = make_series(patient)
    store.ingest(series[0], label="baseline.dcm")
    later = dataclasses.replace(patient.time_points[1], lesions=patient.time_points[1].lesions
                                + [Lesion("Lesion 9", "bone", 15.0)])
    from fixtures.generate import to_bytes

    store.ingest(to_bytes(make_sr(patient, later, 2)), label="later.dcm")
    latest = store.latest_assessment(patient.patient_id).result
    new = [p for p in latest["timepoints"][-1]["progressing"] if p["reason"] == "new"]
    assert [p["lesion"] for p in new] == ["Lesion 9"]
