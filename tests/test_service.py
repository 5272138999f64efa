"""The HTTP service (issue 7) run for real: `oligo serve` (uvicorn on loopback) on SQLite and PostgreSQL.
Every error status is exercised; resending changes nothing; $assess stores nothing."""

from __future__ import annotations

import io
import json

import httpx
import pydicom
import pytest

import adapter
from adapter.store import bundle_of
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients, make_series
from tests.service_support import (READ_TOKEN, TOKEN, WRITE, Service, database_url,  # noqa: F401 (fixtures)
                                   postgres_url)

DICOM = {"Content-Type": "application/dicom"}
FHIR = {"Content-Type": "application/fhir+json"}
OLIGO, POLY = demo_patients()


def stow(parts: list[bytes], boundary: str = "oligo-boundary") -> tuple[bytes, dict]:
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
                    for part in parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}


def issue(response: httpx.Response) -> dict:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


@pytest.fixture
def service(database_url, tmp_path):  # noqa: F811
    running = Service(database_url, tmp_path, max_body_bytes=400_000).start()
    yield running
    running.stop()


def test_ingest_serve_and_resend(database_url, tmp_path):  # noqa: F811
    series = make_series(OLIGO)
    # the worker waits an hour: only reading the assessment (read your writes) makes it here
    service = Service(database_url, tmp_path, assessment_delay_seconds=3600, assessment_max_delay_seconds=3600).start()
    try:
        with service.client() as client:
            first = client.post("/dicom", content=series[0], headers=DICOM)
            assert first.status_code == 201 and first.json()["status"] == "stored"
            assert first.json()["assessment"] == "queued"
            body, headers = stow(series[1:])
            stored = client.post("/studies", content=body, headers=headers)
            assert stored.status_code == 200
            assert [r["status"] for r in stored.json()["results"]] == ["stored", "stored"]
            queued = client.get("/health").json()
            served = client.get(f"/patients/{OLIGO.patient_id}/assessment")
            health = client.get("/health").json()["counts"]
            # resending every SR, one by one and as one STOW request, changes nothing
            for data in series:
                again = client.post("/dicom", content=data, headers=DICOM)
                assert again.status_code == 200 and again.json()["status"] == "unchanged"
                assert again.json()["assessment"] == "unchanged"
            assert client.post("/studies", content=body, headers=headers).json()["results"][0]["status"] == \
                "unchanged"
            assert client.get("/health").json()["counts"] == health
            assert client.get(f"/patients/{OLIGO.patient_id}/assessment").json() == served.json()
    finally:
        service.stop()
    (expected,) = adapter.assess(adapter.read_sr(d) for d in series)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/fhir+json")
    assert served.json() == json.loads(json.dumps(bundle_of(expected)))
    assert queued["counts"]["assessments"] == 0 and queued["assessment_queue"] == {"waiting": 1, "failing": 0}
    # three SRs of one patient, none assessed before the read: one assessment of all three
    assert health == {"documents": 3, "reports": 3, "assessments": 1, "outbox": 0, "assessment_queue": 0}


def test_dicom_json_and_fhir_inputs(service):
    dicom_json = json.dumps(pydicom.dcmread(io.BytesIO(make_series(POLY)[0])).to_json_dict()).encode()
    with service.client() as client:
        response = client.post("/dicom", content=dicom_json, headers={"Content-Type": "application/dicom+json"})
        assert response.status_code == 201
        for bundle in make_fhir_series(OLIGO, shapes=("ig-r5",)):
            assert client.post("/fhir", content=json.dumps(bundle), headers=FHIR).status_code == 201
        summary = client.get(f"/patients/{OLIGO.patient_id}/assessment/summary").json()
        poly = client.get(f"/patients/{POLY.patient_id}/assessment/summary").json()
    assert [tp["state"] for tp in summary["patients"][0]["timepoints"]] == [
        "baseline", "no-progression", "oligoprogression"]
    assert [tp["state"] for tp in poly["patients"][0]["timepoints"]] == ["baseline"]


def test_assess_is_stateless(service):
    series = make_series(POLY)
    body, headers = stow(series)
    with service.client() as client:
        before = client.get("/health").json()["counts"]
        response = client.post("/$assess", content=body, headers=headers)
        single = client.post("/$assess", content=series[0], headers=DICOM)
        after = client.get("/health").json()["counts"]
        missing = client.get(f"/patients/{POLY.patient_id}/assessment")
    (expected,) = adapter.assess(adapter.read_sr(d) for d in series)
    assert response.status_code == 200 and response.json() == json.loads(json.dumps(bundle_of(expected)))
    assert [tp.state for tp in expected.timepoints] == ["baseline", "no-progression", "polyprogression"]
    assert single.status_code == 200 and single.json()["resourceType"] == "Bundle"
    assert before == after == {"documents": 0, "reports": 0, "assessments": 0, "outbox": 0, "assessment_queue": 0}
    assert missing.status_code == 404


