"""Request bodies -> documents: size limit, media types and STOW-RS multipart/related parts."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
from dataclasses import dataclass

from fastapi import Request

from .outcome import ServiceError

DICOM_TYPES = ("application/dicom", "application/dicom+json")
FHIR_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "application/fhir+ndjson",
              "application/ndjson", "application/x-ndjson")
JSON_TYPES = ("application/dicom+json", "application/fhir+json", "application/json", "application/json+fhir")


@dataclass(frozen=True)
class Part:
    label: str
    media_type: str
    data: bytes
    parsed_json: object = None  # a JSON body as checked here, so the DICOM JSON reader need not parse it again


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed `limit` bytes, or 408 when it has not
    arrived within `timeout` seconds (a client trickling bytes must not hold a worker for ever)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ServiceError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServiceError(413, f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ServiceError(408, f"{request.method} {request.url.path}: the request body did not arrive within "
                                f"{timeout:g} seconds", {"Connection": "close"}) from None
    data = b"".join(chunks)
    if not data:
        raise ServiceError(400, f"{request.method} {request.url.path}: the request body is empty")
    return data


def single(request: Request, data: bytes, accepted: tuple[str, ...]) -> Part:
    """One document in the body; 415 for a media type this path does not take, 400 for broken JSON."""
    kind = media_type(request.headers.get("content-type"))
    if kind not in accepted:
        shown = kind or "a body without Content-Type"
        raise ServiceError(415, f"{request.url.path} takes {', '.join(accepted)}, not {shown}")
    parsed = None
    if kind in JSON_TYPES:
        try:
            parsed = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ServiceError(400, f"{request.url.path} body: not valid JSON ({exc})") from None
    return Part(f"{request.url.path} body", kind, data, parsed)


def multipart_related(request: Request, data: bytes) -> list[Part]:
    """The parts of a STOW-RS request (PS3.18 §10.5): multipart/related with DICOM parts."""
    content_type = request.headers.get("content-type") or ""
    if media_type(content_type) != "multipart/related":
        raise ServiceError(415, f"{request.url.path} takes multipart/related; type=\"application/dicom\", "
                                f"not {media_type(content_type) or 'a body without Content-Type'}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + data)
    if not message.get_param("boundary") or not message.is_multipart():
        raise ServiceError(400, f"{request.url.path}: the multipart/related body has no boundary or no parts")
    declared = (message.get_param("type") or "").lower()
    if declared and declared not in DICOM_TYPES:
        raise ServiceError(415, f"{request.url.path}: multipart/related type {declared!r} is not supported; "
                                "use application/dicom or application/dicom+json")
    parts = []
    for number, part in enumerate(message.iter_parts(), start=1):
        kind = media_type(part.get_content_type()) if part.get("content-type") else declared or "application/dicom"
        payload = part.get_payload(decode=True) or b""
        parts.append(Part(f"{request.url.path} part {number}", kind, payload))
    if not parts:
        raise ServiceError(400, f"{request.url.path}: the multipart/related body has no parts")
    return parts
