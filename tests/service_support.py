"""Real servers for the store, service and delivery tests: a PostgreSQL database per test run, the
`oligo serve` process (uvicorn on loopback), and a FHIR receiver with a SMART token endpoint.

Every wait is bounded and polls; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("OLIGO_TEST_POSTGRES_URL",
                                    "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
WAIT_SECONDS = 60  # the bound on every wait for a server or a delivery
TOKEN = "test-token-rw"
READ_TOKEN = "test-token-ro"
WRITE = {"Authorization": f"Bearer {TOKEN}"}


def wait_until(condition: Callable[[], object], what: str, seconds: float = WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database for this test run, dropped afterwards. Unreachable server: the test fails
    (scripts/ensure-postgres.sh, run by `make test`, starts or installs it)."""
    import psycopg

    name = f"oligo_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} cannot be reached ({exc}); run scripts/ensure-postgres.sh "
                    "or set OLIGO_TEST_POSTGRES_URL")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """One empty store per test: a SQLite file, or a fresh schema-less PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.sqlite3")
        return
    import psycopg

    run_url = request.getfixturevalue("postgres_url")
    name = f"{run_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(run_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{run_url.rsplit('/', 1)[0]}/{name}"
    yield url
    with psycopg.connect(run_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the service -----------------------------------------------------------------------------------


class Service:
    """`oligo serve` in its own process on a free loopback port."""

    def __init__(self, database: str, log_dir: Path, **settings):
        self.database, self.log_dir = database, log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {"OLIGO_API_TOKENS": f"{TOKEN},{READ_TOKEN};read"} | {
            f"OLIGO_{k.upper()}": str(v) for k, v in settings.items()}
        self.env.pop("OLIGO_CONFIG", None)
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Service:
        self.starts += 1
        self.log = open(self.log_dir / f"service-{self.port}-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--database", self.database], cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, f"the service on port {self.port} to answer /health")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            self.log.flush()
            pytest.fail(f"the service exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"service-{self.port}-*.log")))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def client(self, headers: dict | None = WRITE) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=60)


# --- a FHIR server of the EHR, with a SMART Backend Services token endpoint -------------------------


class FhirReceiver:
    """Records every transaction Bundle it accepts. While `down`, it answers 503 (and counts the tries).
    With `smart` (client id, public key PEM) it issues tokens for valid client assertions and accepts
    only those tokens; with `bearer` it accepts only that static token."""

    def __init__(self, *, smart: tuple[str, str] | None = None, bearer: str | None = None):
        self.accepted: list[dict] = []
        self.refused = 0  # 503s while down
        self.down = False
        self.down_for = 0  # answer 503 to this many more POSTs, then come up
        self.reject_with: int | None = None  # answer every POST with this status (e.g. 400)
        self.smart, self.bearer = smart, bearer
        self.issued: set[str] = set()
        self.token_requests = 0
        self.assertion_problems: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.token_url = f"http://127.0.0.1:{self.server.server_address[1]}/auth/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FhirReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tries(self) -> int:
        with self.lock:
            return self.refused + len(self.accepted)

    def _token(self, form: dict) -> tuple[int, dict]:
        client_id, public_key = self.smart
        self.token_requests += 1
        problems = []
        if form.get("grant_type") != ["client_credentials"]:
            problems.append("grant_type")
        if form.get("client_assertion_type") != ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]:
            problems.append("client_assertion_type")
        try:
            claims = jwt.decode(form.get("client_assertion", [""])[0], public_key, algorithms=["RS384"],
                                audience=self.token_url, options={"require": ["exp", "iss", "sub", "jti"]})
            if claims["iss"] != client_id or claims["sub"] != client_id:
                problems.append("iss/sub")
        except jwt.PyJWTError as exc:
            problems.append(f"assertion: {exc}")
        if problems:
            self.assertion_problems += problems
            return 401, {"error": "invalid_client", "error_description": ", ".join(problems)}
        token = uuid.uuid4().hex
        self.issued.add(token)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                     "scope": form.get("scope", [""])[0]}

    def _post_fhir(self, headers, body: bytes) -> tuple[int, dict]:
        presented = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if (self.smart and presented not in self.issued) or (self.bearer and presented != self.bearer):
            return 401, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
        with self.lock:
            if self.reject_with:
                return self.reject_with, {"resourceType": "OperationOutcome",
                                          "issue": [{"severity": "error", "code": "invalid"}]}
            if self.down or self.down_for > 0:
                self.down_for = max(0, self.down_for - 1)
                self.refused += 1
                return 503, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
            bundle = json.loads(body)
            self.accepted.append(bundle)
        return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": []}

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/auth/token" and receiver.smart:
                    status, answer = receiver._token(parse_qs(body.decode()))
                elif self.path == "/fhir":
                    status, answer = receiver._post_fhir(self.headers, body)
                else:
                    status, answer = 404, {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
