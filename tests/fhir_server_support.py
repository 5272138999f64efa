"""A real FHIR server and a real FHIR validator for the tests (tests/fhir_server, Node.js).

The server is Medplum's transaction engine (@medplum/fhir-router over its MemoryRepository, with the
writes the Medplum server adds: atomic transactions, conditional references, validation on write),
behind a small node:http front. The validator is @medplum/core `validateResource` with R4 core and the
mCODE STU4 profiles (hl7.fhir.us.mcode 4.0.0). Both start once per test session; `make test` installs
them (scripts/ensure-fhir-server.sh). When they cannot start the test fails, it never skips.

    def test_x(fhir_server):                 # from tests.fhir_server_support import fhir_server
        with fhir_server.client() as client:
            client.post("Patient", json=patient)
    issues = validate_bundle(bundle, profiles=mcode_profiles)
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
MCODE_PACKAGE = SERVER_DIR / "packages" / "hl7.fhir.us.mcode-4.0.0"
START_SECONDS = 120  # the bound on a start (indexing R4 takes a few seconds on an idle machine)
FHIR_JSON = "application/fhir+json"
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
MCODE_TUMOR = MCODE + "mcode-tumor"
MCODE_TUMOR_SIZE = MCODE + "mcode-tumor-size"
MCODE_CANCER_DISEASE_STATUS = MCODE + "mcode-cancer-disease-status"
# mCODE's fixed Observation.code of each profile (LOINC), StructureDefinition-*.json of the package
MCODE_OBSERVATIONS = {"21889-1": MCODE_TUMOR_SIZE, "97509-4": MCODE_CANCER_DISEASE_STATUS}


def _node() -> str:
    node = shutil.which("node")
    if not node or not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail("Node.js or the npm packages of tests/fhir_server are missing; run scripts/ensure-fhir-server.sh "
                    "(make test does)")
    return node


class _NodeProcess:
    """A Node.js script of tests/fhir_server that prints one JSON line when it is ready."""

    def __init__(self, what: str, argv: list[str], *, stdin: bool = False):
        self.what = what
        self.process = subprocess.Popen([_node(), *argv], cwd=SERVER_DIR, text=True, bufsize=1,
                                        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.ready = self._ready_line()

    def _ready_line(self) -> dict:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_SECONDS)
        if not line or not line[0].strip():
            self.stop()
            detail = (self.process.stderr.read() or "").strip().splitlines()[-5:]
            pytest.fail(f"the test {self.what} did not start within {START_SECONDS} s: {' | '.join(detail)}")
        return json.loads(line[0])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()


class FhirServer:
    """The Medplum-engine FHIR server on a free loopback port. With `token`, every request must carry
    `Authorization: Bearer <token>`."""

    def __init__(self, *, token: str = ""):
        argv = ["server.mjs", "--port", "0"]
        if token:
            argv += ["--token", token]
        self.token = token
        self._process = _NodeProcess("FHIR server", argv)
        self.base: str = self._process.ready["base"]

    def client(self, *, token: str | None = None) -> httpx.Client:
        """An HTTP client at the FHIR base (relative URLs: "Patient", "Patient/ID/_history")."""
        token = self.token if token is None else token
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base + "/", headers=headers, timeout=60)

    def stop(self) -> None:
        self._process.stop()


@pytest.fixture(scope="session")
def fhir_server():
    """The session's FHIR server, no authentication."""
    server = FhirServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fhir_server_bearer():
    """A second FHIR server that wants a static bearer token (`fhir_server_bearer.token`)."""
    server = FhirServer(token="test-ehr-token")
    yield server
    server.stop()


@dataclass(frozen=True)
class Issue:
    """One finding of the validator: `location` is a FHIRPath into the validated resource
    (`Bundle.entry[3].resource.identifier`); `profile` the profile that found it (None: R4 core);
    `source` medplum (validateResource), invariant (a warning-level invariant) or validator."""

    severity: str
    code: str
    location: str
    message: str
    profile: str | None
    source: str

    def __str__(self) -> str:
        profile = f" [{self.profile.rsplit('/', 1)[-1]}]" if self.profile else ""
        return f"{self.severity} {self.location}{profile}: {self.message}"