def test_every_error_status_is_an_operation_outcome(service, corpus):
    sr = make_series(OLIGO)[0]
    with service.client(headers=None) as anonymous, service.client() as client, \
            service.client({"Authorization": f"Bearer {READ_TOKEN}"}) as reader:
        assert anonymous.get("/health").status_code == 200  # open
        assert anonymous.get("/openapi.json").status_code == 401  # the description needs a token too
        assert reader.get("/openapi.json").json()["paths"].keys() >= {
            "/dicom", "/studies", "/fhir", "/$assess", "/patients/{patient_id}/assessment", "/health"}
        # 401: no token, a wrong token
        missing = anonymous.post("/dicom", content=sr, headers=DICOM)
        assert missing.status_code == 401 and issue(missing)["code"] == "login"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = anonymous.post("/dicom", content=sr, headers=DICOM | {"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        assert anonymous.get(f"/patients/{OLIGO.patient_id}/assessment").status_code == 401
        # 403: a read-only token may read but not write
        forbidden = reader.post("/dicom", content=sr, headers=DICOM)
        assert forbidden.status_code == 403 and issue(forbidden)["code"] == "forbidden"
        assert reader.get("/deliveries").status_code == 200
        # 415: a media type the path does not take
        unsupported = client.post("/dicom", content=sr, headers={"Content-Type": "text/plain"})
        assert unsupported.status_code == 415 and "text/plain" in issue(unsupported)["diagnostics"]
        assert client.post("/fhir", content=sr, headers=DICOM).status_code == 415
        assert client.post("/studies", content=sr, headers=DICOM).status_code == 415
        # 400: malformed JSON, a multipart body without boundary, an empty body, an unknown preset
        broken = client.post("/fhir", content=b'{"resourceType": "Bundle",', headers=FHIR)
        assert broken.status_code == 400 and "not valid JSON" in issue(broken)["diagnostics"]
        no_boundary = client.post("/studies", content=b"--x\r\n\r\n--x--", headers={
            "Content-Type": 'multipart/related; type="application/dicom"'})
        assert no_boundary.status_code == 400
        assert client.post("/dicom", content=b"", headers=DICOM).status_code == 400
        assert client.post("/$assess?preset=nonsense", content=sr, headers=DICOM).status_code == 400
        # 413: larger than max_body_bytes (400 000 here)
        too_big = client.post("/dicom", content=sr + b"\0" * 400_000, headers=DICOM)
        assert too_big.status_code == 413 and issue(too_big)["code"] == "too-costly"
        # 422: well-formed requests whose documents cannot be used, each named with its reason
        text_sr = client.post("/dicom", content=(corpus / "pydicom/reportsi.dcm").read_bytes(), headers=DICOM)
        assert text_sr.status_code == 422 and issue(text_sr)["diagnostics"].startswith("/dicom body: ")
        hl7 = client.post("/dicom", content=(corpus / "hl7-dicom-sr/Example-MeasurementReport.json").read_bytes(),
                          headers={"Content-Type": "application/dicom+json"})
        assert hl7.status_code == 201  # invalid DICOM JSON (AccessionNumber not a list), read leniently
        status = client.post("/fhir", content=(corpus / "mcode-extraction-framework/disease-status-resource.json")
                             .read_bytes(), headers=FHIR)
        assert status.status_code == 422 and issue(status)["code"] == "processing"
        body, headers = stow([(corpus / "pydicom/test-SR.dcm").read_bytes()])
        all_bad = client.post("/studies", content=body, headers=headers)
        assert all_bad.status_code == 422 and "part 1" in issue(all_bad)["diagnostics"]
        two = client.post("/$assess", content=stow(make_series(OLIGO)[:1] + make_series(POLY)[:1])[0],
                          headers=headers)
        assert two.status_code == 422 and "exactly one patient" in issue(two)["diagnostics"]
        # 404: unknown patient, unknown path
        unknown = client.get("/patients/NOBODY/assessment")
        assert unknown.status_code == 404 and issue(unknown)["code"] == "not-found"
        assert client.get("/nowhere").status_code == 404
        counts = client.get("/health").json()["counts"]
    assert counts["documents"] == 1  # the HL7 example only: nothing refused was stored


def test_partly_bad_stow_stores_the_good_parts(service, corpus):
    good = make_series(POLY)[0]
    body, headers = stow([good, (corpus / "pydicom/reportsi.dcm").read_bytes()])
    with service.client() as client:
        response = client.post("/studies", content=body, headers=headers)
    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["stored"]
    assert [r["input"] for r in response.json()["rejected"]] == ["/studies part 2"]


def test_stow_answers_in_dicom_json_when_asked(service, corpus):
    good = make_series(POLY)[0]
    body, headers = stow([good, (corpus / "pydicom/reportsi.dcm").read_bytes()])
    with service.client() as client:
        response = client.post("/studies", content=body, headers=headers | {"Accept": "application/dicom+json"})
    assert response.status_code == 202 and response.headers["content-type"] == "application/dicom+json"
    dataset = pydicom.Dataset.from_json(response.json())
    (stored,) = dataset.ReferencedSOPSequence
    assert stored.ReferencedSOPInstanceUID == adapter.read_sr(good).source_id
    assert stored.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert [item.FailureReason for item in dataset.FailedSOPSequence] == [0xC000]
