"""Real DICOM software for the listener and Orthanc tests: `oligo listen` in its own process, DCMTK's
storescu/echoscu as an independent client, and an Orthanc of the test's own (loopback ports, a
temporary storage folder, a configuration file the test writes; never the system service).

A missing tool fails the test with a plain message (scripts/ensure-dicom-tools.sh, run by `make test`,
installs them). Every wait is bounded and polls; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapter.store import Store

from tests.service_support import REPO, WAIT_SECONDS, free_port, wait_until

LISTENER_AE = "OLIGO"
SENDER_AE = "STORESCU"
ORTHANC_PLUGIN_PATHS = ("/usr/share/orthanc/plugins/libOrthancPython.so",)


def tool(name: str) -> str:
    """The path of a DCMTK or Orthanc program; its absence fails the test (never a skip)."""
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                       None)
    if not found:
        pytest.fail(f"{name} is not installed; run scripts/ensure-dicom-tools.sh (make test does) to install "
                    "the Debian packages dcmtk, orthanc and orthanc-python")
    return found


def counts(database: str) -> dict:
    """Rows per table of the store, read in the test's own process."""
    store = Store.open(database)
    try:
        return store.counts()
    finally:
        store.close()


def latest(database: str, patient_id: str):
    """The newest stored assessment of the patient, or None."""
    store = Store.open(database)
    try:
        return store.latest_assessment(patient_id)
    finally:
        store.close()


@dataclass(frozen=True)
class Sent:
    """What storescu saw: its exit status, the DIMSE status of every C-STORE response, the ErrorComments."""

    returncode: int
    statuses: list[int]
    comments: list[str]
    output: str


def storescu(port: int, files: list[Path], calling: str = SENDER_AE, called: str = LISTENER_AE,
             options: tuple[str, ...] = ()) -> Sent:
    """Send files in one association, proposing exactly their SOP classes (-R), going on after a refused
    instance (--no-halt), with debug output to parse."""
    done = subprocess.run([tool("storescu"), "-R", "--no-halt", "-d", "-aet", calling, "-aec", called, "-ta", "30", "-td", "60",
                           *options, "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=WAIT_SECONDS)
    output = done.stdout + done.stderr
    statuses = [int(code, 16) for code in re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", output)]
    comments = re.findall(r"\(0000,0902\) LO \[([^\]]*)\]", output)
    return Sent(done.returncode, statuses, comments, output)


def echoscu(port: int, calling: str = SENDER_AE, called: str = LISTENER_AE) -> subprocess.CompletedProcess:
    return subprocess.run([tool("echoscu"), "-aet", calling, "-aec", called, "-ta", "10", "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=WAIT_SECONDS)


class ListenerProcess:
    """`oligo listen` in its own process on a free loopback port; ready once echoscu gets an answer."""

    def __init__(self, database: str, log_dir: Path, *args: str, **settings):
        self.database, self.log_dir, self.args = database, log_dir, args
        self.port = free_port()
        self.env = os.environ | {f"OLIGO_{k.upper()}": str(v) for k, v in settings.items()}
        self.env.pop("OLIGO_CONFIG", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> ListenerProcess:
        self.log = open(self.log_dir / f"listen-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adapter", "listen", "--ae-title", LISTENER_AE, "--host", "127.0.0.1",
             "--port", str(self.port), "--database", self.database, *self.args],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._answers, f"oligo listen on port {self.port} to answer C-ECHO")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"oligo listen exited with {self.process.returncode}:\n{self.output()}")
        return echoscu(self.port).returncode == 0

    def output(self) -> str:
        self.log.flush()
        return (self.log_dir / f"listen-{self.port}.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


class OrthancProcess:
    """A real Orthanc with its own configuration, storage folder and loopback ports."""

    def __init__(self, work: Path, **config):
        self.work = work
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = {
            "Name": "oligo-test", "StorageDirectory": str(work / "storage"), "IndexDirectory": str(work / "storage"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomServerEnabled": True,
            "HttpServerEnabled": True, "StorageCompression": False, "Plugins": [],
        } | config
        self.process: subprocess.Popen | None = None

    def start(self) -> OrthancProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        config_file = self.work / "orthanc.json"
        config_file.write_text(json.dumps(self.config, indent=2))
        self.log = open(self.work / "orthanc.log", "wb")
        self.process = subprocess.Popen([tool("Orthanc"), "--verbose", str(config_file)], cwd=self.work,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._answers, f"Orthanc on port {self.http_port} to answer /system")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"Orthanc exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/system", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        self.log.flush()
        return (self.work / "orthanc.log").read_text(errors="replace")

    def upload(self, data: bytes) -> dict:
        response = httpx.post(f"{self.url}/instances", content=data, timeout=60,
                              headers={"Content-Type": "application/dicom"})
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
