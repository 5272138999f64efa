"""FHIR output (DESIGN.md §5.5): the transaction Bundle with the DiagnosticReport, and the spider plot.

    bundle = to_fhir(assessment, version="R4")     # dict, validated; resend-safe (conditional creates)
    text = bundle_json(bundle)                     # canonical JSON text
    png = spider_png(assessment)                   # PNG bytes
"""

from .codes import code_system
from .fhir import VERSIONS, EmitOptions, bundle_json, to_fhir
from .plot import spider_png, spider_series
from .validate import BundleError, validate

__all__ = ["VERSIONS", "BundleError", "EmitOptions", "bundle_json", "code_system", "spider_png", "spider_series",
           "to_fhir", "validate"]