class FhirValidator:
    """The validator process, shared by the session; one request at a time."""

    def __init__(self, packages: Iterable[Path] = (MCODE_PACKAGE,)):
        argv = ["validator.mjs"]
        for package in packages:
            if not (package / "package.json").is_file():
                pytest.fail(f"FHIR package {package.name} is missing; run scripts/ensure-fhir-server.sh")
            argv += ["--package", str(package)]
        self._process = _NodeProcess("FHIR validator", argv, stdin=True)
        self.unloadable: list[str] = self._process.ready["unloadable"]
        self._lock = threading.Lock()

    def validate(self, resource: dict, *, profiles: list[str] | None = None,
                 entry_profiles: list[list[str]] | None = None) -> list[Issue]:
        request = {"resource": resource, "profiles": profiles or [], "entry_profiles": entry_profiles or []}
        with self._lock:
            process = self._process.process
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            answer = process.stdout.readline()
        if not answer:
            pytest.fail(f"the FHIR validator stopped: {process.stderr.read()[-2000:]}")
        answer = json.loads(answer)
        if "error" in answer:
            pytest.fail(f"the FHIR validator refused the request: {answer['error']}")
        return [Issue(i["severity"], i["code"], i["location"], i["message"], i.get("profile"), i["source"])
                for i in answer["issues"]]

    def stop(self) -> None:
        self._process.stop()


_validator: FhirValidator | None = None
_validator_lock = threading.Lock()


def validator() -> FhirValidator:
    """The session's validator, started on first use and stopped when the session ends."""
    global _validator
    with _validator_lock:
        if _validator is None:
            _validator = FhirValidator()
            atexit.register(_validator.stop)
        return _validator


Profiles = Callable[[dict], Iterable[str]] | Mapping[str, Iterable[str]] | None


def _profiles_of(resource: dict, profiles: Profiles) -> list[str]:
    if profiles is None:
        return []
    if callable(profiles):
        return list(profiles(resource))
    return list(profiles.get(resource.get("resourceType"), ()))


def validate_bundle(bundle: dict, profiles: Profiles = None) -> list[Issue]:
    """Every issue of `bundle` against R4 core, each profile an entry claims (meta.profile) and each
    profile `profiles` names for it: a function of the resource, or a mapping from resource type."""
    entry_profiles = [_profiles_of(entry.get("resource") or {}, profiles) for entry in bundle.get("entry", [])]
    return validator().validate(bundle, entry_profiles=entry_profiles)


def validate_resource(resource: dict, profiles: Iterable[str] = ()) -> list[Issue]:
    return validator().validate(resource, profiles=list(profiles))


def errors(issues: Iterable[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity in ("error", "fatal")]


def mcode_profiles(resource: dict) -> list[str]:
    """The mCODE STU4 profile a resource of this project's Bundle stands for, claimed or not: a tumor
    (BodyStructure) is mCODE Tumor; a tumor size or a cancer disease status Observation by its LOINC code."""
    if resource.get("resourceType") == "BodyStructure":
        return [MCODE_TUMOR]
    if resource.get("resourceType") == "Observation":
        codes = {c.get("code") for c in resource.get("code", {}).get("coding", []) if c.get("system") == "http://loinc.org"}
        return [MCODE_OBSERVATIONS[code] for code in sorted(codes) if code in MCODE_OBSERVATIONS]
    return []


def resource_in(bundle: dict, reference: str) -> dict:
    """The resource of a response or search Bundle entry whose fullUrl or Type/id is `reference`."""
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if reference in (entry.get("fullUrl"), f"{resource.get('resourceType')}/{resource.get('id')}"):
            return resource
    raise KeyError(reference)


def search(client: httpx.Client, path: str, **params: Any) -> list[dict]:
    """The resources a FHIR search finds (one page of up to 1000)."""
    response = client.get(path, params={"_count": 1000, **params})
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]

