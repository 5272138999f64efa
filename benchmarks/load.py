"""The loopback load run: `oligo serve` on 127.0.0.1 and several concurrent clients sending a bounded
number of mixed requests; prints the error count and latency percentiles per kind of request.

    python -m benchmarks.load --requests 10000 --clients 8 --database sqlite|postgresql

The mix, per client, in turn: store an SR (new patients, then resends that change nothing), read a
patient's assessment Bundle, read its summary, /health, a stateless $assess of one SR, FHIR JSON.
Bounded in count (--requests) and time (--seconds: clients stop sending when it has passed; the run
reports how many requests were sent). Loopback only; the database is made for the run and dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients, make_series

REPO = Path(__file__).resolve().parents[1]
TOKEN = "load-test-token"
POSTGRES_ADMIN_URL = os.environ.get("OLIGO_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


def patients(count: int):
    base = demo_patients()
    return [dataclasses.replace(base[n % 2], patient_id=f"LOAD-{n:03d}") for n in range(count)]


def seed(url: str, patient_count: int) -> None:
    """Each patient's baseline SR stored before the clock starts, so that a read never races the first
    store of its patient (a 404 then would be the benchmark's ordering, not the service's error)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        for person in patients(patient_count):
            client.post("/dicom", content=make_series(person)[0],
                        headers={"Content-Type": "application/dicom"}).raise_for_status()


def workload(patient_count: int):
    """(kind, method, path, body, content type) tuples the clients cycle through."""
    people = patients(patient_count)
    srs = {p.patient_id: make_series(p) for p in people}
    fhir = make_fhir_series(people[0], shapes=("mcode-r4",))[0]
    fhir_body = json.dumps(fhir).encode()
    requests = []
    for person in people:
        for data in srs[person.patient_id]:
            requests.append(("POST /dicom", "POST", "/dicom", data, "application/dicom"))
        requests.append(("GET assessment", "GET", f"/patients/{person.patient_id}/assessment", None, None))
        requests.append(("GET summary", "GET", f"/patients/{person.patient_id}/assessment/summary", None, None))
        requests.append(("GET /health", "GET", "/health", None, None))
        requests.append(("POST $assess", "POST", "/$assess", srs[person.patient_id][0], "application/dicom"))
        requests.append(("POST /fhir", "POST", "/fhir", fhir_body, "application/fhir+json"))
    return requests


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(database: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"OLIGO_API_TOKENS": TOKEN}
    env.pop("OLIGO_CONFIG", None)
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--database", database], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the service did not answer /health within 60 s")


def run(url: str, requests: list, total: int, clients: int, seconds: float) -> dict:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    counter = iter(range(total))
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client_loop() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
            while time.monotonic() < stop_at:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                kind, method, path, body, content_type = requests[number % len(requests)]
                headers = {"Content-Type": content_type} if content_type else {}
                started = time.perf_counter()
                try:
                    response = client.request(method, path, content=body, headers=headers)
                    failed = None if response.status_code < 400 else f"{kind}: {response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    failed = f"{kind}: {exc.__class__.__name__}: {exc}"
                elapsed = time.perf_counter() - started
                with lock:
                    latencies[kind].append(elapsed)
                    if failed:
                        errors.append(failed)

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "errors": errors, "wall_seconds": time.monotonic() - started}


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    return {"count": len(ordered), "p50_ms": ms(cut[49]), "p95_ms": ms(cut[94]), "p99_ms": ms(cut[98]),
            "max_ms": ms(ordered[-1])}


def summary(result: dict) -> dict:
    everything = [v for values in result["latencies"].values() for v in values]
    sent = len(everything)
    return {"requests": sent, "errors": len(result["errors"]), "wall_seconds": round(result["wall_seconds"], 1),
            "requests_per_second": round(sent / result["wall_seconds"], 1), "all": percentiles(everything),
            "by_kind": {kind: percentiles(values) for kind, values in sorted(result["latencies"].items())},
            "first_errors": result["errors"][:5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1800, help="stop sending after this long")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oligo-load-") as scratch:
        database, drop = str(Path(scratch) / "load.sqlite3"), None
        if args.database == "postgresql":
            import psycopg

            name = f"oligo_load_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            database, drop = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}", name
        process, url = start_service(database, Path(scratch) / "service.log")
        try:
            seed(url, args.patients)
            result = summary(run(url, workload(args.patients), args.requests, args.clients, args.seconds))
        finally:
            process.terminate()
            process.wait(timeout=60)
            if drop:
                import psycopg

                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
    result |= {"clients": args.clients, "database": args.database}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['requests']} requests from {args.clients} clients on {args.database} in "
              f"{result['wall_seconds']} s ({result['requests_per_second']}/s): {result['errors']} errors")
        print(f"{'kind':<16}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for kind, row in [("all", result["all"])] + list(result["by_kind"].items()):
            print(f"{kind:<16}{row['count']:>7}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}")
        for error in result["first_errors"]:
            print("error:", error)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
