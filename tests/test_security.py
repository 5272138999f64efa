"""Security of the HTTP service: every path but /health needs a token (the OpenAPI description too),
tokens are compared in constant time, and the service log holds no patient data at the default level."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from adapter.service import api_tokens
from adapter.service.config import Settings
from adapter.service.http import create_app
from fixtures.generate import demo_patients, make_series
from tests.service_support import FhirReceiver, Service, database_url, postgres_url, wait_until  # noqa: F401

RW, RO = "secret-rw-token", "secret-ro-token"
PATH_VALUES = {"patient_id": "DEMO-OLIGO-1", "delivery_id": "1"}
OPEN_PATHS = {"/health"}


@pytest.fixture
def client(tmp_path):
    settings = Settings(database=str(tmp_path / "store.sqlite3"), api_tokens=f"{RW},{RO};read")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = route.path.format(**PATH_VALUES)
            found += [(method, path) for method in sorted(route.methods)]
    return found


def test_every_path_but_health_needs_a_token(client):
    served = routes(client.app)
    # the whole surface, so that a path added later without a token check fails here
    assert {path for _, path in served} == {
        "/health", "/openapi.json", "/dicom", "/fhir", "/studies", "/$assess", "/patients/DEMO-OLIGO-1/assessment",
        "/patients/DEMO-OLIGO-1/assessment/summary", "/deliveries", "/deliveries/1/retry"}
    for method, path in served:
        if path in OPEN_PATHS:
            assert client.request(method, path).status_code == 200
            continue
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {RW}"},
                        {"Authorization": "Bearer "}, {"Authorization": RW}):
            response = client.request(method, path, headers=headers, content=b"{}")
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["issue"][0]["code"] == "login"
            assert response.headers["www-authenticate"].startswith("Bearer")
    # the interactive pages are not served at all (a browser cannot send the token)
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json", headers={"Authorization": f"Bearer {RO}"}).json()["info"]["title"] == \
        "oligo-adapter"


def test_a_read_token_cannot_write(client):
    for method, path in routes(client.app):
        if method == "POST":
            response = client.request(method, path, headers={"Authorization": f"Bearer {RO}"}, content=b"{}")
            assert response.status_code == 403, (path, response.text)


def test_tokens_are_compared_in_constant_time(monkeypatch):
    """Every configured token is compared, whole digests of one length, with hmac.compare_digest, whether
    the presented token matches the first, the last or none: no early exit, no length leak."""
    compared: list[tuple[int, int]] = []
    real = api_tokens.hmac.compare_digest

    def counting(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(api_tokens.hmac, "compare_digest", counting)
    tokens = api_tokens.parse_tokens("first,second,third;read,fourth")
    for presented, expected in (("first", "write"), ("fourth", "write"), ("third", "read"), ("x", None),
                                ("f" * 5000, None), ("", None)):
        compared.clear()
        match = api_tokens.match(tokens, presented)
        assert (match.scope if match else None) == expected
        assert compared == [(32, 32)] * 4


# --- no patient data in the log ---------------------------------------------------------------------------

SECRET_ID, SECRET_NAME, SECRET_BIRTH = "PHI-ID-7319", "Sentinelname^Phinea", "19230405"


class EchoingReceiver(FhirReceiver):
    """An EHR that refuses every Bundle with 400 and echoes the patient it was about in its answer."""

    def _post_fhir(self, headers, body):
        text = body.decode()
        echoed = ", ".join(secret for secret in (SECRET_ID, "1923-04-05") if secret in text)
        return 400, {"resourceType": "OperationOutcome",
                     "issue": [{"severity": "error", "code": "invalid", "diagnostics": f"refused: {echoed}"}]}


def test_the_service_log_holds_no_patient_data(database_url, tmp_path):  # noqa: F811
    patient = dataclasses.replace(demo_patients()[0], patient_id=SECRET_ID, name=SECRET_NAME,
                                  birth_date=SECRET_BIRTH)
    series = make_series(patient)
    with EchoingReceiver() as ehr:
        service = Service(database_url, tmp_path, ehr_base_url=ehr.base, delivery_backoff_seconds=0.05).start()
        try:
            with service.client() as client:
                for data in series:
                    assert client.post("/dicom", content=data, headers={"Content-Type": "application/dicom"}
                                       ).status_code == 201
                assert client.get(f"/patients/{SECRET_ID}/assessment").status_code == 200
                assert client.get(f"/patients/{SECRET_ID}-unknown/assessment").status_code == 404
                # a damaged copy of the patient's SR is refused: the refusal goes to the client, not the log
                assert client.post("/dicom", content=series[0][:3000], headers={"Content-Type": "application/dicom"}
                                   ).status_code == 422
                wait_until(lambda: not client.get("/deliveries?status=pending").json()["deliveries"],
                           "the refused deliveries to be marked failed")
                failed = client.get("/deliveries?status=failed").json()["deliveries"]
        finally:
            service.stop()
    log = service.output()
    assert "delivery 1 to" in log and "failed" in log  # the log did record the refusals
    assert failed and SECRET_ID in failed[0]["last_error"]  # the EHR's answer is kept for the operator, behind a token
    for secret in (SECRET_ID, "Sentinelname", "Phinea", SECRET_BIRTH, "1923-04-05"):
        assert secret not in log, f"{secret} appears in the service log"


def test_logged_failures_keep_the_code_path_and_withhold_the_message():
    from adapter.logsafe import describe_failure

    def validate_patient(name):
        raise ValueError(f"input_value={name!r} is not a valid HumanName")

    try:
        validate_patient(SECRET_NAME)
    except ValueError as exc:
        described = describe_failure(exc)
    assert described.startswith("builtins.ValueError (message withheld")
    assert "validate_patient" in described and "test_security.py" in described
    assert "Sentinelname" not in described
