"""HTTP ingest throughput (issue 9: >= 300 SRs/s on the 2-core machine): `oligo serve` (uvicorn, SQLite
store) on loopback, several clients POSTing distinct SRs to /dicom, each client one keep-alive
connection as an integration engine keeps. Two figures, each against a baseline measured in the same run:

- ingest: every POST acknowledged (201: the document durable, its patient queued), against
  `Store.ingest` in-process on the same documents;
- assessment: from the first POST until the assessment queue is empty (the worker assessed every queued
  patient; several SRs of one patient that arrived together give one assessment), against `Store.drain`
  in-process.

    python -m benchmarks.http_ingest [--patients 200] [--visits 3] [--clients 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from adapter.store import Store
from fixtures import generate as g

TOKEN = "bench-token"
TARGET = 300  # SRs/s over HTTP (issue 9)
SITES = ["liver", "liver", "lung", "lung", "lymph node", "adrenal gland", "bone", "kidney"]


def series(number: int, visits: int) -> list[bytes]:
    """One patient's 8-lesion SRs, `visits` time points (the lesions grow a little at each)."""
    patient = g.Patient(f"BENCH-{number}")
    start = dt.date(2024, 1, 10) + dt.timedelta(days=number)
    patient.time_points = [g.TimePoint(start + dt.timedelta(days=60 * visit), baseline=visit == 0, lesions=[
        g.Lesion(f"Lesion {i + 1}", site, 20.0 + i + number / 10 + visit, 12.0 + i + number / 20,
                 role="target" if i < 5 else "non-target", template=("1410", "1411", "1501")[i % 3])
        for i, site in enumerate(SITES)]) for visit in range(visits)]
    return g.make_series(patient)


def documents(patients: int, visits: int) -> list[bytes]:
    """Visit by visit: every patient's first SR, then every patient's second, ..."""
    each = [series(n, visits) for n in range(patients)]
    return [each[n][visit] for visit in range(visits) for n in range(patients)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_process(folder: Path, docs: list[bytes]) -> tuple[float, float, int]:
    """(SRs/s stored, patients/s assessed, assessments made) with the library, one thread."""
    store = Store.open(str(folder / "direct.sqlite3"))
    try:
        start = time.perf_counter()
        for number, data in enumerate(docs):
            store.ingest(data, label=f"sr-{number}", media_type="application/dicom")
        stored = time.perf_counter() - start
        start = time.perf_counter()
        made = sum(1 for a in store.drain() if a.assessment_id)
        drained = time.perf_counter() - start
    finally:
        store.close()
    return len(docs) / stored, made / drained, made


def start_service(folder: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"OLIGO_API_TOKENS": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers), "--database", str(folder / "http.sqlite3")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("the service did not start")
        time.sleep(0.1)


def over_http(folder: Path, docs: list[bytes], clients: int, workers: int) -> dict:
    server, url = start_service(folder, workers)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/dicom"}
    statuses: list[int] = []
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:  # warm up: code tables loaded
            warm = http.post("/dicom", content=series(10**6, 1)[0]).json()["patients"][0]["assessment_url"]
            http.get(warm).raise_for_status()

        def client(number: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as http:  # one keep-alive connection
                statuses.extend(http.post("/dicom", content=data).status_code for data in docs[number::clients])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        acknowledged = time.perf_counter() - start
        with httpx.Client(base_url=url, timeout=60) as http:
            while (health := http.get("/health").json())["counts"]["assessment_queue"]:  # one snapshot
                time.sleep(0.02)
        drained = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"ingest": len(docs) / acknowledged, "drained": drained, "assessments": health["counts"]["assessments"] - 1,
            "errors": sum(1 for status in statuses if status != 201)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--visits", type=int, default=3, help="SRs per patient")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="oligo serve --workers")
    args = parser.parse_args(argv)
    docs = documents(args.patients, args.visits)
    with tempfile.TemporaryDirectory() as tmp:
        direct_ingest, direct_assess, direct_made = in_process(Path(tmp), docs)
        http = over_http(Path(tmp), docs, args.clients, args.workers)
    print(f"\nHTTP ingest of {len(docs)} distinct 8-lesion SRs ({args.patients} patients x {args.visits} visits), "
          f"{args.clients} keep-alive clients, oligo serve --workers {args.workers}, SQLite")
    print(f"  in-process Store.ingest (baseline)   {direct_ingest:8.1f} SRs/s")
    print(f"  POST /dicom, all acknowledged        {http['ingest']:8.1f} SRs/s   {http['ingest'] / direct_ingest:5.2f}x"
          f"   errors {http['errors']}   target {TARGET}/s: {'met' if http['ingest'] >= TARGET else 'missed'}")
    print(f"  in-process Store.drain (baseline)    {direct_assess:8.1f} assessments/s ({direct_made} assessments)")
    rate = http["assessments"] / http["drained"]
    print(f"  queue drained {http['drained']:6.1f} s after the first POST: {rate:8.1f} assessments/s "
          f"({http['assessments']} assessments)   {rate / direct_assess:5.2f}x")


if __name__ == "__main__":
    main()
