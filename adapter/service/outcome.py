"""FHIR OperationOutcome bodies for every error the service answers with."""

from __future__ import annotations

from fastapi.responses import JSONResponse

ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               408: "timeout",
               413: "too-costly", 415: "not-supported", 422: "processing", 503: "transient"}
FHIR_JSON = "application/fhir+json"


def operation_outcome(status: int, diagnostics: str, severity: str = "error") -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": ISSUE_CODES.get(status, "exception"),
                       "diagnostics": diagnostics}]}


def outcome_response(status: int, diagnostics: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(operation_outcome(status, diagnostics), status_code=status, media_type=FHIR_JSON,
                        headers=headers)


class ServiceError(Exception):
    """Raised anywhere in a request; answered as an OperationOutcome with this status."""

    def __init__(self, status: int, diagnostics: str, headers: dict | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.headers = headers
