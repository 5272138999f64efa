"""oligo-adapter: lesion measurements from DICOM SR (TID 1500) and FHIR to a per-lesion timeline,
an oligo/polyprogression assessment and a FHIR DiagnosticReport.

Stable API (DESIGN.md §5.2)::

    report = adapter.read_sr(path_or_bytes)   # -> Report; raises adapter.InputError
    results = adapter.assess(reports, preset="consensus-5")   # -> list[PatientAssessment]
    reports = adapter.read_fhir(path_or_json) # -> list[Report]; raises adapter.InputError
    bundle = adapter.to_fhir(results[0], version="R4")  # -> dict, a FHIR transaction Bundle
"""

from .assess import PatientAssessment, assess
from .emit import to_fhir
from .errors import InputError
from .model import Code, Finding, Measurement, MeasurementKind, Report, Role
from .sources import read_fhir, read_sr

__version__ = "0.1.0"

__all__ = [
    "assess",
    "Code",
    "Finding",
    "InputError",
    "Measurement",
    "MeasurementKind",
    "PatientAssessment",
    "Report",
    "Role",
    "read_fhir",
    "read_sr",
    "to_fhir",
]
