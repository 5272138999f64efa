"""Several clients sending one patient's SRs at once, to two service processes sharing one store, end
in the same assessment as sending them one after the other (issue 7)."""

from __future__ import annotations

import json
import random
import threading

import adapter
from adapter.store import Store
from fixtures.generate import demo_patients, make_series
from tests.service_support import Service, database_url, postgres_url  # noqa: F401 (fixtures)

DICOM = {"Content-Type": "application/dicom"}
CLIENTS = 4


def test_concurrent_ingestion_equals_sequential(database_url, tmp_path):  # noqa: F811
    patients = demo_patients()
    documents = [data for patient in patients for data in make_series(patient)]
    services = [Service(database_url, tmp_path).start(), Service(database_url, tmp_path).start()]
    statuses: list[int] = []
    start = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        order = documents[:]
        random.Random(number).shuffle(order)  # every client sends everything, each in its own order
        start.wait()
        for index, data in enumerate(order):
            with services[(number + index) % len(services)].client() as http:
                statuses.append(http.post("/dicom", content=data, headers=DICOM).status_code)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with services[0].client() as http:
            concurrent = {p.patient_id: http.get(f"/patients/{p.patient_id}/assessment/summary").json()["patients"][0]
                          for p in patients}
            counts = http.get("/health").json()["counts"]
    finally:
        for service in services:
            service.stop()

    assert sorted(set(statuses)) == [200, 201] and statuses.count(201) == len(documents)
    assert counts["documents"] == counts["reports"] == len(documents)
    sequential_store = Store.open(tmp_path / "sequential.sqlite3")
    try:
        for data in documents:
            sequential_store.ingest(data, label="sequential")
        sequential = {p.patient_id: sequential_store.latest_assessment(p.patient_id).result for p in patients}
    finally:
        sequential_store.close()
    library = {r.patient_id: json.loads(json.dumps(r.to_dict()))
               for r in adapter.assess(adapter.read_sr(d) for d in documents)}
    assert concurrent == sequential == library
    assert [tp["state"] for tp in concurrent["DEMO-OLIGO-1"]["timepoints"]][-1] == "oligoprogression"
