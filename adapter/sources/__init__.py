"""Sources: bytes or JSON in, `Report`s out. One module per input format."""

from .dicom_sr import read_sr

__all__ = ["read_sr"]
