"""DICOM SR (TID 1500 Measurement Report) -> `Report`.

A tolerant walk over the pydicom content tree, written for the files that exist rather than the ones
the standard describes: groups with or without template ids, under Imaging Measurements or Derived
Imaging Measurements; SCOORD under the group or under a NUM; Finding Site as HAS CONCEPT MOD or
CONTAINS; legacy SRT codes; NUMs without a value; sizes in uncalibrated units. Every deviation becomes a
warning on the Report; only input that cannot yield a single usable group raises `InputError`.
See STANDARDS.md §2-3 and PEERS.md §3-4 for the variations and where they come from.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import warnings as pywarnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from .. import tables
from ..errors import InputError
from ..model import (
    Code,
    Finding,
    IdentifierKind,
    Measurement,
    MeasurementKind,
    Provenance,
    Qualitative,
    Report,
    Role,
    SourceKind,
    TimePointContext,
)
from . import dicom_fast
from .dicom_json import dataset_from_dicom_json, looks_like_dicom_json

# SOP classes that can carry TID 1500 (STANDARDS.md §1.1).
MEASUREMENT_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."

# Document titles of TID 1500 (CID 7021).
REPORT_TITLES = {("DCM", "126000"), ("DCM", "126001"), ("DCM", "126002"), ("DCM", "126003")}

# Concepts of the template's own structure (TID 1500/1501/1410/1411, TID 1502, TID 1204, TID 1600).
IMAGING_MEASUREMENTS = ("DCM", "126010")
DERIVED_MEASUREMENTS = ("DCM", "126011")
MEASUREMENT_GROUP = ("DCM", "125007")
IMAGE_LIBRARY = ("DCM", "111028")
TRACKING_ID = ("DCM", "112039")
TRACKING_UID = ("DCM", "112040")
FINDING = ("DCM", "121071")
FINDING_CATEGORY = ("SCT", "276214006")
FINDING_SITE = ("SCT", "363698007")
LATERALITY = ("SCT", "272741003")
TOPOGRAPHICAL_MODIFIER = ("SCT", "106233006")
METHOD = ("SCT", "370129005")
DERIVATION = ("DCM", "121401")
COMMENT = ("DCM", "121106")
BASELINE_CATEGORY = ("DCM", "112016")
CURRENT_RESPONSE = ("DCM", "112048")
TIME_POINT = ("UMLS", "C2348792")
SUBJECT_TIME_POINT_ID = ("DCM", "126070")
PROTOCOL_TIME_POINT_ID = ("DCM", "126071")
TIME_POINT_TYPE = ("DCM", "126072")
TIME_POINT_ORDER = ("DCM", "126073")
STUDY_DATE = ("DCM", "111060")
STUDY_TIME = ("DCM", "111061")
ACQUISITION_DATE = ("DCM", "126201")
MODALITY = ("DCM", "121139")
PERSON_OBSERVER = ("DCM", "121008")
DEVICE_OBSERVER_UID = ("DCM", "121012")
DEVICE_OBSERVER_NAME = ("DCM", "121013")
# Group context that is neither a finding property nor an evaluation.
GROUP_CONTEXT_SKIP = {
    ("NCIt", "C67447"),  # Activity Session
    ("DCM", "111001"), ("DCM", "111002"), ("DCM", "111003"), ("DCM", "111000"), ("DCM", "122405"),  # algorithm
    ("DCM", "130400"),  # Geometric purpose of region
    ("DCM", "128741"),  # Longitudinal temporal event type
}
ROLE_BY_VALUE = {
    ("DCM", "112074"): Role.TARGET,
    ("DCM", "112075"): Role.NON_TARGET,
    ("DCM", "112076"): Role.NON_LESION,
}
MAX_UID_LENGTH = 64
_PYDICOM_SEE_ALSO = re.compile(r"Please see <[^>]*> for allowed values for each VR\.?")


# --- entry points ------------------------------------------------------------------------------------


def read_sr(source: str | os.PathLike | bytes | Dataset | dict, *, name: str | None = None) -> Report:
    """Read one TID 1500 SR from a path, Part 10 or DICOM JSON bytes, a DICOM JSON dict or a Dataset.

    Raises `InputError` (one line: what the input is and why it cannot be used) for anything that
    does not yield at least one usable measurement group; never another exception for bad input.
    """
    label = name or _describe(source)
    if isinstance(source, Dataset):
        return report_from_dataset(source, label=label)
    if isinstance(source, dict):
        return report_from_dataset(*_from_json_obj(source, label), label=label)
    data = _read_bytes(source, label)
    if data.lstrip()[:1] in (b"{", b"["):
        return report_from_dataset(*_from_json_bytes(data, label), label=label)
    try:  # the fast path; it steps aside for anything pydicom must read (see dicom_fast)
        return report_from_dataset(dicom_fast.parse(data), label=label)
    except dicom_fast.NeedsPydicom:
        pass
    return report_from_dataset(*_from_part10(data, label), label=label)


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


def report_from_dataset(ds: Dataset | dicom_fast.FastDataset, notes: Iterable[str] = (), *, label: str) -> Report:
    """Check that a dataset is a TID 1500 SR and turn it into a Report."""
    try:
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            report = _Reader(ds, label).read()
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
    sop_class = _text(_get(ds, "SOPClassUID"))
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


@dataclass
class _Reader:
    ds: Dataset
    label: str
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def read(self) -> Report:
        ds = self.ds
        sop_class = _check_sop_class(ds, self.label, self.warnings)
        self._check_root()
        library = _ImageLibrary()
        groups: list[tuple[Dataset, str]] = []
        root_tp: dict = {}
        observer = None
        for index, item in enumerate(_get(ds, "ContentSequence") or (), start=1):
            concept = _concept(item)
            key = (concept.scheme, concept.value) if concept else None
            vt = _get(item, "ValueType")
            if key in (IMAGING_MEASUREMENTS, DERIVED_MEASUREMENTS):
                groups += self._groups_in(item, str(index))
            elif key == MEASUREMENT_GROUP and vt == "CONTAINER":
                self.warn(f"measurement group at item {index} sits directly under the root; read anyway")
                groups.append((item, str(index)))
            elif key == IMAGE_LIBRARY:
                library.scan(item)
            elif key == PERSON_OBSERVER and observer is None:
                observer = _text(_get(item, "PersonName"))
            elif key in (DEVICE_OBSERVER_UID, DEVICE_OBSERVER_NAME) and observer is None:
                observer = str(_get(item, "UID") or _get(item, "TextValue") or "").strip() or None
            elif key in _TIME_POINT_KEYS:
                _time_point_item(item, key, root_tp)
        if not groups:
            raise InputError(self.label, "is a TID 1500 report without any measurement group")
        report_tp = _time_point(root_tp)
        findings = []
        for group, path in groups:
            finding = self._finding(group, path)
            if finding is not None:
                findings.append(finding)
        if not findings:
            raise InputError(
                self.label,
                f"is a TID 1500 report whose {len(groups)} measurement group(s) hold no usable measurement or "
                "evaluation",
            )
        if report_tp is None:
            report_tp = next((f.time_point for f in findings if f.time_point), None)
        return self._report(sop_class, library, observer, report_tp, tuple(findings))

    def _check_root(self) -> None:
        ds = self.ds
        concept = _concept(ds)
        template = _template_id(ds)
        is_title = concept is not None and (concept.scheme, concept.value) in REPORT_TITLES
        if _get(ds, "ValueType") not in (None, "CONTAINER") or not (is_title or template == "1500"):
            title = f"{concept.meaning or concept.value}" if concept else "no document title"
            raise InputError(self.label, f"has no TID 1500 Imaging Measurement Report (document title: {title})")
        if not is_title:
            self.warn(f"document title {concept} is not one of CID 7021; read as TID 1500 from its template id")
        if not _get(ds, "ContentSequence"):
            raise InputError(self.label, "is a TID 1500 report with an empty content tree")

    def _groups_in(self, container: Dataset, path: str) -> list[tuple[Dataset, str]]:
        found = []
        for index, item in enumerate(_get(container, "ContentSequence") or (), start=1):
            concept = _concept(item)
            if concept and (concept.scheme, concept.value) == MEASUREMENT_GROUP and _get(item, "ValueType") == "CONTAINER":
                found.append((item, f"{path}.{index}"))
        return found

    # --- header ------------------------------------------------------------------------------------

    def _report(self, sop_class, library: "_ImageLibrary", observer, time_point, findings) -> Report:
        ds = self.ds
        sr_study = _text(_get(ds, "StudyInstanceUID"))
        evidence_studies = _evidence_studies(ds)
        study_uid = sr_study
        if len(evidence_studies) == 1:
            study_uid = evidence_studies[0]
            if sr_study and sr_study != study_uid:
                self.warn("the SR is filed in a different study from the images it measures; "
                          "the measured study is used as the time point")
        elif len(evidence_studies) > 1:
            self.warn(f"the SR references images of {len(evidence_studies)} studies; its own study is used")
        for uid, what in ((study_uid, "Study Instance UID"), (_text(_get(ds, "SOPInstanceUID")), "SOP Instance UID")):
            if uid and len(uid) > MAX_UID_LENGTH:
                self.warn(f"{what} is {len(uid)} characters, over the DICOM limit of {MAX_UID_LENGTH}")
        date, time, source = self._imaging_date(library, sr_study == study_uid)
        patient_id = _text(_get(ds, "PatientID"))
        if not patient_id:
            self.warn("no Patient ID: this report cannot be placed on a patient's timeline")
        issuer = _text(_get(ds, "IssuerOfPatientID"))
        if not issuer:
            qualifiers = _get(ds, "IssuerOfPatientIDQualifiersSequence")
            if qualifiers:
                issuer = _text(_get(qualifiers[0], "UniversalEntityID"))
        content_date = _parse_date(_text(_get(ds, "ContentDate")))
        content_time = _parse_time(_text(_get(ds, "ContentTime")))
        sop_instance = _text(_get(ds, "SOPInstanceUID"))
        if not sop_instance:
            self.warn("no SOP Instance UID")
        return Report(
            source_kind=SourceKind.DICOM_SR,
            source_id=sop_instance or self.label,
            sop_class_uid=sop_class,
            patient_id=patient_id,
            patient_issuer=issuer,
            study_uid=study_uid,
            sr_study_uid=sr_study,
            series_uid=_text(_get(ds, "SeriesInstanceUID")),
            accession=_text(_get(ds, "AccessionNumber")),
            imaging_date=date,
            imaging_time=time,
            imaging_date_source=source,
            content_datetime=dt.datetime.combine(content_date, content_time or dt.time()) if content_date else None,
            modality=library.modality,
            completion_flag=_text(_get(ds, "CompletionFlag")),
            verification_flag=_text(_get(ds, "VerificationFlag")),
            preliminary_flag=_text(_get(ds, "PreliminaryFlag")),
            observer=observer,
            predecessors=_predecessors(ds),
            time_point=time_point,
            findings=findings,
            warnings=tuple(self.warnings),
        )

    def _imaging_date(self, library: "_ImageLibrary", sr_in_image_study: bool):
        """DESIGN.md §5.4: Image Library study date -> SR StudyDate -> ContentDate."""
        if len(library.study_dates) > 1:
            self.warn(f"the Image Library lists {len(library.study_dates)} study dates; the earliest is used")
        if library.study_dates:
            return min(library.study_dates), library.study_time, "image-library"
        ds = self.ds
        study_date = _parse_date(_text(_get(ds, "StudyDate")))
        if study_date:
            if not sr_in_image_study:
                self.warn("imaging date taken from the SR's own study, which is not the measured study")
            return study_date, _parse_time(_text(_get(ds, "StudyTime"))), "sr-study-date"
        if library.acquisition_dates:
            return min(library.acquisition_dates), None, "image-library-acquisition"
        content = _parse_date(_text(_get(ds, "ContentDate")))
        if content:
            self.warn("no study date: the SR content date is used as the imaging date")
            return content, None, "content-date"
        self.warn("no imaging date anywhere in the report")
        return None, None, None

    # --- groups ------------------------------------------------------------------------------------

    def _finding(self, group: Dataset, path: str) -> Finding | None:
        g = _GroupState()
        for index, item in enumerate(_get(group, "ContentSequence") or (), start=1):
            self._group_item(g, item, f"{path}.{index}")
        name = g.label or g.tracking_identifier or f"group at item {path}"
        if g.tracking_uid is None and g.num_tracking_uid:
            g.tracking_uid = g.num_tracking_uid
        if g.tracking_uid and len(g.tracking_uid) > MAX_UID_LENGTH:
            self.warn(f"{name}: Tracking UID is {len(g.tracking_uid)} characters, over the DICOM limit of "
                      f"{MAX_UID_LENGTH}; kept as given")
        if g.site is None and g.num_site is not None:
            g.site = g.num_site
        if not (g.measurements or g.role or g.response or g.qualitative or g.finding):
            self.warn(f"{name} holds no measurement, evaluation or coded finding; skipped")
            return None
        kind = tables.identifier_kind(g.tracking_identifier) if g.tracking_identifier else None
        anatomy = tables.anatomy_of(g.site)
        if anatomy.organ is None:  # e.g. Finding "Pulmonary metastasis" with no Finding Site
            anatomy = tables.anatomy_of(g.finding)
        is_lesion = not tables.is_structure(g.finding, g.category) and g.role is not Role.NON_LESION
        return Finding(
            tracking_uid=g.tracking_uid,
            tracking_identifier=g.tracking_identifier,
            identifier_kind=kind,
            label=g.label,
            finding=g.finding,
            finding_category=g.category,
            site=g.site,
            laterality=g.laterality,
            topographical_modifier=g.topographical_modifier,
            anatomy=anatomy,
            is_lesion=is_lesion,
            role=g.role,
            response=g.response,
            qualitative=tuple(g.qualitative),
            measurements=tuple(g.measurements),
            template=_template_id(group),
            method=g.method,
            time_point=_time_point(g.time_point),
            provenance=Provenance(path=path, observation_uid=_text(_get(group, "ObservationUID")),
                                  referenced_sop_instance_uid=g.ref_sop, graphic_type=g.graphic_type),
        )

    def _group_item(self, g: "_GroupState", item: Dataset, path: str) -> None:
        vt = _get(item, "ValueType")
        concept = _concept(item)
        key = (concept.scheme, concept.value) if concept else None
        if vt == "NUM":
            if key in _TIME_POINT_KEYS:
                _time_point_item(item, key, g.time_point)
            elif _get(item, "RelationshipType") in ("CONTAINS", None) and concept is not None:
                measurement = self._measurement(item, concept, path, g)
                if measurement is not None:
                    g.measurements.append(measurement)
            return
        if key == TRACKING_ID:
            text = _text(_get(item, "TextValue"))
            if g.tracking_identifier is None:
                g.tracking_identifier = text
            elif text and text != g.tracking_identifier:
                self.warn(f"two Tracking Identifiers in one group ({g.tracking_identifier!r}, {text!r}); "
                          "the first is used")
        elif key == TRACKING_UID:
            uid = _text(_get(item, "UID"))
            if g.tracking_uid is None:
                g.tracking_uid = uid
            elif uid and uid != g.tracking_uid:
                self.warn(f"two Tracking UIDs in one group ({g.tracking_uid}, {uid}); the first is used")
        elif key == FINDING and vt == "CODE":
            value = _value_code(item)
            if value is not None and tables.is_free_text_label(value):
                g.label = g.label or value.meaning.strip() or None
            elif value is not None:
                g.finding = g.finding or value
        elif key == FINDING_CATEGORY and vt == "CODE":
            g.category = g.category or _value_code(item)
        elif key == FINDING_SITE and vt == "CODE":
            value = _value_code(item)
            if value is not None and tables.is_free_text_label(value):
                g.label = g.label or value.meaning.strip() or None
            elif value is not None and g.site is None:
                g.site = value
                for child in _get(item, "ContentSequence") or ():
                    child_key = _key(child)
                    if child_key == LATERALITY:
                        g.laterality = g.laterality or _value_code(child)
                    elif child_key == TOPOGRAPHICAL_MODIFIER:
                        g.topographical_modifier = g.topographical_modifier or _value_code(child)
        elif key == LATERALITY and vt == "CODE":
            g.laterality = g.laterality or _value_code(item)
        elif key == METHOD and vt == "CODE":
            g.method = g.method or _value_code(item)
        elif key == COMMENT and vt == "TEXT":
            g.label = g.label or _text(_get(item, "TextValue"))
        elif key == BASELINE_CATEGORY and vt == "CODE":
            value = _value_code(item)
            role = ROLE_BY_VALUE.get((value.scheme, value.value)) if value else None
            if role is None:
                self.warn(f"Baseline Category value {value} is not one of CID 6145; role left unset")
            g.role = g.role or role
        elif key == CURRENT_RESPONSE and vt == "CODE":
            g.response = g.response or _value_code(item)
        elif key in _TIME_POINT_KEYS:
            _time_point_item(item, key, g.time_point)
        elif vt in ("SCOORD", "SCOORD3D"):
            g.graphic_type = g.graphic_type or _text(_get(item, "GraphicType"))
            g.ref_sop = g.ref_sop or _selected_from(item)
        elif vt == "IMAGE":
            g.ref_sop = g.ref_sop or _referenced_sop(item)
        elif key in GROUP_CONTEXT_SKIP or vt in ("UIDREF", "COMPOSITE", "CONTAINER"):
            pass
        elif vt == "CODE" and concept is not None:
            value = _value_code(item)
            if value is not None:
                g.qualitative.append(Qualitative(concept, value))
        elif vt == "TEXT" and concept is not None:
            text = _text(_get(item, "TextValue"))
            if text:
                g.qualitative.append(Qualitative(concept, text))

    def _measurement(self, item: Dataset, concept: Code, path: str, g: "_GroupState") -> Measurement | None:
        if tables.is_not_a_measurement(concept):
            if not _get(item, "MeasuredValueSequence"):
                self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no value "
                          "(a point or label marker, not a measurement); skipped")
            return None
        values = _get(item, "MeasuredValueSequence")
        if not values:
            qualifier = _code_of(_get(item, "NumericValueQualifierCodeSequence"))
            why = f" ({qualifier.meaning or qualifier.value})" if qualifier else ""
            self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no value{why}; skipped")
            return None
        mv = values[0]
        raw = _numeric_string(mv)
        unit = _code_of(_get(mv, "MeasurementUnitsCodeSequence"))
        try:
            number = Decimal(raw) if raw is not None else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no finite value "
                      f"({raw!r}); skipped")
            return None
        derivation = method = None
        ref_sop = graphic = None
        for child in _get(item, "ContentSequence") or ():
            child_key = _key(child)
            child_vt = _get(child, "ValueType")
            if child_key == DERIVATION:
                derivation = derivation or _value_code(child)
            elif child_key == METHOD:
                method = method or _value_code(child)
            elif child_key == FINDING_SITE and g.num_site is None:
                site = _value_code(child)
                if site is not None and not tables.is_free_text_label(site):
                    g.num_site = site
            elif child_key == TRACKING_UID and g.num_tracking_uid is None:
                g.num_tracking_uid = _text(_get(child, "UID"))
            elif child_vt in ("SCOORD", "SCOORD3D"):
                graphic = graphic or _text(_get(child, "GraphicType"))
                ref_sop = ref_sop or _selected_from(child)
            elif child_vt == "IMAGE":
                ref_sop = ref_sop or _referenced_sop(child)
        kind, value, unit_code, quarantined = self._normalise(concept, number, unit, g.name(path), path)
        return Measurement(
            kind=kind,
            concept=concept,
            value=value,
            unit=unit_code,
            original_value=raw,
            original_unit=unit,
            derivation=derivation,
            method=method,
            quarantined=quarantined,
            provenance=Provenance(path=path, observation_uid=_text(_get(item, "ObservationUID")),
                                  referenced_sop_instance_uid=ref_sop, graphic_type=graphic),
        )

    def _normalise(self, concept: Code, number: Decimal, unit: Code | None, name: str, path: str):
        """Kind from concept and unit dimension; value converted to mm / mm2 / mm3 when it is a size."""
        rule = tables.concept_rule(concept)
        unit_value = unit.value if unit else ""
        unit_rule = tables.unit_rule(unit_value)
        what = concept.meaning or concept.value
        if unit is not None and unit_rule.dimension and unit.scheme != "UCUM":
            self.warn(f"{name}: unit {unit_value!r} of {what} at item {path} is coded in {unit.scheme}, "
                      "not UCUM; read as the UCUM unit of that name")
        if rule.dimension is None:
            if unit_rule.dimension:  # an unknown concept in a size unit: convert, but never a diameter
                return (MeasurementKind.OTHER, number * unit_rule.factor, unit_rule.canonical, None)
            return MeasurementKind.OTHER, number, unit_value or None, None
        if unit_rule.dimension is None and rule.kind is MeasurementKind.OTHER:
            return MeasurementKind.OTHER, number, unit_value or None, None  # e.g. a radiomics length in "1"
        if unit_rule.dimension is None:
            reason = (f"unit {unit_value!r} ({unit.meaning if unit else 'none'}) is not a calibrated "
                      f"{rule.dimension}" if unit_value else f"no unit given for a {rule.dimension}")
            self.warn(f"{name}: {what} {number} at item {path} quarantined: {reason}")
            return rule.kind, None, unit_value or None, reason
        kind = rule.kind
        if unit_rule.dimension != rule.dimension:
            kind = MeasurementKind(unit_rule.dimension)
            self.warn(f"{name}: {what} at item {path} is coded as a {rule.dimension} but its unit "
                      f"{unit_value!r} measures {unit_rule.dimension}; read as {kind.value}")
        return kind, number * unit_rule.factor, unit_rule.canonical, None


_TIME_POINT_KEYS = {TIME_POINT, SUBJECT_TIME_POINT_ID, PROTOCOL_TIME_POINT_ID, TIME_POINT_TYPE, TIME_POINT_ORDER}


@dataclass
class _GroupState:
    tracking_identifier: str | None = None
    tracking_uid: str | None = None
    num_tracking_uid: str | None = None
    label: str | None = None
    finding: Code | None = None
    category: Code | None = None
    site: Code | None = None
    num_site: Code | None = None
    laterality: Code | None = None
    topographical_modifier: Code | None = None
    method: Code | None = None
    role: Role | None = None
    response: Code | None = None
    graphic_type: str | None = None
    ref_sop: str | None = None
    qualitative: list = field(default_factory=list)
    measurements: list = field(default_factory=list)
    time_point: dict = field(default_factory=dict)

    def name(self, path: str) -> str:
        if self.label:
            return self.label
        if self.tracking_identifier:
            return self.tracking_identifier
        return f"group at item {path.rsplit('.', 1)[0]}"


class _ImageLibrary:
    """Study dates, time and modality from the Image Library (TID 1600), stopping once found."""

    def __init__(self) -> None:
        self.study_dates: set[dt.date] = set()
        self.acquisition_dates: set[dt.date] = set()
        self.study_time: dt.time | None = None
        self.modality: str | None = None

    def scan(self, library: Dataset) -> None:
        for group in _get(library, "ContentSequence") or ():
            self._context(_get(group, "ContentSequence") or ())
            if self.study_dates:
                continue
            for entry in _get(group, "ContentSequence") or ():  # PixelMed puts the context under each IMAGE
                if _get(entry, "ValueType") == "IMAGE":
                    self._context(_get(entry, "ContentSequence") or ())
                    if self.study_dates:
                        break

    def _context(self, items) -> None:
        for item in items:
            if _get(item, "RelationshipType") != "HAS ACQ CONTEXT":
                continue
            key = _key(item)
            if key == STUDY_DATE:
                date = _parse_date(_text(_get(item, "Date")))
                if date:
                    self.study_dates.add(date)
            elif key == STUDY_TIME and self.study_time is None:
                self.study_time = _parse_time(_text(_get(item, "Time")))
            elif key == ACQUISITION_DATE:
                date = _parse_date(_text(_get(item, "Date")))
                if date:
                    self.acquisition_dates.add(date)
            elif key == MODALITY and self.modality is None:
                value = _value_code(item)
                self.modality = value.value if value else None


# --- small readers -----------------------------------------------------------------------------------

_TAGS: dict[str, int] = {}


def _get(ds: Dataset | dicom_fast.FastDataset, keyword: str):
    """`ds.get(keyword)` by tag: skips pydicom's keyword machinery, which dominates a large tree walk."""
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = pydicom.datadict.tag_for_keyword(keyword)
    if type(ds) is dicom_fast.FastDataset:
        return ds.value(tag)
    try:
        return ds[tag].value
    except KeyError:
        return None



