"""Small readers of SR content items, shared by the pydicom and the fast path.

Every value is fetched by tag through `value_of`, so that the walker works on a pydicom Dataset and on
a `dicom_fast.FastDataset` alike; strings come back stripped, codes SRT->SCT normalised. Each reader
takes the FastDataset branch first, reading the dictionary directly: nearly every file goes that way,
and a large SR asks for hundreds of thousands of values.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pydicom
from pydicom import Dataset

from .. import tables
from ..model import Code
from . import dicom_tags as tag
from .dicom_fast import FastDataset, NeedsPydicom, decode


def value_of(ds: Dataset | FastDataset, key: int):
    """`ds[key].value` (key: a tag from dicom_tags), or None when absent; a FastDataset value is decoded
    on first use (through the decode cache unless it is long: a hostile file must not fill memory)."""
    if type(ds) is FastDataset:
        entry = ds.get(key)
        if entry is None or type(entry) is list:
            return entry
        if len(entry[1]) > 1024:  # free text: decoded each time, not held by the decode cache (see decode)
            return decode.__wrapped__(entry[0], entry[1], ds.encoding)
        return decode(entry[0], entry[1], ds.encoding)
    try:
        return ds[key].value
    except KeyError:
        return None


def children(item: Dataset | FastDataset):
    """The content items under an item (its ContentSequence), or None."""
    if type(item) is FastDataset:
        items = item.get(tag.CONTENT_SEQUENCE)
        if items is None or type(items) is list:
            return items
    return value_of(item, tag.CONTENT_SEQUENCE)


def clean_text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def code_of(sequence) -> Code | None:
    """The first code of a code sequence (CodeValue, else LongCodeValue, else URNCodeValue)."""
    if not sequence:
        return None
    item = sequence[0]
    if type(item) is not FastDataset:
        return _code(item)
    if item.code is None:  # not worked out yet (or no code, worked out again: rare)
        long_value, urn_value = item.get(tag.LONG_CODE_VALUE), item.get(tag.URN_CODE_VALUE)
        entries = (item.get(tag.CODE_VALUE), long_value, urn_value, item.get(tag.CODING_SCHEME_DESIGNATOR),
                   item.get(tag.CODE_MEANING), item.encoding)
        try:  # cached unless a value may be long (those two VRs have no length limit)
            item.code = _fast_code(*entries) if long_value is None and urn_value is None else _code(item)
        except TypeError:  # an element holding a sequence where text belongs: pydicom decides
            raise NeedsPydicom("a code element holding a sequence") from None
    return item.code


def _code(item: Dataset | FastDataset) -> Code | None:
    value = _field(item, tag.CODE_VALUE) or _field(item, tag.LONG_CODE_VALUE) or _field(item, tag.URN_CODE_VALUE)
    if value is None:
        return None
    scheme, meaning = _field(item, tag.CODING_SCHEME_DESIGNATOR) or "", _field(item, tag.CODE_MEANING) or ""
    return tables.normalise_code(Code(value, scheme, meaning))


def _field(item: Dataset | FastDataset, key: int) -> str | None:
    value = value_of(item, key)
    if type(value) is list and type(item) is FastDataset:
        raise TypeError("a sequence where text belongs")
    return clean_text(value)


@lru_cache(maxsize=8192)
def _fast_code(value, long_value, urn_value, scheme, meaning, encoding: str) -> Code | None:
    """code_of for the fast path, cached on the raw (VR, bytes) entries: SRs repeat their codes, also
    in items that are not shared."""
    def text(entry):
        return clean_text(decode(entry[0], entry[1], encoding)) if entry is not None else None

    code_value = text(value) or text(long_value) or text(urn_value)
    if code_value is None:
        return None
    return tables.normalise_code(Code(code_value, text(scheme) or "", text(meaning) or ""))


def concept_of(item: Dataset | FastDataset) -> Code | None:
    if type(item) is FastDataset:
        sequence = item.get(tag.CONCEPT_NAME_CODE_SEQUENCE)
        if sequence is None or type(sequence) is list:
            return code_of(sequence)
    return code_of(value_of(item, tag.CONCEPT_NAME_CODE_SEQUENCE))


def head_of(item: Dataset | FastDataset) -> tuple[str | None, Code | None, tuple[str, str] | None]:
    """A content item's value type, concept name and the concept's (scheme, value)."""
    if type(item) is FastDataset:
        head = item.head
        if head is None:
            vt, concept = value_of(item, tag.VALUE_TYPE), concept_of(item)
            head = item.head = (vt, concept, (concept.scheme, concept.value) if concept else None)
        return head
    vt, concept = value_of(item, tag.VALUE_TYPE), concept_of(item)
    return vt, concept, (concept.scheme, concept.value) if concept else None


def concept_key(item: Dataset | FastDataset) -> tuple[str, str] | None:
    concept = concept_of(item)
    return (concept.scheme, concept.value) if concept else None


def value_code(item: Dataset | FastDataset) -> Code | None:
    if type(item) is FastDataset:
        sequence = item.get(tag.CONCEPT_CODE_SEQUENCE)
        if sequence is None or type(sequence) is list:
            return code_of(sequence)
    return code_of(value_of(item, tag.CONCEPT_CODE_SEQUENCE))


def template_id(item: Dataset | FastDataset) -> str | None:
    templates = value_of(item, tag.CONTENT_TEMPLATE_SEQUENCE)
    return clean_text(value_of(templates[0], tag.TEMPLATE_IDENTIFIER)) if templates else None


def numeric_string(mv: Dataset | FastDataset) -> str | None:
    """The value as written (DS keeps its text), so no float rounding enters the model."""
    element = value_of(mv, tag.NUMERIC_VALUE)
    if element is None:
        floating = value_of(mv, tag.FLOATING_POINT_VALUE)
        return repr(float(floating)) if floating is not None else None
    if type(element) is str:  # the fast path's text (pydicom gives a DSfloat or DSdecimal)
        return clean_text(element)
    original = getattr(element, "original_string", None)
    if original is not None:
        return str(original).strip()
    if isinstance(element, (list, tuple, pydicom.multival.MultiValue)):
        element = element[0] if element else None
    return clean_text(element)


def referenced_sop(item: Dataset | FastDataset) -> str | None:
    refs = value_of(item, tag.REFERENCED_SOP_SEQUENCE)
    return clean_text(value_of(refs[0], tag.REFERENCED_SOP_INSTANCE_UID)) if refs else None


def selected_from(scoord: Dataset | FastDataset) -> str | None:
    for child in children(scoord) or ():
        if value_of(child, tag.VALUE_TYPE) == "IMAGE":
            return referenced_sop(child)
    return None


def evidence_studies(ds: Dataset | FastDataset) -> list[str]:
    studies: list[str] = []
    for item in value_of(ds, tag.CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE) or ():
        uid = clean_text(value_of(item, tag.STUDY_INSTANCE_UID))
        if uid and uid not in studies:
            studies.append(uid)
    return studies


def predecessors(ds: Dataset | FastDataset) -> tuple[str, ...]:
    uids: list[str] = []
    for study in value_of(ds, tag.PREDECESSOR_DOCUMENTS_SEQUENCE) or ():
        for series in value_of(study, tag.REFERENCED_SERIES_SEQUENCE) or ():
            for sop in value_of(series, tag.REFERENCED_SOP_SEQUENCE) or ():
                uid = clean_text(value_of(sop, tag.REFERENCED_SOP_INSTANCE_UID))
                if uid:
                    uids.append(uid)
    return tuple(uids)


def parse_date(text: str | None) -> dt.date | None:
    if not text:
        return None
    digits = text.replace("-", "").replace(".", "").strip()[:8]
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except (ValueError, IndexError):
        return None


def parse_time(text: str | None) -> dt.time | None:
    if not text:
        return None
    digits = text.replace(":", "").strip()
    whole, _, fraction = digits.partition(".")
    try:
        hour = int(whole[0:2])
        minute = int(whole[2:4] or 0)
        second = int(whole[4:6] or 0)
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return dt.time(hour, minute, min(second, 59), micro)
    except (ValueError, IndexError):
        return None
