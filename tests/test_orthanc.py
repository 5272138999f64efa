"""The Orthanc integration (issue 8) run for real: an Orthanc of the test's own, with the shipped Python
plugin (adapter/orthanc/forward_sr.py), receives SRs through its REST API and the report appears in
oligo-adapter's HTTP service (`oligo serve`, reached through STOW-RS). Instances that are not SRs stay
in Orthanc; an SR the adapter cannot use is refused once, with the reason in Orthanc's log."""

from __future__ import annotations

import json
import os

import httpx
import pytest

import adapter
from adapter.orthanc import plugin_script
from adapter.orthanc.forward_sr import (REFUSED, RETRY, SENT, SR_STORAGE_CLASSES, backoff, outcome_of,
                                        settings_from, stow_request)
from adapter.service.dimse import SR_STORAGE_CLASSES as LISTENER_CLASSES
from adapter.sources.dicom_sr import MEASUREMENT_SR_CLASSES
from adapter.store import bundle_of
from fixtures.generate import demo_patients, make_series
from tests.dicom_support import ORTHANC_PLUGIN_PATHS, ListenerProcess, OrthancProcess, latest
from tests.service_support import TOKEN, Service, wait_until

OLIGO, POLY = demo_patients()


def python_plugin() -> str:
    found = next((path for path in ORTHANC_PLUGIN_PATHS if os.path.exists(path)), None)
    if found is None:
        pytest.fail("the Orthanc Python plugin is not installed; run scripts/ensure-dicom-tools.sh (make test "
                    "does) to install the Debian package orthanc-python")
    return found


def orthanc_with_plugin(work, adapter_url: str, **oligo) -> OrthancProcess:
    return OrthancProcess(work, Plugins=[python_plugin()], PythonScript=str(plugin_script()), PythonVerbose=False,
                          OligoAdapter={"Url": adapter_url, "Token": TOKEN, "Backoff": 0.1, "BackoffMax": 0.5} | oligo)


def summary(service: Service, patient_id: str) -> dict | None:
    with service.client() as client:
        response = client.get(f"/patients/{patient_id}/assessment/summary")
    return response.json() if response.status_code == 200 else None


def test_srs_stored_in_orthanc_reach_the_adapter(tmp_path, corpus):
    service = Service(str(tmp_path / "store.sqlite3"), tmp_path)
    # Orthanc starts first and receives SRs while the adapter is still down: the plugin keeps trying
    orthanc = orthanc_with_plugin(tmp_path / "orthanc", service.url).start()
    try:
        series = make_series(OLIGO)
        orthanc.upload((corpus / "highdicom/sm_annotations.dcm").read_bytes())  # not an SR: stays in Orthanc
        orthanc.upload(series[0])
        wait_until(lambda: "oligo: instance" in orthanc.output() and "trying again" in orthanc.output(),
                   "the plugin to find the adapter down and try again")
        service.start()
        for data in series[1:]:
            orthanc.upload(data)
        done = wait_until(lambda: (s := summary(service, OLIGO.patient_id)) and len(s["patients"][0]["timepoints"]) == 3
                          and s, "the assessment of the three SRs in the adapter")
        assert [tp["state"] for tp in done["patients"][0]["timepoints"]] == [
            "baseline", "no-progression", "oligoprogression"]
        (expected,) = adapter.assess(adapter.read_sr(data) for data in series)
        with service.client() as client:
            bundle = client.get(f"/patients/{OLIGO.patient_id}/assessment").json()
            counts = client.get("/health").json()["counts"]
        assert bundle == json.loads(json.dumps(bundle_of(expected)))
        assert counts["documents"] == 3  # the microscopy annotations were never sent

        # an SR the adapter cannot use (not TID 1500): refused once, the reason in Orthanc's log
        refused = orthanc.upload((corpus / "pydicom/test-SR.dcm").read_bytes())
        wait_until(lambda: f"oligo: instance {refused['ID']} refused by the adapter (422)" in orthanc.output(),
                   "the refusal in Orthanc's log")
        assert "has no TID 1500 Imaging Measurement Report" in orthanc.output()

        # POST /oligo/forward queues a whole study again; resending changes nothing
        again = orthanc.upload(series[2])  # already stored: Orthanc does not announce it as new
        sent = f"oligo: instance {again['ID']} sent"
        assert again["Status"] == "AlreadyStored" and orthanc.output().count(sent) == 1
        queued = httpx.post(f"{orthanc.url}/oligo/forward", json=[again["ParentStudy"]], timeout=30)
        assert queued.status_code == 200 and queued.json() == {"queued": 1}
        wait_until(lambda: orthanc.output().count(sent) == 2, "the study sent again")
        with service.client() as client:
            assert client.get("/health").json()["counts"] == counts
        assert httpx.post(f"{orthanc.url}/oligo/forward", content=b"{", timeout=30).status_code == 400
    finally:
        orthanc.stop()
        service.stop()


