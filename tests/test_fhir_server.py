"""The test FHIR server (tests/fhir_server: Medplum's transaction engine behind a small HTTP front) does
what a FHIR server does, so the delivery tests can rely on it: create, read, search by identifier and
_id, conditional create and update inside a transaction, conditional references, resending harmless,
history, If-Match, atomic transactions, the engine's 8-entry limit on transactions with conditional
entries, $everything and bearer authentication.

Every test names its own patient (a fresh MRN), so tests share the one server of the session."""

from __future__ import annotations

import uuid

import pytest

from tests.fhir_server_support import fhir_server, fhir_server_bearer, resource_in, search  # noqa: F401 (fixtures)

MRN = "urn:oid:2.16.840.1.113883.3.7418.1"  # a hospital's MRN system, as EHRs name theirs
LOINC = "http://loinc.org"
STRICT_ISOLATION = "Transaction requires strict isolation but has too many entries"


def new_mrn() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"


def patient(mrn: str, family: str = "Tester") -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
            "name": [{"family": family, "given": ["Pat"]}]}


def tumor_size(mrn: str, key: str, mm: float, *, subject: dict | None = None) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "identifier": [{"system": "urn:test:tumor-size", "value": key}],
            "code": {"coding": [{"system": LOINC, "code": "21889-1"}]},
            "subject": subject or {"reference": f"Patient?identifier={MRN}|{mrn}"},
            "valueQuantity": {"value": mm, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}}


def create_entry(resource: dict, identifier_system: str, key: str) -> dict:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"],
                        "ifNoneExist": f"identifier={identifier_system}|{key}"}}


def update_entry(resource: dict, identifier_system: str, key: str) -> dict:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}?identifier={identifier_system}|{key}"}}


def transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def seed_patient(client, mrn: str) -> dict:
    created = client.post("Patient", json=patient(mrn))
    assert created.status_code == 201, created.text
    return created.json()


def test_patient_created_read_and_searched_by_identifier_and_id(fhir_server):
    mrn = new_mrn()
    with fhir_server.client() as client:
        created = client.post("Patient", json=patient(mrn))
        assert created.status_code == 201
        stored = created.json()
        assert created.headers["Location"] == (f"{fhir_server.base}/Patient/{stored['id']}/_history/"
                                               f"{stored['meta']['versionId']}")
        assert created.headers["ETag"] == f'W/"{stored["meta"]["versionId"]}"'
        assert client.get(f"Patient/{stored['id']}").json() == stored
        assert search(client, "Patient", identifier=f"{MRN}|{mrn}") == [stored]
        assert search(client, "Patient", _id=stored["id"]) == [stored]
        assert search(client, "Patient", identifier=f"{MRN}|{new_mrn()}") == []
        assert client.get(f"Patient/{uuid.uuid4()}").status_code == 404


def test_server_names_what_it_creates(fhir_server):
    """A client's id on a create is not kept (the Medplum server assigns ids); meta.versionId neither."""
    with fhir_server.client() as client:
        body = patient(new_mrn()) | {"id": "client-chosen", "meta": {"versionId": "7"}}
        stored = client.post("Patient", json=body).json()
        assert stored["id"] != "client-chosen" and stored["meta"]["versionId"] != "7"


