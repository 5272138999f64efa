"""DICOM JSON (PS3.18 §F) to a pydicom Dataset, lenient where real files break the letter.

pydicom's `Dataset.from_json` is strict: a single value written as a bare string instead of a
one-element list (the HL7 DICOM-SR IG example does this for AccessionNumber) raises TypeError.
We repair the shapes that have one obvious meaning and report each repair as a warning.
"""

from __future__ import annotations

import re

from pydicom import Dataset

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def looks_like_dicom_json(obj: object) -> bool:
    """A dict keyed by 8-hex-digit tags whose values carry a "vr"."""
    if not isinstance(obj, dict) or not obj:
        return False
    keys = list(obj)[:5]
    return all(_TAG.match(k) and isinstance(obj[k], dict) and "vr" in obj[k] for k in keys)


def _repair(obj: dict, path: str, repairs: list[str]) -> dict:
    fixed: dict = {}
    for tag, element in obj.items():
        if not isinstance(element, dict):
            repairs.append(f"{path}{tag}: element is not an object; dropped")
            continue
        element = dict(element)
        vr = element.get("vr")
        if "Value" in element:
            value = element["Value"]
            if not isinstance(value, list):
                repairs.append(f"{path}{tag}: 'Value' is not a list; read as a one-element list")
                value = [value]
            if vr == "SQ":
                value = [_repair(item, f"{path}{tag}>", repairs) if isinstance(item, dict) else item for item in value]
                if any(not isinstance(item, dict) for item in value):
                    repairs.append(f"{path}{tag}: sequence item is not an object; dropped")
                    value = [item for item in value if isinstance(item, dict)]
            elif vr == "PN":
                if any(isinstance(v, str) for v in value):
                    repairs.append(f"{path}{tag}: person name given as a string; read as Alphabetic")
                value = [{"Alphabetic": v} if isinstance(v, str) else v for v in value]
            element["Value"] = value
        fixed[tag] = element
    return fixed


def dataset_from_dicom_json(obj: dict) -> tuple[Dataset, list[str]]:
    """Return the dataset and a list of the repairs made (empty for conformant input)."""
    repairs: list[str] = []
    fixed = _repair(obj, "", repairs)
    return Dataset.from_json(fixed), repairs
