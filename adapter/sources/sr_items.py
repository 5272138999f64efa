"""Small readers of SR content items, shared by the pydicom and the fast path.

Every value is fetched through `value_of`, by tag, so that the walker works on a pydicom Dataset and on
a `dicom_fast.FastDataset` alike; strings come back stripped, codes SRT->SCT normalised.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pydicom
from pydicom import Dataset

from .. import tables
from ..model import Code
from .dicom_fast import FastDataset, decode

_TAGS: dict[str, int] = {}


def value_of(ds: Dataset | FastDataset, keyword: str):
    """`ds.get(keyword)` by tag: skips pydicom's keyword machinery, which dominates a large tree walk."""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = pydicom.datadict.tag_for_keyword(keyword)
    if type(ds) is FastDataset:
        entry = ds.get(tag)
        if entry is None or type(entry) is list:
            return entry
        return decode(entry[0], entry[1], ds.encoding)
    try:
        return ds[tag].value
    except KeyError:
        return None



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
    if type(item) is FastDataset:
        try:
            return item.code
        except AttributeError:
            item.code = _fast_code(item.get(_CODE_VALUE), item.get(_LONG_CODE_VALUE), item.get(_URN_CODE_VALUE),
                                   item.get(_SCHEME), item.get(_MEANING), item.encoding)
            return item.code
    value = _field(item, "CodeValue") or _field(item, "LongCodeValue") or _field(item, "URNCodeValue")
    if value is None:
        return None
    return make_code(value, _field(item, "CodingSchemeDesignator") or "", _field(item, "CodeMeaning") or "")


def _field(item, keyword: str) -> str | None:
    return clean_text(value_of(item, keyword))


_CODE_VALUE, _SCHEME, _MEANING = 0x00080100, 0x00080102, 0x00080104
_LONG_CODE_VALUE, _URN_CODE_VALUE = 0x00080119, 0x00080120


@lru_cache(maxsize=8192)
def _fast_code(value, long_value, urn_value, scheme, meaning, encoding: str) -> Code | None:
    """code_of for the fast path, cached on the raw (VR, bytes) entries: an SR repeats its codes."""
    def text(entry):
        return clean_text(decode(entry[0], entry[1], encoding)) if entry is not None else None

    code_value = text(value) or text(long_value) or text(urn_value)
    if code_value is None:
        return None
    return make_code(code_value, text(scheme) or "", text(meaning) or "")


@lru_cache(maxsize=4096)
def make_code(value: str, scheme: str, meaning: str) -> Code:
    return tables.normalise_code(Code(value, scheme, meaning))


def concept_of(item: Dataset) -> Code | None:
    return code_of(value_of(item, "ConceptNameCodeSequence"))


def concept_key(item: Dataset) -> tuple[str, str] | None:
    concept = concept_of(item)
    return (concept.scheme, concept.value) if concept else None


def value_code(item: Dataset) -> Code | None:
    return code_of(value_of(item, "ConceptCodeSequence"))


def template_id(item: Dataset) -> str | None:
    templates = value_of(item, "ContentTemplateSequence")
    return clean_text(value_of(templates[0], "TemplateIdentifier")) if templates else None


def numeric_string(mv: Dataset) -> str | None:
    """The value as written (DS keeps its text), so no float rounding enters the model."""
    element = value_of(mv, "NumericValue")
    if element is None:
        floating = value_of(mv, "FloatingPointValue")
        return repr(float(floating)) if floating is not None else None
    original = getattr(element, "original_string", None)
    if original is not None:
        return str(original).strip()
    if isinstance(element, (list, tuple, pydicom.multival.MultiValue)):
        element = element[0] if element else None
    return clean_text(element)


def referenced_sop(item: Dataset) -> str | None:
    refs = value_of(item, "ReferencedSOPSequence")
    return clean_text(value_of(refs[0], "ReferencedSOPInstanceUID")) if refs else None


def selected_from(scoord: Dataset) -> str | None:
    for child in value_of(scoord, "ContentSequence") or ():
        if value_of(child, "ValueType") == "IMAGE":
            return referenced_sop(child)
    return None


def evidence_studies(ds: Dataset) -> list[str]:
    studies: list[str] = []
    for item in value_of(ds, "CurrentRequestedProcedureEvidenceSequence") or ():
        uid = clean_text(value_of(item, "StudyInstanceUID"))
        if uid and uid not in studies:
            studies.append(uid)
    return studies


def predecessors(ds: Dataset) -> tuple[str, ...]:
    uids: list[str] = []
    for study in value_of(ds, "PredecessorDocumentsSequence") or ():
        for series in value_of(study, "ReferencedSeriesSequence") or ():
            for sop in value_of(series, "ReferencedSOPSequence") or ():
                uid = clean_text(value_of(sop, "ReferencedSOPInstanceUID"))
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
