"""`oligo listen`: a DICOM C-STORE SCP (pynetdicom) for PACS, viewers and DICOM routers.

Each received SR takes the same path as `POST /dicom`: the store's ingest (stored durably, its patient
queued for assessment in the same transaction); the assessment worker assesses the patient and the outbox
worker delivers the new assessment to the EHR, both off the association. The C-STORE is answered only after ingest committed, so a Success status means the
SR is in the database; a resend of the same SR is harmless.

DIMSE outcomes:
- SOP classes other than the four SR storage classes the reader takes (Enhanced, Comprehensive,
  Comprehensive 3D, Extensible) are refused at association (presentation context rejected: abstract
  syntax not supported); C-ECHO (Verification) is accepted.
- A calling AE title outside the allowed list, or a called AE title that is not ours: the association
  is rejected (rejected permanent, calling/called AE title not recognised).
- An SR the reader cannot use (not TID 1500, no measurements, no patient id, undecodable):
  0xC000 "Error: cannot understand", ErrorComment says why; nothing is stored.
- The store cannot be reached: 0xA700 "Refused: out of resources"; the sender may try again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pydicom import Dataset
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (Comprehensive3DSRStorage, ComprehensiveSRStorage, EnhancedSRStorage,
                                  ExtensibleSRStorage, Verification)

from ..errors import InputError
from ..store import Store

log = logging.getLogger("oligo.listen")

SR_STORAGE_CLASSES = (EnhancedSRStorage, ComprehensiveSRStorage, Comprehensive3DSRStorage, ExtensibleSRStorage)
SUCCESS = 0x0000
CANNOT_UNDERSTAND = 0xC000  # PS3.4 Table B.2-1, Error: Cannot understand (Cxxx)
OUT_OF_RESOURCES = 0xA700  # PS3.4 Table B.2-1, Refused: Out of Resources (A7xx)
ERROR_COMMENT_MAX = 64  # ErrorComment (0000,0902) is LO


@dataclass(frozen=True)
class ListenerOptions:
    """How the listener presents itself and what it lets in; README.md lists the settings."""

    ae_title: str = "OLIGO"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_calling_aets: tuple[str, ...] = ()  # empty: any calling AE title
    require_called_aet: bool = True  # an association addressed to another AE title is rejected
    max_associations: int = 10
    acse_timeout: float = 30.0
    dimse_timeout: float = 60.0
    network_timeout: float = 60.0


def error_comment(text: str) -> str:
    """The reason in the 64 characters an LO holds (the full reason is in the log)."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_COMMENT_MAX else text[:ERROR_COMMENT_MAX - 3] + "..."


class Listener:
    """A running C-STORE SCP; `start()` returns once it accepts associations, `stop()` closes it."""

    def __init__(self, store: Store, options: ListenerOptions, on_stored=None):
        self.store, self.options = store, options
        self.on_stored = on_stored  # called with each IngestResult (e.g. to wake the assessment worker)
        self._server = None
        self._ae = self._application_entity()

    def _application_entity(self) -> AE:
        options = self.options
        ae = AE(ae_title=options.ae_title)
        for sop_class in SR_STORAGE_CLASSES:
            ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, DEFAULT_TRANSFER_SYNTAXES)
        ae.require_calling_aet = list(options.allowed_calling_aets)
        ae.require_called_aet = options.require_called_aet
        ae.maximum_associations = options.max_associations
        ae.acse_timeout = options.acse_timeout
        ae.dimse_timeout = options.dimse_timeout
        ae.network_timeout = options.network_timeout
        return ae

    def start(self) -> Listener:
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda _event: SUCCESS),
                    (evt.EVT_REJECTED, self._on_rejected)]
        self._server = self._ae.start_server((self.options.host, self.options.port), block=False,
                                             evt_handlers=handlers)
        log.info("listening as AE %s on %s:%s (%s)", self.options.ae_title, self.options.host,
                 self._server.server_address[1], self.store.describe())
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # --- events ------------------------------------------------------------------------------------

    def _on_store(self, event) -> Dataset | int:
        """Ingest the SR as received (Part 10 bytes, not decoded here) and answer after the commit."""
        calling = event.assoc.requestor.ae_title
        instance = event.request.AffectedSOPInstanceUID
        label = f"C-STORE from {calling} ({instance})"
        try:
            result = self.store.ingest(event.encoded_dataset(include_meta=True), label=label,
                                       media_type="application/dicom")
        except InputError as exc:
            log.warning("%s refused: %s", label, exc.reason)
            return _status(CANNOT_UNDERSTAND, exc.reason)
        except Exception as exc:  # the database is down or full: the sender may retry later
            log.exception("%s could not be stored", label)
            return _status(OUT_OF_RESOURCES, f"the store cannot take it now ({exc.__class__.__name__})")
        log.info("%s %s: assessment %s", label, result.status, result.assessment)
        if self.on_stored is not None:
            self.on_stored(result)
        return SUCCESS

    def _on_rejected(self, event) -> None:
        requestor = event.assoc.requestor
        log.warning("association from %s at %s rejected: %s", requestor.ae_title, requestor.address,
                    self.rejection_reason(requestor.ae_title, requestor.primitive.called_ae_title))

    def rejection_reason(self, calling: str, called: str) -> str:
        """Why pynetdicom refused an association, in the order it checks (for the log)."""
        options = self.options
        if options.require_called_aet and called.strip() != options.ae_title:
            return f"called AE title {called.strip()!r} is not ours ({options.ae_title})"
        if options.allowed_calling_aets and calling.strip() not in options.allowed_calling_aets:
            return "calling AE title not allowed"
        return f"more than {options.max_associations} concurrent associations"


def _status(code: int, comment: str) -> Dataset:
    answer = Dataset()
    answer.Status = code
    answer.ErrorComment = error_comment(comment)
    return answer


def serve_until(listener: Listener, stop: threading.Event) -> None:
    """Run until `stop` is set (SIGTERM or Ctrl-C in `oligo listen`)."""
    listener.start()
    try:
        stop.wait()
    finally:
        listener.stop()
