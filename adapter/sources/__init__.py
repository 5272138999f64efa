"""Sources: bytes or JSON in, `Report`s out. One module per input format."""

from .dicom_sr import read_sr
from .fhir_load import looks_like_fhir
from .fhir_obs import read_fhir

__all__ = ["looks_like_fhir", "read_fhir", "read_sr"]
