"""HTTP ingest throughput: `oligo serve` (uvicorn, SQLite store) on loopback, several concurrent clients
POSTing distinct SRs to /dicom; baseline in the same run: the same documents ingested in-process.

    python -m benchmarks.http_ingest [SRS] [CLIENTS]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from adapter.store import Store
from benchmarks.sr_read import eight_lesion_sr

TOKEN = "bench-token"


def documents(count: int) -> list[bytes]:
    return [eight_lesion_sr(n) for n in range(count)]  # one SR per patient: no patient is reassessed twice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_process(folder: Path, docs: list[bytes]) -> float:
    store = Store.open(str(folder / "direct.sqlite3"))
    start = time.perf_counter()
    for number, data in enumerate(docs):
        store.ingest(data, label=f"sr-{number}", media_type="application/dicom")
    elapsed = time.perf_counter() - start
    store.close()
    return len(docs) / elapsed


def over_http(folder: Path, docs: list[bytes], clients: int) -> tuple[float, int]:
    port = free_port()
    env = os.environ | {"OLIGO_API_TOKENS": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--database", str(folder / "http.sqlite3")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/dicom"}
        errors = 0

        def post(data: bytes) -> int:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                return client.post("/dicom", content=data).status_code

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(post, docs))
        elapsed = time.perf_counter() - start
        errors = sum(1 for status in statuses if status not in (200, 201))
        return len(docs) / elapsed, errors
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    docs = documents(count)
    with tempfile.TemporaryDirectory() as tmp:
        direct = in_process(Path(tmp), docs)
        http, errors = over_http(Path(tmp), docs, clients)
    print(f"\nIngest of {count} distinct 8-lesion SRs (each a new patient: stored, assessed, Bundle made)")
    print(f"  in-process Store.ingest (baseline)   {direct:8.1f} SRs/s")
    print(f"  HTTP POST /dicom, {clients} clients       {http:8.1f} SRs/s   {http / direct:5.2f}x   errors {errors}"
          f"   target 300/s: {'met' if http >= 300 else 'missed'}")


if __name__ == "__main__":
    main()