ROUTE_SRS = """function OnStoredInstance(instanceId, tags, metadata, origin)
  if tags["Modality"] == "SR" then
    SendToModality(instanceId, "oligo")
  end
end
"""


def test_orthanc_auto_routing_to_the_listener(tmp_path):
    """The README's alternative without the Python plugin: a Lua script routes SRs to `oligo listen`;
    Orthanc is then the C-STORE SCU (calling AE ORTHANC)."""
    listener = ListenerProcess(str(tmp_path / "store.sqlite3"), tmp_path, "--allow-ae", "ORTHANC",
                               "--allow-ae", "STORESCU").start()
    script = tmp_path / "route.lua"
    script.write_text(ROUTE_SRS)
    orthanc = OrthancProcess(tmp_path / "orthanc", LuaScripts=[str(script)],
                             DicomModalities={"oligo": ["OLIGO", "127.0.0.1", listener.port]}).start()
    try:
        series = make_series(POLY)
        for data in series:
            orthanc.upload(data)
        stored = wait_until(lambda: (a := latest(listener.database, POLY.patient_id)) and
                            len(a.result["timepoints"]) == 3 and a, "the three SRs routed to the listener")
        assert [tp["state"] for tp in stored.result["timepoints"]] == ["baseline", "no-progression", "polyprogression"]
        (expected,) = adapter.assess(adapter.read_sr(data) for data in series)
        assert stored.bundle == json.loads(json.dumps(bundle_of(expected)))
        assert "C-STORE from ORTHANC" in listener.output()
    finally:
        orthanc.stop()
        assert listener.stop() == 0, listener.output()


def test_plugin_and_listener_take_the_sr_classes_the_reader_takes():
    assert SR_STORAGE_CLASSES == set(LISTENER_CLASSES) == set(MEASUREMENT_SR_CLASSES)


def test_plugin_settings_requests_and_outcomes():
    settings = settings_from(json.dumps({"OligoAdapter": {"Url": "http://adapter:8080/", "Token": "t", "Backoff": 1}}))
    assert settings["Url"] == "http://adapter:8080" and settings["Backoff"] == 1.0 and settings["MaxAttempts"] == 20
    with pytest.raises(ValueError, match="unknown setting"):
        settings_from(json.dumps({"OligoAdapter": {"URL": "x"}}))
    body, content_type = stow_request(b"DICM-bytes", boundary="b1")
    assert content_type == 'multipart/related; type="application/dicom"; boundary=b1'
    assert body == b"--b1\r\nContent-Type: application/dicom\r\n\r\nDICM-bytes\r\n--b1--\r\n"
    assert [outcome_of(s) for s in (200, 202, 401, 409, 413, 422, 429, 503, None)] == [
        SENT, SENT, RETRY, REFUSED, REFUSED, REFUSED, RETRY, RETRY, RETRY]
    assert [backoff(n, 2.0, 10.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
