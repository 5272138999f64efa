"""FHIR JSON, Bundles and NDJSON -> a flat, indexed set of resources with references resolved.

This module knows FHIR's containers (Bundle of any type, nested Bundles, NDJSON lines, contained
resources) and its reference forms (relative `Type/id`, absolute URLs, `urn:uuid:` fullUrls, `#id`),
so the Observation reader only ever asks "what does this reference point to?". It also tells the FHIR
release apart from the content, because R4 and R5 carry a lesion's BodyStructure differently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import InputError
from . import fhir_codes
from .fhir_codes import many
from .dicom_json import looks_like_dicom_json
from .limits import DEFAULT_LIMITS, ReadLimits, check_json, too_deep_to_parse

_ABSOLUTE_TAIL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([^/\s]+?)(?:/_history/[^/]+)?$")


@dataclass(frozen=True)
class Entry:
    """One resource as found in the input, with where it was (for messages) and its container."""

    resource: dict
    where: str  # "entry 3", "line 12", "the resource"
    full_url: str | None = None
    container: "Entry | None" = None  # the resource a contained resource lives in

    @property
    def type(self) -> str:
        return str(self.resource.get("resourceType") or "")

    @property
    def id(self) -> str | None:
        value = self.resource.get("id")
        return str(value) if value not in (None, "") else None

    @property
    def top(self) -> "Entry":
        return self.container.top if self.container else self

    def reference(self) -> str | None:
        """A server-style reference to this resource (`Type/id`), when it has a stable one."""
        if self.container is not None:
            return None
        if self.full_url and not self.full_url.startswith("urn:"):
            match = _ABSOLUTE_TAIL.search(self.full_url)
            if match:
                return f"{match.group(1)}/{match.group(2)}"
        if self.id and self.type:
            return f"{self.type}/{self.id}"
        return None


@dataclass
class FhirInput:
    """Everything in one input: resources (Bundles flattened), an index for references, the version."""

    label: str
    entries: list[Entry]
    container_id: str | None  # Bundle identifier or Bundle/id of the outermost Bundle
    digest: str  # sha256 of the canonical content: a stable identity when nothing else is given
    version: str = "R4"
    version_evidence: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    _by_url: dict[str, Entry] = field(default_factory=dict)
    _by_ref: dict[str, Entry] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def index(self) -> None:
        for entry in self.entries:
            if entry.full_url:
                self._by_url.setdefault(entry.full_url, entry)
            ref = entry.reference()
            if ref:
                self._by_ref.setdefault(ref, entry)

    def resolve(self, reference: object, context: Entry) -> Entry | None:
        """A Reference (dict or string) -> the resource it points to in this input, or None."""
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(ref, str) or not ref.strip():
            return None
        ref = ref.strip()
        if ref.startswith("#"):
            return _contained(context.top, ref[1:])
        if ref in self._by_url:
            return self._by_url[ref]
        match = _ABSOLUTE_TAIL.search(ref)
        if match:
            return self._by_ref.get(f"{match.group(1)}/{match.group(2)}")
        return None


def _contained(container: Entry, local_id: str) -> Entry | None:
    for index, item in enumerate(many(container.resource.get("contained")), start=1):
        if isinstance(item, dict) and str(item.get("id", "")) == local_id:
            return Entry(item, f"{container.where}, contained #{local_id}", container=container)
    return None


# --- reading -----------------------------------------------------------------------------------------


def describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)) and not _is_json_text(source):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, dict):
        kind = source.get("resourceType") or "JSON object"
        rid = source.get("id")
        return f"<FHIR {kind}{'/' + str(rid) if rid else ''}>"
    return "<FHIR JSON>"


def _is_json_text(source: object) -> bool:
    return isinstance(source, str) and source.lstrip()[:1] in ("{", "[")


def _raw_bytes(source: object, label: str) -> bytes | None:
    """The input's bytes (for the digest and parsing), or None for an already parsed object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if _is_json_text(source):
        return source.encode("utf-8")
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise InputError(label, f"cannot be read ({exc.strerror or exc})") from None
    return None