def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _code_of(sequence) -> Code | None:
    if not sequence:
        return None
    item = sequence[0]
    value = _text(_get(item, "CodeValue")) or _text(_get(item, "LongCodeValue")) or _text(_get(item, "URNCodeValue"))
    if value is None:
        return None
    return _code(value, _text(_get(item, "CodingSchemeDesignator")) or "", _text(_get(item, "CodeMeaning")) or "")


@lru_cache(maxsize=4096)
def _code(value: str, scheme: str, meaning: str) -> Code:
    return tables.normalise_code(Code(value, scheme, meaning))


def _concept(item: Dataset) -> Code | None:
    return _code_of(_get(item, "ConceptNameCodeSequence"))


def _key(item: Dataset) -> tuple[str, str] | None:
    concept = _concept(item)
    return (concept.scheme, concept.value) if concept else None


def _value_code(item: Dataset) -> Code | None:
    return _code_of(_get(item, "ConceptCodeSequence"))


def _template_id(item: Dataset) -> str | None:
    templates = _get(item, "ContentTemplateSequence")
    return _text(_get(templates[0], "TemplateIdentifier")) if templates else None


def _numeric_string(mv: Dataset) -> str | None:
    """The value as written (DS keeps its text), so no float rounding enters the model."""
    element = _get(mv, "NumericValue")
    if element is None:
        floating = _get(mv, "FloatingPointValue")
        return repr(float(floating)) if floating is not None else None
    original = getattr(element, "original_string", None)
    if original is not None:
        return str(original).strip()
    if isinstance(element, (list, tuple, pydicom.multival.MultiValue)):
        element = element[0] if element else None
    return _text(element)


