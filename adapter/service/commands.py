"""`oligo ingest`, `oligo serve`, `oligo listen` and `oligo deliveries`: the store and the service from the
command line.

Exit status as everywhere (DESIGN.md §5.1): 0 every input used; 2 usage error or no usable input;
3 some inputs rejected. One line on stderr per rejected input, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

from ..errors import InputError
from ..inputs import expand
from .config import ConfigError, Settings

EXIT_OK, EXIT_USAGE, EXIT_SOME_REJECTED = 0, 2, 3


def open_store(settings: Settings):
    from ..store import Store

    try:
        return Store.open(settings.database, **settings.store_options())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:  # the database cannot be opened: one plain line, without the password
        raise ConfigError(f"database {_shown(settings.database)}: cannot be opened ({exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _shown(database: str) -> str:
    from ..store.database import describe_url, normalise_url

    try:
        return describe_url(normalise_url(database)) if "://" in database else database
    except Exception:  # not even a URL: show it as given, it holds no password we could find
        return database


def ingest(inputs: list[str], settings: Settings, as_json: bool) -> int:
    """Store every input, then assess the patients they changed (each once, however many of its
    reports came) before printing how many assessments that made."""
    store = open_store(settings)
    results, rejected = [], 0
    try:
        for path in expand(inputs):
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                result = store.ingest(data, label=path)
            except OSError as exc:
                sys.stderr.write(f"{path}: cannot be read ({exc.strerror or exc})\n")
                rejected += 1
                continue
            except InputError as exc:
                sys.stderr.write(f"{path}: {exc.reason}\n")
                rejected += 1
                continue
            results.append(result)
            if not as_json:
                changed = sum(1 for r in result.reports if r["status"] != "unchanged")
                sys.stdout.write(f"{path}: {result.status} ({changed} of {len(result.reports)} report(s) new or "
                                 "updated)\n")
        assessed = store.drain()
    finally:
        store.close()
    made = [a for a in assessed if a.assessment_id]
    failed = [a for a in assessed if a.error]
    for failure in failed:
        sys.stderr.write(f"patient {failure.patient[0]}: the assessment failed ({failure.error}); it stays queued "
                         "and is tried again by the service or the next `oligo ingest`\n")
    if as_json:
        sys.stdout.write(json.dumps({"results": [r.to_dict() for r in results],
                                     "assessed": [{"patient_id": a.patient[0], "issuer": a.patient[1],
                                                   "assessment_id": a.assessment_id, "delivery_id": a.delivery_id,
                                                   "error": a.error} for a in assessed]}, indent=2) + "\n")
    elif assessed:
        sys.stdout.write(f"{len(assessed)} patient(s) assessed: {len(made)} new assessment(s)\n")
    if not results:
        if not rejected:
            sys.stderr.write("oligo: no input files found\n")
        return EXIT_USAGE
    return EXIT_SOME_REJECTED if rejected else EXIT_OK  # a failed assessment: the inputs were still used


def deliveries(settings: Settings, status: str | None, as_json: bool, retry: list[int] = ()) -> int:
    store = open_store(settings)
    try:
        missing = [number for number in retry if store.retry_delivery(number) is None]
        rows = store.deliveries(status)
    finally:
        store.close()
    for number in missing:
        sys.stderr.write(f"oligo: no delivery {number}\n")
    if as_json:
        sys.stdout.write(json.dumps({"deliveries": rows}, indent=2) + "\n")
    else:
        for row in rows:
            sys.stdout.write(f"{row['id']}  {row['status']}  assessment {row['assessment_id']}  attempts "
                             f"{row['attempts']}  {row['target']}"
                             + (f"  last error: {row['last_error']}" if row["last_error"] else "") + "\n")
        if not rows:
            sys.stdout.write("no deliveries\n")
    return EXIT_USAGE if missing else EXIT_OK


def _log_at_info() -> None:
    """The service's own INFO lines; libraries only from WARNING (alembic 1.20 logs its plugins at INFO
    on every start, which would bury the one line that says the database cannot be opened)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "pynetdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


SETTINGS_VARIABLE = "OLIGO_SERVE_SETTINGS"  # how `oligo serve --workers N` hands its settings to the processes


def serve(settings: Settings, host: str, port: int) -> int:
    """uvicorn on host:port. With several workers, uvicorn starts that many processes, each with its own
    app (and its own assessment and delivery workers: the store's leases share the work out)."""
    import uvicorn

    from .http import create_app

    _log_at_info()
    store = open_store(settings)  # fails here, with one line, if the database cannot be opened
    tls = {"ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile} if settings.tls_certfile else {}
    options = dict(host=host, port=port, log_level="info", access_log=False,
                   timeout_keep_alive=settings.keep_alive_seconds, **tls)
    if settings.workers == 1:
        uvicorn.run(create_app(settings, store), **options)
        return EXIT_OK
    store.close()
    os.environ[SETTINGS_VARIABLE] = json.dumps(dataclasses.asdict(settings))
    uvicorn.run("adapter.service.commands:app_from_environment", factory=True, workers=settings.workers, **options)
    return EXIT_OK


def app_from_environment():
    """The app of one `oligo serve --workers N` process."""
    from .http import create_app  # before logging is set up, as in serve()

    _log_at_info()
    return create_app(Settings(**json.loads(os.environ[SETTINGS_VARIABLE])))


def listen(settings: Settings, host: str, port: int) -> int:
    """The DICOM listener until SIGTERM or Ctrl-C, with the assessment worker; with an EHR configured,
    the outbox worker as well."""
    import signal
    import threading

    from .assessor import Assessor
    from .delivery import Deliverer
    from .dimse import Listener, ListenerOptions, serve_until

    _log_at_info()
    store = open_store(settings)
    deliverer = Deliverer(store, settings) if settings.ehr_base_url else None
    assessor = Assessor(store, settings, on_delivery=deliverer.wake if deliverer else None)
    options = ListenerOptions(
        ae_title=settings.listen_ae_title.strip(), host=host, port=port,
        allowed_calling_aets=settings.allowed_calling_aets(), max_associations=settings.listen_max_associations,
        acse_timeout=settings.listen_acse_timeout, dimse_timeout=settings.listen_dimse_timeout,
        network_timeout=settings.listen_network_timeout)

    def wake_assessor(result) -> None:
        if result.queued:
            assessor.wake()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    listener = Listener(store, options, on_stored=wake_assessor)
    workers = [w for w in (assessor, deliverer) if w]
    for worker in workers:
        worker.start()
    try:
        serve_until(listener, stop)
    except OSError as exc:  # the port is taken or not ours to bind
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    finally:
        for worker in workers:
            worker.stop()
        store.close()
    return EXIT_OK
