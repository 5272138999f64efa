"""The HTTP service (DESIGN.md §5.3): integration engines POST SRs or FHIR and get FHIR back.

Every error is a FHIR OperationOutcome: 400 malformed request, 401 no or unknown token, 403 read-only
token on a write, 404 unknown patient or path, 413 body too large, 415 media type not taken here,
422 a well-formed document that cannot be used (the reader's reason, naming the input), 408 a body
that did not arrive within request_timeout_seconds, 503 the database unreachable or full (nothing
was stored; send again). Every path but /health needs a token, the OpenAPI description included.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..logsafe import describe_failure
from ..assess import assess_timelines, preset_names
from ..errors import InputError
from ..store import AssessmentFailed, Store, bundle_of
from ..store.documents import parse_document
from ..timeline import build_timeline_result
from . import api_tokens
from .assessor import Assessor
from .bodies import DICOM_TYPES, FHIR_TYPES, Part, multipart_related, read_body, single
from .stow import store_instances_response
from .config import ConfigError, Settings
from .delivery import Deliverer
from .outcome import FHIR_JSON, ServiceError, operation_outcome, outcome_response

log = logging.getLogger("oligo.service")


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    tokens = api_tokens.parse_tokens(settings.api_tokens)
    if not tokens and not settings.allow_anonymous:
        raise ConfigError("no API tokens configured: set OLIGO_API_TOKENS (or allow_anonymous = true on a "
                          "closed network)")
    limits = settings.read_limits()
    store = store or Store.open(settings.database, **settings.store_options())
    deliverer = Deliverer(store, settings) if settings.ehr_base_url else None
    assessor = Assessor(store, settings, on_delivery=deliverer.wake if deliverer else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for worker in (assessor, deliverer):
            if worker:
                worker.start()
        yield
        for worker in (assessor, deliverer):
            if worker:
                worker.stop()
        store.close()

    app = FastAPI(title="oligo-adapter", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None,
                  redoc_url=None,
                  description="DICOM SR (TID 1500) and FHIR lesion measurements in, oligo/polyprogression "
                              "FHIR DiagnosticReport out.")
    app.state.store, app.state.deliverer, app.state.assessor = store, deliverer, assessor
    _error_handlers(app)

    def require(scope: str):
        async def check(request: Request) -> None:  # no I/O: async, so no hop to the thread pool
            if not tokens:
                return
            scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise ServiceError(401, "a bearer token is required (Authorization: Bearer ...)",
                                   {"WWW-Authenticate": "Bearer"})
            token = api_tokens.match(tokens, presented.strip())
            if token is None:
                raise ServiceError(401, "the bearer token is not known here",
                                   {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if scope == api_tokens.WRITE and token.scope != api_tokens.WRITE:
                raise ServiceError(403, "this token may only read")
        return Depends(check)

    reader, writer = require(api_tokens.READ), require(api_tokens.WRITE)

    async def request_body(request: Request) -> bytes:
        return await read_body(request, settings.max_body_bytes, settings.request_timeout_seconds)

    @app.get("/openapi.json", dependencies=[reader], include_in_schema=False)
    async def openapi():
        return app.openapi()

    async def ingest(parts: list[Part]) -> tuple[list[dict], list[tuple[str, str]]]:
        stored, rejected = [], []
        for part in parts:
            if part.media_type not in DICOM_TYPES + FHIR_TYPES:
                rejected.append((part.label, f"media type {part.media_type} is not DICOM or FHIR"))
                continue
            try:
                result = await run_in_threadpool(partial(store.ingest, part.data, label=part.label,
                                                         media_type=part.media_type, parsed_json=part.parsed_json))
            except InputError as exc:
                rejected.append((part.label, exc.reason))
                continue
            stored.append(with_links(result.to_dict()))
        if any(r["assessment"] == "queued" for r in stored):
            assessor.wake()
        return stored, rejected

    async def ingest_one(request: Request, accepted: tuple[str, ...]) -> JSONResponse:
        part = single(request, await request_body(request), accepted)
        stored, rejected = await ingest([part])
        if rejected:
            raise ServiceError(422, f"{rejected[0][0]}: {rejected[0][1]}")
        return JSONResponse(stored[0], status_code=201 if stored[0]["status"] == "stored" else 200)

    @app.get("/health", summary="Liveness and database reachability (no token needed)")
    async def health():
        try:
            counts = await run_in_threadpool(store.counts)
            waiting = await run_in_threadpool(store.queue_state)
        except Exception as exc:  # the database is down: say so, with 503
            log.warning("health: database unreachable: %s", exc)
            raise ServiceError(503, "the database cannot be reached") from None
        return {"status": "ok", "version": __version__, "database": store.dialect,
                "delivery": bool(deliverer), "counts": counts, "assessment_queue": waiting}

    @app.post("/dicom", status_code=201, dependencies=[writer],
              summary="Store one SR (application/dicom or application/dicom+json); its patient is assessed soon")
    async def post_dicom(request: Request):
        return await ingest_one(request, DICOM_TYPES)

    @app.post("/fhir", status_code=201, dependencies=[writer],
              summary="Store FHIR Observations (a resource, a Bundle or NDJSON); their patients are assessed soon")
    async def post_fhir(request: Request):
        return await ingest_one(request, FHIR_TYPES)

    @app.post("/studies", dependencies=[writer],
              summary='STOW-RS: multipart/related; type="application/dicom", one SR per part')
    async def post_studies(request: Request):
        parts = multipart_related(request, await request_body(request))
        stored, rejected = await ingest(parts)
        if "application/dicom+json" in (request.headers.get("accept") or ""):
            return store_instances_response(stored, rejected)
        if not stored:
            issues = [operation_outcome(422, f"{label}: {reason}")["issue"][0] for label, reason in rejected]
            return JSONResponse({"resourceType": "OperationOutcome", "issue": issues}, status_code=422,
                                media_type=FHIR_JSON)
        body = {"results": stored, "rejected": [{"input": label, "reason": reason} for label, reason in rejected]}
        return JSONResponse(body, status_code=202 if rejected else 200)

    @app.post("/$assess", dependencies=[writer],
              summary="Stateless: SRs or FHIR in, the assessment's FHIR Bundle out; nothing is stored")
    async def post_assess(request: Request, preset: str | None = None):
        preset = preset or settings.preset
        if preset not in preset_names():
            raise ServiceError(400, f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
        data = await request_body(request)
        if (request.headers.get("content-type") or "").lower().startswith("multipart/related"):
            parts = multipart_related(request, data)
        else:
            parts = [single(request, data, DICOM_TYPES + FHIR_TYPES)]
        return JSONResponse(await run_in_threadpool(_assess_parts, parts, preset, limits), media_type=FHIR_JSON)

    async def latest(patient_id: str, issuer: str | None):
        """The newest assessment, made first if the patient is queued (a POST then a GET sees the POST)."""
        done = await run_in_threadpool(store.assess_now, patient_id, issuer)
        if deliverer and any(a.delivery_id for a in done):
            deliverer.wake()
        failures = [a for a in done if a.error]
        if failures:
            raise ServiceError(500, str(AssessmentFailed(patient_id, failures)))
        return await run_in_threadpool(partial(store.latest_assessment, patient_id, issuer, assess_queued=False))

    @app.get("/patients/{patient_id}/assessment", dependencies=[reader],
             summary="The latest assessment of a patient as a FHIR transaction Bundle")
    async def get_assessment(patient_id: str, issuer: str | None = None):
        stored = await latest(patient_id, issuer)
        if stored is None:
            raise ServiceError(404, f"no assessment of patient {patient_id!r} is stored")
        if stored.bundle is None:
            raise ServiceError(500, f"the latest assessment of patient {patient_id!r} is stored but its FHIR "
                                    "Bundle could not be made; the service log says why")
        return JSONResponse(stored.bundle, media_type=FHIR_JSON)

    @app.get("/patients/{patient_id}/assessment/summary", dependencies=[reader],
             summary="The latest assessment of a patient in the JSON shape of `oligo assess --json`")
    async def get_summary(patient_id: str, issuer: str | None = None):
        stored = await latest(patient_id, issuer)
        if stored is None:
            raise ServiceError(404, f"no assessment of patient {patient_id!r} is stored")
        return {"assessment_id": stored.id, "created_at": stored.created_at.isoformat() + "Z",
                "patients": [stored.result]}

    @app.get("/deliveries", dependencies=[reader], summary="The outbox: deliveries to the EHR and their state")
    async def get_deliveries(status: str | None = None):
        if status not in (None, "pending", "delivered", "failed"):
            raise ServiceError(400, f"status {status!r}: use pending, delivered or failed")
        return {"deliveries": await run_in_threadpool(store.deliveries, status)}

    @app.post("/deliveries/{delivery_id}/retry", dependencies=[writer],
              summary="Put a failed delivery back in the outbox (attempts start again)")
    async def retry_delivery(delivery_id: int):
        delivery = await run_in_threadpool(store.retry_delivery, delivery_id)
        if delivery is None:
            raise ServiceError(404, f"no delivery {delivery_id}")
        if deliverer:
            deliverer.wake()
        return delivery

    return app


def with_links(result: dict) -> dict:
    """The ingest result with the path of each queued patient's assessment (GET it to wait for it)."""
    for patient in result["patients"]:
        query = f"?{urlencode({'issuer': patient['issuer']})}" if patient["issuer"] else ""
        patient["assessment_url"] = f"/patients/{quote(patient['patient_id'], safe='')}/assessment{query}"
    return result