def _referenced_sop(item: Dataset) -> str | None:
    refs = _get(item, "ReferencedSOPSequence")
    return _text(_get(refs[0], "ReferencedSOPInstanceUID")) if refs else None


def _selected_from(scoord: Dataset) -> str | None:
    for child in _get(scoord, "ContentSequence") or ():
        if _get(child, "ValueType") == "IMAGE":
            return _referenced_sop(child)
    return None


def _evidence_studies(ds: Dataset) -> list[str]:
    studies: list[str] = []
    for item in _get(ds, "CurrentRequestedProcedureEvidenceSequence") or ():
        uid = _text(_get(item, "StudyInstanceUID"))
        if uid and uid not in studies:
            studies.append(uid)
    return studies


def _predecessors(ds: Dataset) -> tuple[str, ...]:
    uids: list[str] = []
    for study in _get(ds, "PredecessorDocumentsSequence") or ():
        for series in _get(study, "ReferencedSeriesSequence") or ():
            for sop in _get(series, "ReferencedSOPSequence") or ():
                uid = _text(_get(sop, "ReferencedSOPInstanceUID"))
                if uid:
                    uids.append(uid)
    return tuple(uids)


def _time_point_item(item: Dataset, key, state: dict) -> None:
    if key in (TIME_POINT, SUBJECT_TIME_POINT_ID):
        state.setdefault("identifier", _text(_get(item, "TextValue")))
    elif key == PROTOCOL_TIME_POINT_ID:
        state.setdefault("protocol_identifier", _text(_get(item, "TextValue")))
    elif key == TIME_POINT_TYPE:
        state.setdefault("type", _value_code(item))
    elif key == TIME_POINT_ORDER:
        values = _get(item, "MeasuredValueSequence")
        raw = _numeric_string(values[0]) if values else None
        try:
            state.setdefault("order", Decimal(raw) if raw else None)
        except InvalidOperation:
            pass


def _time_point(state: dict) -> TimePointContext | None:
    if not any(state.values()):
        return None
    return TimePointContext(**state)


def _parse_date(text: str | None) -> dt.date | None:
    if not text:
        return None
    digits = text.replace("-", "").replace(".", "").strip()[:8]
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except (ValueError, IndexError):
        return None


def _parse_time(text: str | None) -> dt.time | None:
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
