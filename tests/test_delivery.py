"""Delivery to the EHR (issue 7): every new assessment reaches a FHIR server exactly once in content,
after the server was down for a while and after the service was killed while retrying; SMART Backend
Services and static bearer authentication; failures visible through the API and the CLI."""

from __future__ import annotations

import json
import signal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

import adapter
from adapter.cli import app
from adapter.service.delivery import backoff_seconds
from adapter.store import bundle_of
from fixtures.generate import demo_patients, make_series
from tests.service_support import (FhirReceiver, Service, database_url, postgres_url,  # noqa: F401 (fixtures)
                                   wait_until)

DICOM = {"Content-Type": "application/dicom"}
OLIGO = demo_patients()[0]
FAST_RETRIES = dict(delivery_backoff_seconds=0.05, delivery_backoff_max_seconds=0.2, delivery_poll_seconds=0.2,
                    delivery_lease_seconds=1)


def expected_bundles(series: list[bytes]) -> list[dict]:
    """The Bundle of each successive assessment: after the first SR, the first two, all three."""
    reports = [adapter.read_sr(data) for data in series]
    return [json.loads(json.dumps(bundle_of(adapter.assess(reports[:n])[0]))) for n in range(1, len(reports) + 1)]


def deliveries(service: Service, status: str) -> list[dict]:
    with service.client() as client:
        return client.get("/deliveries", params={"status": status}).json()["deliveries"]


def ingest(service: Service, series: list[bytes]) -> None:
    """Each SR, then its patient's assessment read (which makes it, if the worker has not yet): one
    assessment, so one delivery, per SR, as the Bundles in `expected_bundles` are."""
    with service.client() as client:
        for data in series:
            posted = client.post("/dicom", content=data, headers=DICOM)
            assert posted.status_code == 201
            assert client.get(posted.json()["patients"][0]["assessment_url"]).status_code == 200


@pytest.fixture(scope="module")
def smart_key(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("smart") / "client-key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return path, public


def test_backoff_doubles_up_to_the_ceiling():
    assert [backoff_seconds(n, 2.0, 30.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_smart_delivery_after_the_ehr_was_down(database_url, tmp_path, smart_key):  # noqa: F811
    key_file, public_key = smart_key
    series = make_series(OLIGO)
    with FhirReceiver(smart=("oligo-client", public_key)) as receiver:
        receiver.down_for = 4  # the first four POSTs get 503, then the server is up
        service = Service(database_url, tmp_path, ehr_base_url=receiver.base, ehr_auth="smart",
                          smart_token_url=receiver.token_url, smart_client_id="oligo-client",
                          smart_private_key_file=key_file, smart_key_id="test-key", **FAST_RETRIES).start()
        try:
            ingest(service, series)
            wait_until(lambda: len(deliveries(service, "delivered")) == 3, "three deliveries")
            delivered = deliveries(service, "delivered")
        finally:
            service.stop()
    assert receiver.refused == 4
    assert receiver.accepted == expected_bundles(series)  # each assessment once, in order
    assert receiver.assertion_problems == []
    assert receiver.token_requests == 1  # the access token is cached until it expires
    assert sum(d["attempts"] for d in delivered) == 3 + 4


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_delivery_survives_a_restart_in_the_middle_of_retrying(database_url, tmp_path, stop):  # noqa: F811
    series = make_series(OLIGO)
    with FhirReceiver(bearer="ehr-static-token") as receiver:
        receiver.down = True
        service = Service(database_url, tmp_path, ehr_base_url=receiver.base, ehr_auth="bearer",
                          ehr_token="ehr-static-token", **FAST_RETRIES).start()
        try:
            ingest(service, series)
            wait_until(lambda: receiver.refused >= 4, "the service to retry")
        finally:
            service.stop(stop)
        assert deliveries_in_store(database_url, "delivered") == 0
        receiver.down = False
        service.start()
        try:
            wait_until(lambda: len(deliveries(service, "delivered")) == 3, "three deliveries after the restart")
        finally:
            service.stop()
    assert receiver.accepted == expected_bundles(series)


def deliveries_in_store(database: str, status: str) -> int:
    from adapter.store import Store

    store = Store.open(database)
    try:
        return len(store.deliveries(status))
    finally:
        store.close()


def test_failed_deliveries_are_visible_in_the_api_and_the_cli_and_can_be_retried(database_url,  # noqa: F811
                                                                                  tmp_path):
    series = make_series(OLIGO)[:1]
    with FhirReceiver() as receiver:
        receiver.reject_with = 400  # the EHR refuses the Bundle: retrying would not help
        service = Service(database_url, tmp_path, ehr_base_url=receiver.base, **FAST_RETRIES).start()
        try:
            ingest(service, series)
            (failed,) = wait_until(lambda: deliveries(service, "failed"), "the delivery to fail")
            assert (failed["attempts"], failed["last_status"]) == (1, 400)
            listed = CliRunner().invoke(app, ["deliveries", "--database", database_url, "--status", "failed",
                                              "--json"])
            assert listed.exit_code == 0, listed.output
            assert [d["id"] for d in json.loads(listed.stdout)["deliveries"]] == [failed["id"]]
            text = CliRunner().invoke(app, ["deliveries", "--database", database_url, "--status", "failed"])
            assert "failed" in text.stdout and "last error: 400" in text.stdout
            assert CliRunner().invoke(app, ["deliveries", "--database", database_url, "--retry", "999"]).exit_code == 2
            receiver.reject_with = None  # the EHR was fixed; an operator sends the delivery again
            with service.client() as client:
                assert client.post("/deliveries/999/retry").status_code == 404
                assert client.post(f"/deliveries/{failed['id']}/retry").json()["status"] == "pending"
            (delivered,) = wait_until(lambda: deliveries(service, "delivered"), "the retried delivery")
        finally:
            service.stop()
    assert delivered["id"] == failed["id"] and delivered["attempts"] == 1
    assert receiver.accepted == expected_bundles(series)


def test_a_delivery_that_keeps_failing_gives_up_after_the_last_attempt(database_url, tmp_path):  # noqa: F811
    with FhirReceiver() as receiver:
        receiver.down = True
        service = Service(database_url, tmp_path, ehr_base_url=receiver.base, delivery_max_attempts=3,
                          **FAST_RETRIES).start()
        try:
            ingest(service, make_series(OLIGO)[:1])
            (failed,) = wait_until(lambda: deliveries(service, "failed"), "the delivery to give up")
        finally:
            service.stop()
    assert (failed["attempts"], failed["last_status"], receiver.refused) == (3, 503, 3)
    assert receiver.accepted == []
