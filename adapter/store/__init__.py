"""Persistence (SQLAlchemy 2, Alembic): received documents as received, normalised reports,
assessments with their FHIR Bundles, and the outbox of deliveries to the EHR.

    store = Store.open("oligo.sqlite3")          # or postgresql://user@host/db
    result = store.ingest(data, label="scan.dcm")   # stored; its patient queued for assessment
    store.drain()                                    # assess every queued patient (or: latest_assessment(id))
"""

from .bundle import bundle_of
from .database import normalise_url
from .queue import Assessed, AssessmentFailed
from .store import IngestResult, Store

__all__ = ["Assessed", "AssessmentFailed", "IngestResult", "Store", "bundle_of", "normalise_url"]