def test_conditional_create_with_if_none_exist(fhir_server):
    """POST with If-None-Exist: created once (201), then the match is returned (200), nothing new."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        headers = {"If-None-Exist": f"identifier={MRN}|{mrn}"}
        created = client.post("Patient", json=patient(mrn), headers=headers)
        again = client.post("Patient", json=patient(mrn, family="Other"), headers=headers)
        assert (created.status_code, again.status_code) == (201, 200)
        assert again.json() == created.json()
        assert len(search(client, "Patient", identifier=f"{MRN}|{mrn}")) == 1


def test_invalid_resource_refused_on_write(fhir_server):
    """The server validates what it stores against R4: an Observation without its required status."""
    with fhir_server.client() as client:
        mrn = new_mrn()
        seed_patient(client, mrn)
        body = tumor_size(mrn, "no-status", 10)
        del body["status"]
        refused = client.post("Observation", json=body)
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["details"]["text"] == "Missing required property"
        assert refused.json()["issue"][0]["expression"] == ["Observation.status"]


def test_transaction_conditional_create_and_update_resend_harmless_history(fhir_server):
    """A transaction of a conditional create and a conditional update referencing the patient
    conditionally: stored once; sent again, nothing new (the create matches, the update changes
    nothing so makes no version); with a changed value the update makes version 2 of the same
    resource, and its history holds both, newest first."""
    mrn = new_mrn()
    lesion, total = f"lesion-{mrn}", f"total-{mrn}"
    with fhir_server.client() as client:
        stored_patient = seed_patient(client, mrn)

        def send(total_mm: float) -> dict:
            response = client.post("", json=transaction(
                create_entry(tumor_size(mrn, lesion, 12), "urn:test:tumor-size", lesion),
                update_entry(tumor_size(mrn, total, total_mm), "urn:test:tumor-size", total)))
            assert response.status_code == 200, response.text
            assert response.json()["type"] == "transaction-response"
            return response.json()

        first = send(30)
        assert [e["response"]["status"] for e in first["entry"]] == ["201", "201"]
        again = send(30)
        assert [e["response"]["status"] for e in again["entry"]] == ["200", "200"]
        assert [e["response"]["location"] for e in again["entry"]] == [e["response"]["location"]
                                                                       for e in first["entry"]]
        changed = send(31)
        observations = search(client, "Observation", subject=f"Patient/{stored_patient['id']}")
        assert sorted(o["identifier"][0]["value"] for o in observations) == sorted([lesion, total])
        assert all(o["subject"]["reference"] == f"Patient/{stored_patient['id']}" for o in observations)

        total_id = changed["entry"][1]["response"]["location"].split("/")[1]
        history = client.get(f"Observation/{total_id}/_history").json()
        assert history["type"] == "history"
        assert [v["valueQuantity"]["value"] for v in (e["resource"] for e in history["entry"])] == [31, 30]
        assert client.get(f"Observation/{total_id}/_history").json() == history  # reading it twice: same order
        first_version = history["entry"][1]["resource"]["meta"]["versionId"]
        assert client.get(f"Observation/{total_id}/_history/{first_version}").json()["valueQuantity"]["value"] == 30


def test_conditional_reference_resolves_to_the_patient(fhir_server):
    """`Patient?identifier=SYSTEM|VALUE` in a reference becomes `Patient/<id>` of the one match, as
    the Medplum server does (replaceConditionalReferences); the original identifier is not kept."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        stored_patient = seed_patient(client, mrn)
        response = client.post("", json=transaction(
            create_entry(tumor_size(mrn, mrn, 12), "urn:test:tumor-size", mrn)))
        observation = response.json()["entry"][0]["resource"]
        assert observation["subject"]["reference"] == f"Patient/{stored_patient['id']}"
        assert client.get(f"Patient/{stored_patient['id']}/$everything").json()["total"] == 2


@pytest.mark.parametrize("patients", [0, 2], ids=["no-match", "two-matches"])
def test_unresolvable_conditional_reference_refuses_the_transaction_and_writes_nothing(fhir_server, patients):
    mrn = new_mrn()
    with fhir_server.client() as client:
        for _ in range(patients):
            seed_patient(client, mrn)
        refused = client.post("", json=transaction(
            create_entry({"resourceType": "BodyStructure", "identifier": [{"system": "urn:test:tumor", "value": mrn}],
                          "patient": {"reference": f"urn:uuid:{uuid.uuid4()}"}}, "urn:test:tumor", mrn),
            create_entry(tumor_size(mrn, mrn, 12), "urn:test:tumor-size", mrn)))
        assert refused.status_code == 400
        found = "matched multiple" if patients else "did not match any"
        assert refused.json()["issue"][0]["details"]["text"] == (
            f"Conditional reference 'Patient?identifier={MRN}|{mrn}' {found} resources")
        assert search(client, "Observation", identifier=f"urn:test:tumor-size|{mrn}") == []
        assert search(client, "BodyStructure", identifier=f"urn:test:tumor|{mrn}") == []


def test_transaction_is_atomic(fhir_server):
    """An entry that fails while the engine writes (an Observation without status, refused by
    validation) rolls back the entries it already wrote (the BodyStructure before it)."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        stored_patient = seed_patient(client, mrn)
        invalid = tumor_size(mrn, mrn, 12)
        del invalid["status"]
        refused = client.post("", json=transaction(
            create_entry({"resourceType": "BodyStructure", "identifier": [{"system": "urn:test:tumor", "value": mrn}],
                          "patient": {"reference": f"Patient/{stored_patient['id']}"}}, "urn:test:tumor", mrn),
            create_entry(invalid, "urn:test:tumor-size", mrn)))
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["expression"] == ["Observation.status"]
        assert search(client, "BodyStructure", identifier=f"urn:test:tumor|{mrn}") == []


def test_conditional_update_matching_several_refuses_the_transaction(fhir_server):
    """A conditional update's search URL must match at most one resource (none: it creates)."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        seed_patient(client, mrn)
        seed_patient(client, mrn)
        refused = client.post("", json=transaction(update_entry(patient(mrn, family="Changed"), MRN, mrn)))
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["details"]["text"] == "Conditional PUT matched multiple resources"
        assert {p["name"][0]["family"] for p in search(client, "Patient", identifier=f"{MRN}|{mrn}")} == {"Tester"}


