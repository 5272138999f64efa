"""The STOW-RS answer in DICOM JSON (PS3.18 §10.5.3, Store Instances Response Module), for clients
that ask for it with `Accept: application/dicom+json`: 200 all stored, 202 some parts failed, 409 none
stored (the OperationOutcome answer stays the default for integration engines)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

REFERENCED_SOP_SEQUENCE, FAILED_SOP_SEQUENCE = "00081199", "00081198"
SOP_CLASS, SOP_INSTANCE, FAILURE_REASON = "00081150", "00081155", "00081197"
CANNOT_UNDERSTAND = 0xC000  # PS3.4 Annex GG: processing failure, the instance was not stored


def _uid(value: str | None) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def store_instances_response(stored: list[dict], rejected: list[tuple[str, str]]) -> JSONResponse:
    referenced = [{SOP_CLASS: _uid(report["sop_class_uid"]), SOP_INSTANCE: _uid(report["source_id"])}
                  for result in stored for report in result["reports"]]
    failed = [{FAILURE_REASON: {"vr": "US", "Value": [CANNOT_UNDERSTAND]}} for _ in rejected]
    body = {}
    if referenced:
        body[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": referenced}
    if failed:
        body[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": failed}
    status = 409 if not stored else 202 if rejected else 200
    return JSONResponse(body, status_code=status, media_type="application/dicom+json")
