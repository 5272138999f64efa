"""DICOM SR input: a path, Part 10 bytes, DICOM JSON or a pydicom Dataset -> `Report`.

Part 10 bytes go through the fast reader (dicom_fast) when it covers them and through pydicom
otherwise; DICOM JSON through a lenient loader (dicom_json). Either way the same walker (tid1500)
reads the tree, so the Report does not depend on the path taken.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import warnings as pywarnings
from collections.abc import Iterable
from dataclasses import replace

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ..errors import InputError
from ..model import Report
from . import dicom_fast
from . import dicom_tags as tag
from .dicom_json import dataset_from_dicom_json, looks_like_dicom_json
from .limits import DEFAULT_LIMITS, ReadLimits, too_deep_to_parse
from .sr_items import clean_text, value_of
from .tid1500 import MeasurementReportReader

# SOP classes that can carry TID 1500 (STANDARDS.md §1.1).
MEASUREMENT_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_PYDICOM_SEE_ALSO = re.compile(r"Please see <[^>]*> for allowed values for each VR\.?")


# --- entry points ------------------------------------------------------------------------------------


def read_sr(source: str | os.PathLike | bytes | Dataset | dict, *, name: str | None = None,
            limits: ReadLimits = DEFAULT_LIMITS) -> Report:
    """Read one TID 1500 SR from a path, Part 10 or DICOM JSON bytes, a DICOM JSON dict or a Dataset.

    Raises `InputError` (one line: what the input is and why it cannot be used) for anything that
    does not yield at least one usable measurement group, or whose content tree exceeds `limits`
    (depth, item count); never another exception for bad input.
    """
    label = name or _describe(source)
    if isinstance(source, Dataset):
        return report_from_dataset(source, label=label, limits=limits)
    if isinstance(source, dict):
        return report_from_dataset(*_from_json_obj(source, label), label=label, limits=limits)
    data = _read_bytes(source, label)
    if data.lstrip()[:1] in (b"{", b"["):
        return report_from_dataset(*_from_json_bytes(data, label), label=label, limits=limits)
    try:  # the fast path; it steps aside for anything pydicom must read (see dicom_fast)
        return report_from_dataset(_fast_parse(data, label), label=label, limits=limits)
    except dicom_fast.NeedsPydicom:
        pass
    return report_from_dataset(*_from_part10(data, label), label=label, limits=limits)


def _fast_parse(data: bytes, label: str) -> dicom_fast.FastDataset:
    try:
        return dicom_fast.parse(data)
    except RecursionError:
        raise too_deep_to_parse(label, "a DICOM file with sequences") from None
    except (struct.error, IndexError, ValueError) as exc:  # framing the fast reader did not expect: pydicom decides
        raise dicom_fast.NeedsPydicom(str(exc)) from None


def _read_bytes(source: str | os.PathLike | bytes, label: str) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InputError(label, f"cannot be read ({exc.strerror or exc})") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise TypeError(f"read_sr takes a path, bytes, a DICOM JSON dict or a pydicom Dataset, not {type(source)}")
    if not data:
        raise InputError(label, "is empty")
    return data


def _from_json_bytes(data: bytes, label: str) -> tuple[Dataset, list[str]]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(label, f"is not valid JSON ({exc})") from None
    except RecursionError:
        raise too_deep_to_parse(label, "JSON") from None
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    return _from_json_obj(obj, label)


def _from_json_obj(obj: object, label: str) -> tuple[Dataset, list[str]]:
    if isinstance(obj, dict) and "resourceType" in obj:
        raise InputError(label, f"is a FHIR {obj.get('resourceType')} resource, not a DICOM SR")
    if isinstance(obj, list):
        raise InputError(label, f"is a JSON array of {len(obj)} items; one DICOM JSON dataset was expected")
    if not looks_like_dicom_json(obj):
        raise InputError(label, "is JSON but neither DICOM JSON (PS3.18) nor FHIR")
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        try:
            dataset, repairs = dataset_from_dicom_json(obj)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InputError(label, f"is DICOM JSON that cannot be decoded ({exc})") from None
        except RecursionError:
            raise too_deep_to_parse(label, "DICOM JSON") from None
    return dataset, repairs + [str(w.message) for w in caught]


def _from_part10(data: bytes, label: str) -> tuple[Dataset, list[str]]:
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError:
            # Files without the 128-byte preamble and 'DICM' exist (old PACS exports); try once more.
            try:
                dataset = pydicom.dcmread(io.BytesIO(data), force=True)
            except Exception as exc:  # pydicom raises many types on garbage
                raise InputError(label, f"is not a DICOM file ({type(exc).__name__})") from None
            if "SOPClassUID" not in dataset:
                raise InputError(label, "is not a DICOM file (no DICM prefix and no SOP Class UID)")
        except Exception as exc:
            raise InputError(label, f"is a damaged or truncated DICOM file ({_short(exc)})") from None
    return dataset, [str(w.message) for w in caught]


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Dataset):
        return f"dataset {source.get('SOPInstanceUID', '(no SOP Instance UID)')}"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return "<DICOM JSON>"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# --- document level ----------------------------------------------------------------------------------


def report_from_dataset(ds: Dataset | dicom_fast.FastDataset, notes: Iterable[str] = (), *, label: str,
                        limits: ReadLimits = DEFAULT_LIMITS) -> Report:
    """Check that a dataset is a TID 1500 SR and turn it into a Report."""
    try:
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            warnings: list[str] = []
            sop_class = _check_sop_class(ds, label, warnings)
            report = MeasurementReportReader(ds, label, sop_class, warnings, limits).read()
    except (InputError, dicom_fast.NeedsPydicom):
        raise
    except (RecursionError, MemoryError):
        raise InputError(label, "has a content tree too deep or too large to read") from None
    except Exception as exc:  # damaged elements surface lazily, on first access
        raise InputError(label, f"has damaged content that cannot be decoded ({_short(exc)})") from None
    extra = list(notes) + [str(w.message) for w in caught]
    return _with_warnings(report, extra) if extra else report


def _with_warnings(report: Report, extra: list[str]) -> Report:
    merged = list(report.warnings)
    for message in extra:
        message = _PYDICOM_SEE_ALSO.sub("", " ".join(message.split())).strip()
        if message not in merged:
            merged.append(message)
    return replace(report, warnings=tuple(merged))


def _check_sop_class(ds: Dataset, label: str, warn: list[str]) -> str | None:
    sop_class = clean_text(value_of(ds, tag.SOP_CLASS_UID))
    if sop_class is None:
        warn.append("no SOP Class UID; read as an SR because it has a content tree")
        return None
    if sop_class in MEASUREMENT_SR_CLASSES:
        return sop_class
    name = UID(sop_class).name if UID(sop_class).is_valid else sop_class
    if sop_class == BASIC_TEXT_SR:
        raise InputError(label, "is a Basic Text SR, which cannot hold TID 1500 measurements")
    if sop_class.startswith(SR_CLASS_PREFIX):
        raise InputError(label, f"is a {name}, not a measurement SR (Enhanced, Comprehensive, Comprehensive 3D "
                                "or Extensible SR)")
    raise InputError(label, f"is not a Structured Report but a {name} object")