@pytest.mark.parametrize(("entries", "conditional", "accepted"), [
    (8, True, True),     # at the limit
    (9, True, False),    # one over, with conditional creates: refused whole
    (9, False, True),    # no conditional entry: no strict isolation, no limit
])
def test_strict_isolation_entry_limit(fhir_server, entries, conditional, accepted):
    """Medplum's batch.ts: a transaction with a conditional create (ifNoneExist), update or delete
    (URL with `?`) needs strict (serializable) isolation and may then hold at most 8 entries."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        seed_patient(client, mrn)
        bodies = [tumor_size(mrn, f"{mrn}-{i}", 10 + i) for i in range(entries)]
        bundle = transaction(*(
            create_entry(body, "urn:test:tumor-size", f"{mrn}-{i}") if conditional
            else {"resource": body, "request": {"method": "POST", "url": "Observation"}}
            for i, body in enumerate(bodies)))
        response = client.post("", json=bundle)
        if accepted:
            assert response.status_code == 200, response.text
            assert len(search(client, "Observation", identifier=f"urn:test:tumor-size|{mrn}-0")) == 1
        else:
            assert response.status_code == 400
            assert response.json()["issue"][0]["details"]["text"] == STRICT_ISOLATION
            assert search(client, "Observation", identifier=f"urn:test:tumor-size|{mrn}-0") == []


def test_if_match(fhir_server):
    """Optimistic locking: If-Match with the current version (W/"versionId") updates; a stale one is
    412; a bare version id without quotes is ignored by the engine (it reads only what is in quotes)."""
    with fhir_server.client() as client:
        stored = seed_patient(client, new_mrn())
        first = stored["meta"]["versionId"]
        updated = client.put(f"Patient/{stored['id']}", json=stored | {"gender": "female"},
                             headers={"If-Match": f'W/"{first}"'})
        assert updated.status_code == 200
        stale = client.put(f"Patient/{stored['id']}", json=stored | {"gender": "male"},
                           headers={"If-Match": f'W/"{first}"'})
        assert stale.status_code == 412
        assert client.get(f"Patient/{stored['id']}").json()["gender"] == "female"
        unquoted = client.put(f"Patient/{stored['id']}", json=stored | {"gender": "other"},
                              headers={"If-Match": first})
        assert unquoted.status_code == 200
        assert client.get(f"Patient/{stored['id']}").json()["gender"] == "other"


def test_if_match_in_a_transaction_entry(fhir_server):
    """Bundle.entry.request.ifMatch on a conditional update: the engine resolves the search URL to
    Type/id first, then updates with the If-Match check; a stale version refuses the transaction."""
    mrn = new_mrn()
    with fhir_server.client() as client:
        stored = seed_patient(client, mrn)
        stale_entry = update_entry(patient(mrn, family="Stale"), MRN, mrn)
        stale_entry["request"]["ifMatch"] = 'W/"not-the-version"'
        assert client.post("", json=transaction(stale_entry)).status_code == 412
        current_entry = update_entry(patient(mrn, family="Current"), MRN, mrn)
        current_entry["request"]["ifMatch"] = f'W/"{stored["meta"]["versionId"]}"'
        response = client.post("", json=transaction(current_entry))
        assert response.status_code == 200, response.text
        assert client.get(f"Patient/{stored['id']}").json()["name"][0]["family"] == "Current"


def test_bearer_token(fhir_server_bearer):
    with fhir_server_bearer.client(token="") as client:
        assert client.get("metadata").status_code == 401
        assert client.post("Patient", json=patient(new_mrn())).status_code == 401
    with fhir_server_bearer.client(token="wrong") as client:
        assert client.get("metadata").status_code == 401
    with fhir_server_bearer.client() as client:
        assert client.get("metadata").json()["fhirVersion"] == "4.0.1"
        assert client.post("Patient", json=patient(new_mrn())).status_code == 201


def test_bad_requests(fhir_server):
    with fhir_server.client() as client:
        not_json = client.post("Patient", content=b"{not json")
        assert not_json.status_code == 400
        assert not_json.json()["issue"][0]["details"]["text"].startswith("Request body is not JSON")
        assert client.post("", json={"resourceType": "Bundle", "type": "collection", "entry": []}).status_code == 400
        assert client.get("NoSuchType").status_code == 400
    outside = fhir_server.client().get(fhir_server.base.rsplit("/", 1)[0] + "/elsewhere")
    assert outside.status_code == 404