def _assess_parts(parts: list[Part], preset: str, limits) -> dict:
    reports = []
    for part in parts:
        try:
            reports += parse_document(part.data, label=part.label, media_type=part.media_type,
                                      limits=limits).reports
        except InputError as exc:
            raise ServiceError(422, str(exc)) from None
    placed = build_timeline_result(sorted(reports, key=lambda r: r.source_id))
    results = assess_timelines(placed.timelines, preset)
    if len(results) != 1:
        why = "; ".join(f"{p.source_id}: {p.reason}" for p in placed.problems)
        raise ServiceError(422, f"$assess takes the reports of exactly one patient; these describe "
                                f"{len(results)}" + (f" ({why})" if why else ""))
    return bundle_of(results[0])


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError):
        return outcome_response(exc.status, exc.diagnostics, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return outcome_response(exc.status_code, f"{request.method} {request.url.path}: {detail}",
                                getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return outcome_response(400, f"{request.method} {request.url.path}: {problems}")

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError):
        if not isinstance(exc, OperationalError) and not exc.connection_invalidated:
            return await unexpected(request, exc)  # a database error that is not about reaching it
        # Only the driver's first line: SQL parameters and PostgreSQL's DETAIL lines may hold patient data.
        log.warning("%s %s: database unavailable (%s: %s)", request.method, request.url.path,
                    exc.orig.__class__.__name__, str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "")
        return outcome_response(503, f"{request.method} {request.url.path}: the database cannot be reached or "
                                     "cannot take more data; nothing was stored, send again later",
                                {"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("%s %s failed: %s", request.method, request.url.path, describe_failure(exc))
        return outcome_response(500, f"{request.method} {request.url.path}: internal error "
                                     f"({exc.__class__.__name__}); nothing was changed")
