"""Fuzzing the HTTP service in-process: damaged SRs, FHIR and multipart bodies under right and wrong media
types, to every POST path. Every answer is a FHIR OperationOutcome or a result with a 2xx/4xx status;
never a 500, never a traceback."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from adapter.service.config import Settings
from adapter.service.http import create_app
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients, make_series
from tests.fuzz_support import fuzz_settings

TOKEN = "fuzz-token"
OLIGO = demo_patients()[0]
SR = make_series(OLIGO)[0]
FHIR = json.dumps(make_fhir_series(OLIGO, shapes=("mcode-r4",))[0]).encode()
PATHS = ["/dicom", "/fhir", "/studies", "/$assess"]
TYPES = ["application/dicom", "application/dicom+json", "application/fhir+json", "application/fhir+ndjson",
         'multipart/related; type="application/dicom"; boundary=b', "multipart/related; boundary=b",
         'multipart/related; type="text/plain"; boundary=b', "text/plain", "application/json", ""]
EXPECTED = {200, 201, 202, 400, 408, 413, 415, 422}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    database = tmp_path_factory.mktemp("fuzz-http") / "store.sqlite3"
    settings = Settings(database=str(database), api_tokens=TOKEN, max_body_bytes=200_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@st.composite
def bodies(draw) -> bytes:
    data = bytearray(draw(st.sampled_from([SR, FHIR, b"", b"{}", b"[]", b"--b--", b"\x00" * 300_000])))
    for _ in range(draw(st.integers(0, 6))):
        if data:
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
    if data and draw(st.booleans()):
        del data[draw(st.integers(0, len(data) - 1)):]
    if draw(st.booleans()):  # wrapped as one part of multipart/related
        data = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + bytes(data) + b"\r\n--b--\r\n"
    return bytes(data)


def test_damaged_bodies_to_every_path_are_answered_with_a_status_and_a_reason(client):
    statuses: set[int] = set()

    @fuzz_settings(200)
    @given(st.sampled_from(PATHS), st.sampled_from(TYPES), bodies())
    def run(path, content_type, body):
        headers = {"Authorization": f"Bearer {TOKEN}"} | ({"Content-Type": content_type} if content_type else {})
        response = client.post(path, content=body, headers=headers)
        assert response.status_code in EXPECTED, (path, content_type, response.status_code, response.text[:300])
        statuses.add(response.status_code)
        answer = response.json()
        if response.status_code >= 400 or answer.get("resourceType") == "OperationOutcome":
            assert answer["resourceType"] == "OperationOutcome"
            assert all(issue.get("diagnostics") for issue in answer["issue"])

    run()
    # the inputs reached every kind of answer: stored, refused as unusable, wrong type, too large, malformed
    assert {201, 422, 415, 413, 400} <= statuses, statuses
