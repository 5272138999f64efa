"""Persistence (SQLAlchemy 2, Alembic): received documents as received, normalised reports,
assessments with their FHIR Bundles, and the outbox of deliveries to the EHR.

    store = Store.open("oligo.sqlite3")          # or postgresql://user@host/db
    result = store.ingest(data, label="scan.dcm")
"""

from .bundle import bundle_of
from .database import normalise_url
from .store import IngestResult, Store

__all__ = ["IngestResult", "Store", "bundle_of", "normalise_url"]
