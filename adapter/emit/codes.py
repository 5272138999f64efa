"""The output code tables (mappings/fhir_output.yaml) and the local CodeSystem, as FHIR Codings.

Codes are data: this module only turns table entries into Coding dicts. Entries name their system by
a short key (`loinc`, `sct`, `dcm`, ...) or `local`, which is the caller's CodeSystem URL.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ..model import Code

CODE_SYSTEM_FILE = "oligo-codesystem.json"


@cache
def table() -> dict[str, Any]:
    text = resources.files("adapter.mappings").joinpath("fhir_output.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def _code_system_text() -> str:
    return resources.files("adapter.mappings").joinpath(CODE_SYSTEM_FILE).read_text(encoding="utf-8")


def code_system(url: str | None = None) -> dict[str, Any]:
    """The local CodeSystem resource shipped with the package, published under `url` (default: the
    package's own canonical URL)."""
    resource = json.loads(_code_system_text())
    if url:
        resource["url"] = url
    return resource


@cache
def _local_displays() -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(concepts):
        for concept in concepts:
            out.setdefault(concept["code"], concept["display"])
            walk(concept.get("concept", ()))

    walk(json.loads(_code_system_text())["concept"])
    return out


def system(key: str) -> str:
    return table()["systems"][key]


class Coder:
    """Makes Codings; `local` codes go to the CodeSystem URL the caller chose."""

    def __init__(self, local_url: str):
        self.local_url = local_url

    def coding(self, entry: dict[str, Any]) -> dict[str, Any]:
        if entry["system"] == "local":
            return self.local(entry["code"])
        out = {"system": system(entry["system"]), "code": str(entry["code"])}
        if entry.get("display"):
            out["display"] = entry["display"]
        return out

    def concept(self, *entries: dict[str, Any]) -> dict[str, Any]:
        return {"coding": [self.coding(e) for e in entries]}

    def local(self, code: str) -> dict[str, Any]:
        """A Coding of the local CodeSystem; unknown codes are a programming error."""
        displays = _local_displays()
        if code not in displays:
            raise KeyError(f"{code!r} is not in {CODE_SYSTEM_FILE}")
        return {"system": self.local_url, "code": code, "display": displays[code]}

    def local_concept(self, code: str, text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"coding": [self.local(code)]}
        if text:
            out["text"] = text
        return out


def from_dicom(code: Code | None) -> dict[str, Any] | None:
    """A DICOM-coded value (site, laterality, finding) as a CodeableConcept; private schemes keep the
    meaning as text only (STANDARDS.md §0: no standard URI for 99xxx designators)."""
    if code is None:
        return None
    system_url = table()["schemes"].get(code.scheme)
    if system_url is None:
        return {"text": code.meaning or code.value}
    coding = {"system": system_url, "code": code.value}
    if code.meaning:
        coding["display"] = code.meaning
    return {"coding": [coding]}