def _loads(text: str):
    return json.loads(text, parse_float=Decimal, parse_constant=Decimal)


def load(source: object, label: str, limits: ReadLimits = DEFAULT_LIMITS) -> FhirInput:
    """Parse one input (path, bytes, JSON text, dict or list) into an indexed FhirInput; InputError when
    it nests deeper or holds longer arrays than `limits`."""
    data = _raw_bytes(source, label)
    if data is None:
        if not isinstance(source, (dict, list)):
            raise TypeError(f"read_fhir takes a path, bytes, JSON text, a dict or a list, not {type(source)}")
        try:
            text = json.dumps(source)
        except (TypeError, ValueError) as exc:
            raise InputError(label, f"is not JSON-serialisable FHIR ({exc})") from None
        except RecursionError:
            raise too_deep_to_parse(label, "JSON") from None
        objects, notes = [("the resource", _loads(text))], []  # numbers as Decimal, as when read from bytes
    else:
        if not data.strip():
            raise InputError(label, "is empty")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(label, "is not UTF-8 text, so not FHIR JSON") from None
        objects, notes = _parse_text(text, label)
    for _, obj in objects:
        check_json(obj, label, limits)
    digest = content_digest([obj for _, obj in objects])
    found = FhirInput(label=label, entries=[], container_id=None, digest=digest)
    for note in notes:
        found.warn(note)
    for where, obj in objects:
        _add(found, obj, where, top=len(objects) == 1)
    if not found.entries:
        raise InputError(label, "holds no FHIR resource" + (f" ({found.warnings[0]})" if found.warnings else ""))
    found.index()
    found.version, found.version_evidence = detect_version(found.entries, found)
    return found


def content_digest(objects: list) -> str:
    """sha256 of the parsed content in canonical form: the same resources give the same identity however
    they were formatted or passed in, so a resend is recognised."""
    canonical = json.dumps(objects, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _parse_text(text: str, label: str) -> tuple[list[tuple[str, object]], list[str]]:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        raise InputError(label, "is not JSON, so neither a FHIR resource, Bundle nor NDJSON")
    try:
        return [("the resource", _loads(text))], []
    except ValueError as exc:
        whole_error = exc
    except RecursionError:
        raise too_deep_to_parse(label, "JSON") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) > 1:  # NDJSON (FHIR Bulk Data): one resource per line, a bad line does not spoil the rest
        objects, notes = [], []
        for number, line in lines:
            try:
                objects.append((f"line {number}", _loads(line)))
            except RecursionError:
                raise too_deep_to_parse(label, f"JSON (line {number})") from None
            except ValueError as exc:
                notes.append(f"line {number} is not valid JSON ({exc}); skipped")
        if objects:
            return objects, notes
    raise InputError(label, f"is not valid JSON ({whole_error})")


def _add(found: FhirInput, obj: object, where: str, *, top: bool, full_url: str | None = None) -> None:
    if isinstance(obj, list):
        if top:
            found.warn(f"is a JSON array of {len(obj)} items, not a Bundle; each item read as a resource")
        for index, item in enumerate(obj, start=1):
            _add(found, item, f"item {index}", top=False)
        return
    if not isinstance(obj, dict):
        _reject(found, where, f"is a JSON {type(obj).__name__}, not a FHIR resource", top)
        return
    kind = obj.get("resourceType")
    if kind is None:
        if looks_like_dicom_json(obj):
            _reject(found, where, "is DICOM JSON (PS3.18), not FHIR", top)
        else:
            _reject(found, where, "is JSON but not FHIR (it has no resourceType)", top)
        return
    if not isinstance(kind, str) or kind not in fhir_codes.resource_types():
        _reject(found, where, f"has resourceType {kind!r}, which is not a FHIR resource type", top)
        return
    if kind == "Bundle":
        _add_bundle(found, obj, where, top)
        return
    found.entries.append(Entry(obj, where, full_url=full_url))


def _reject(found: FhirInput, where: str, reason: str, top: bool) -> None:
    if top:
        raise InputError(found.label, reason)
    found.warn(f"{where} {reason}; skipped")


def _add_bundle(found: FhirInput, bundle: dict, where: str, top: bool) -> None:
    if found.container_id is None:
        found.container_id = bundle_identity(bundle)
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InputError(found.label, f"{where}: Bundle.entry is not a list")
    prefix = "" if where == "the resource" else f"{where}, "
    for index, item in enumerate(entries, start=1):
        place = f"{prefix}entry {index}"
        if not isinstance(item, dict):
            found.warn(f"{place} is not an object; skipped")
            continue
        resource = item.get("resource")
        if resource is None:
            request = item.get("request") or {}
            if isinstance(request, dict) and request.get("method") == "DELETE":
                found.warn(f"{place} deletes {request.get('url')}; a delete is not read")
            continue  # batch-response entries without a body carry nothing to read
        full_url = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else None
        _add(found, resource, place, top=False, full_url=full_url)


def bundle_identity(bundle: dict) -> str | None:
    ident = bundle.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return f"{ident.get('system')}|{ident['value']}" if ident.get("system") else str(ident["value"])
    if bundle.get("id"):
        return f"Bundle/{bundle['id']}"
    return None


# --- FHIR version ------------------------------------------------------------------------------------


def _all_resources(entries: list[Entry]) -> Iterator[dict]:
    for entry in entries:
        yield entry.resource
        for item in many(entry.resource.get("contained")):
            if isinstance(item, dict):
                yield item


def detect_version(entries: list[Entry], found: FhirInput) -> tuple[str, tuple[str, ...]]:
    """R5, R4B or R4 from what the content uses (mappings/fhir.yaml `versions`); R4 when nothing tells."""
    rules = fhir_codes.table()["versions"]
    r5: list[str] = []
    pre5: list[str] = []
    r4b: list[str] = []
    r4: list[str] = []
    for resource in _all_resources(entries):
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            continue
        if kind in rules["r5_resource_types"]:
            r5.append(kind)
        if kind in rules["pre_r5_resource_types"]:
            pre5.append(kind)
        if kind in rules["r4b_resource_types"]:
            r4b.append(kind)
        if kind in rules["r4_resource_types"]:
            r4.append(kind)
        r5 += [f"{kind}.{e}" for e in rules["r5_elements"].get(kind, ()) if e in resource]
        pre5 += [f"{kind}.{e}" for e in rules["pre_r5_elements"].get(kind, ()) if e in resource]
        meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
        for profile in many(meta.get("profile")):
            if any(str(profile).startswith(p) for p in rules["r5_profile_prefixes"]):
                r5.append(f"profile {profile}")
            if any(str(profile).startswith(p) for p in rules["pre_r5_profile_prefixes"]):
                pre5.append(f"profile {profile}")
    r5, pre5 = sorted(set(r5)), sorted(set(pre5))
    if r5 and pre5:
        found.warn(f"mixes FHIR R5 content ({', '.join(r5[:3])}) with R4 content ({', '.join(pre5[:3])}); "
                   "both forms are read")
    if r5 and len(r5) >= len(pre5):
        return "R5", tuple(r5)
    if r4 and not r4b:
        return "R4", tuple(sorted(set(r4)))
    if r4b:
        return "R4B", tuple(sorted(set(r4b)))
    return "R4", tuple(pre5)


# --- sniffing (for the CLI's dispatch) ---------------------------------------------------------------


def looks_like_fhir(data: bytes, name: str = "") -> bool:
    """True when bytes are a FHIR resource, Bundle or NDJSON (what `read_fhir` should read)."""
    if name.lower().endswith((".ndjson", ".fhir.json")):
        return True
    head = data.lstrip()[:1]
    if head not in (b"{", b"["):
        return False
    try:
        obj = json.loads(data)
    except RecursionError:  # the reader it goes to says why it cannot be read
        return False
    except (ValueError, UnicodeDecodeError):
        for line in data.splitlines():
            if line.strip():
                try:
                    obj = json.loads(line)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    return False
                break
        else:
            return False
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    return isinstance(obj, dict) and "resourceType" in obj
