"""The TID 1500 walker: one Measurement Report content tree -> `Report`.

Written for the files that exist rather than the ones the standard describes: groups with or without
template ids, under Imaging Measurements or Derived Imaging Measurements; TID 1410, 1411 and 1501
groups; SCOORD under the group or under a NUM; Finding Site as HAS CONCEPT MOD or CONTAINS; legacy SRT
codes; NUMs without a value; sizes in uncalibrated units. Every deviation becomes a warning on the
Report; only a tree without a single usable group raises `InputError`. See STANDARDS.md §2-3 and
PEERS.md §3-4 for the variations and where they come from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from pydicom import Dataset

from .. import tables
from ..errors import InputError
from ..model import (
    Code,
    Finding,
    Measurement,
    Provenance,
    Qualitative,
    Report,
    Role,
    SourceKind,
    TimePointContext,
)
from . import dicom_tags as tag
from .dicom_fast import FastDataset
from .limits import DEFAULT_LIMITS, ReadLimits, check_content_tree, usable_number
from .sizes import size_of
from .sr_items import (
    children,
    clean_text,
    code_of,
    concept_key,
    concept_of,
    evidence_studies,
    head_of,
    numeric_string,
    parse_date,
    parse_time,
    predecessors,
    referenced_sop,
    selected_from,
    template_id,
    value_code,
    value_of,
)

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


@dataclass
class MeasurementReportReader:
    """Walks one TID 1500 content tree (pydicom Dataset or FastDataset) into a Report."""

    ds: Dataset | FastDataset
    label: str
    sop_class: str | None
    warnings: list[str] = field(default_factory=list)
    limits: ReadLimits = DEFAULT_LIMITS

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def read(self) -> Report:
        ds = self.ds
        self._check_root()
        check_content_tree(ds, self.label, self.limits, children)
        library = _ImageLibrary()
        groups: list[tuple[Dataset, str]] = []
        root_tp: dict = {}
        observer = None
        for index, item in enumerate(children(ds) or (), start=1):
            concept = concept_of(item)
            key = (concept.scheme, concept.value) if concept else None
            vt = value_of(item, tag.VALUE_TYPE)
            if key in (IMAGING_MEASUREMENTS, DERIVED_MEASUREMENTS):
                groups += self._groups_in(item, str(index))
            elif key == MEASUREMENT_GROUP and vt == "CONTAINER":
                self.warn(f"measurement group at item {index} sits directly under the root; read anyway")
                groups.append((item, str(index)))
            elif key == IMAGE_LIBRARY:
                library.scan(item)
            elif key == PERSON_OBSERVER and observer is None:
                observer = clean_text(value_of(item, tag.PERSON_NAME))
            elif key in (DEVICE_OBSERVER_UID, DEVICE_OBSERVER_NAME) and observer is None:
                observer = str(value_of(item, tag.UID) or value_of(item, tag.TEXT_VALUE) or "").strip() or None
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
        return self._report(self.sop_class, library, observer, report_tp, tuple(findings))

    def _check_root(self) -> None:
        ds = self.ds
        concept = concept_of(ds)
        template = template_id(ds)
        is_title = concept is not None and (concept.scheme, concept.value) in REPORT_TITLES
        if value_of(ds, tag.VALUE_TYPE) not in (None, "CONTAINER") or not (is_title or template == "1500"):
            title = f"{concept.meaning or concept.value}" if concept else "no document title"
            raise InputError(self.label, f"has no TID 1500 Imaging Measurement Report (document title: {title})")
        if not is_title:
            self.warn(f"document title {concept} is not one of CID 7021; read as TID 1500 from its template id")
        if not children(ds):
            raise InputError(self.label, "is a TID 1500 report with an empty content tree")

    def _groups_in(self, container: Dataset, path: str) -> list[tuple[Dataset, str]]:
        found = []
        for index, item in enumerate(children(container) or (), start=1):
            concept = concept_of(item)
            is_group = concept is not None and (concept.scheme, concept.value) == MEASUREMENT_GROUP
            if is_group and value_of(item, tag.VALUE_TYPE) == "CONTAINER":
                found.append((item, f"{path}.{index}"))
        return found

    # --- header ------------------------------------------------------------------------------------

    def _report(self, sop_class, library: "_ImageLibrary", observer, time_point, findings) -> Report:
        ds = self.ds
        sr_study = clean_text(value_of(ds, tag.STUDY_INSTANCE_UID))
        studies = evidence_studies(ds)
        study_uid = sr_study
        if len(studies) == 1:
            study_uid = studies[0]
            if sr_study and sr_study != study_uid:
                self.warn("the SR is filed in a different study from the images it measures; "
                          "the measured study is used as the time point")
        elif len(studies) > 1:
            self.warn(f"the SR references images of {len(studies)} studies; its own study is used")
        sop_instance = clean_text(value_of(ds, tag.SOP_INSTANCE_UID))
        for uid, what in ((study_uid, "Study Instance UID"), (sop_instance, "SOP Instance UID")):
            if uid and len(uid) > MAX_UID_LENGTH:
                self.warn(f"{what} is {len(uid)} characters, over the DICOM limit of {MAX_UID_LENGTH}")
        date, time, source = self._imaging_date(library, sr_study == study_uid)
        patient_id = clean_text(value_of(ds, tag.PATIENT_ID))
        if not patient_id:
            self.warn("no Patient ID: this report cannot be placed on a patient's timeline")
        issuer = clean_text(value_of(ds, tag.ISSUER_OF_PATIENT_ID))
        if not issuer:
            qualifiers = value_of(ds, tag.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE)
            if qualifiers:
                issuer = clean_text(value_of(qualifiers[0], tag.UNIVERSAL_ENTITY_ID))
        content_date = parse_date(clean_text(value_of(ds, tag.CONTENT_DATE)))
        content_time = parse_time(clean_text(value_of(ds, tag.CONTENT_TIME)))
        sop_instance = clean_text(value_of(ds, tag.SOP_INSTANCE_UID))
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
            series_uid=clean_text(value_of(ds, tag.SERIES_INSTANCE_UID)),
            accession=clean_text(value_of(ds, tag.ACCESSION_NUMBER)),
            imaging_date=date,
            imaging_time=time,
            imaging_date_source=source,
            content_datetime=dt.datetime.combine(content_date, content_time or dt.time()) if content_date else None,
            modality=library.modality,
            completion_flag=clean_text(value_of(ds, tag.COMPLETION_FLAG)),
            verification_flag=clean_text(value_of(ds, tag.VERIFICATION_FLAG)),
            preliminary_flag=clean_text(value_of(ds, tag.PRELIMINARY_FLAG)),
            observer=observer,
            predecessors=predecessors(ds),
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
        study_date = parse_date(clean_text(value_of(ds, tag.STUDY_DATE)))
        if study_date:
            if not sr_in_image_study:
                self.warn("imaging date taken from the SR's own study, which is not the measured study")
            return study_date, parse_time(clean_text(value_of(ds, tag.STUDY_TIME))), "sr-study-date"
        if library.acquisition_dates:
            return min(library.acquisition_dates), None, "image-library-acquisition"
        content = parse_date(clean_text(value_of(ds, tag.CONTENT_DATE)))
        if content:
            self.warn("no study date: the SR content date is used as the imaging date")
            return content, None, "content-date"
        self.warn("no imaging date anywhere in the report")
        return None, None, None

    # --- groups ------------------------------------------------------------------------------------

    def _finding(self, group: Dataset, path: str) -> Finding | None:
        g = _GroupState()
        for index, item in enumerate(children(group) or (), start=1):
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
            template=template_id(group),
            method=g.method,
            time_point=_time_point(g.time_point),
            provenance=Provenance(path=path, observation_uid=clean_text(value_of(group, tag.OBSERVATION_UID)),
                                  referenced_sop_instance_uid=g.ref_sop, graphic_type=g.graphic_type),
        )

    def _group_item(self, g: "_GroupState", item: Dataset, path: str) -> None:
        vt, concept, key = head_of(item)
        if vt == "NUM":
            if key in _TIME_POINT_KEYS:
                _time_point_item(item, key, g.time_point)
            elif value_of(item, tag.RELATIONSHIP_TYPE) in ("CONTAINS", None) and concept is not None:
                measurement = self._measurement(item, concept, path, g)
                if measurement is not None:
                    g.measurements.append(measurement)
            return
        if key == TRACKING_ID:
            text = clean_text(value_of(item, tag.TEXT_VALUE))
            if g.tracking_identifier is None:
                g.tracking_identifier = text
            elif text and text != g.tracking_identifier:
                self.warn(f"two Tracking Identifiers in one group ({g.tracking_identifier!r}, {text!r}); "
                          "the first is used")
        elif key == TRACKING_UID:
            uid = clean_text(value_of(item, tag.UID))
            if g.tracking_uid is None:
                g.tracking_uid = uid
            elif uid and uid != g.tracking_uid:
                self.warn(f"two Tracking UIDs in one group ({g.tracking_uid}, {uid}); the first is used")
        elif key == FINDING and vt == "CODE":
            value = value_code(item)
            if value is not None and tables.is_free_text_label(value):
                g.label = g.label or value.meaning.strip() or None
            elif value is not None:
                g.finding = g.finding or value
        elif key == FINDING_CATEGORY and vt == "CODE":
            g.category = g.category or value_code(item)
        elif key == FINDING_SITE and vt == "CODE":
            value = value_code(item)
            if value is not None and tables.is_free_text_label(value):
                g.label = g.label or value.meaning.strip() or None
            elif value is not None and g.site is None:
                g.site = value
                for child in children(item) or ():
                    child_key = concept_key(child)
                    if child_key == LATERALITY:
                        g.laterality = g.laterality or value_code(child)
                    elif child_key == TOPOGRAPHICAL_MODIFIER:
                        g.topographical_modifier = g.topographical_modifier or value_code(child)
        elif key == LATERALITY and vt == "CODE":
            g.laterality = g.laterality or value_code(item)
        elif key == METHOD and vt == "CODE":
            g.method = g.method or value_code(item)
        elif key == COMMENT and vt == "TEXT":
            g.label = g.label or clean_text(value_of(item, tag.TEXT_VALUE))
        elif key == BASELINE_CATEGORY and vt == "CODE":
            value = value_code(item)
            role = ROLE_BY_VALUE.get((value.scheme, value.value)) if value else None
            if role is None:
                self.warn(f"Baseline Category value {value} is not one of CID 6145; role left unset")
            g.role = g.role or role
        elif key == CURRENT_RESPONSE and vt == "CODE":
            g.response = g.response or value_code(item)
        elif key in _TIME_POINT_KEYS:
            _time_point_item(item, key, g.time_point)
        elif vt in ("SCOORD", "SCOORD3D"):
            g.graphic_type = g.graphic_type or clean_text(value_of(item, tag.GRAPHIC_TYPE))
            g.ref_sop = g.ref_sop or selected_from(item)
        elif vt == "IMAGE":
            g.ref_sop = g.ref_sop or referenced_sop(item)
        elif key in GROUP_CONTEXT_SKIP or vt in ("UIDREF", "COMPOSITE", "CONTAINER"):
            pass
        elif vt == "CODE" and concept is not None:
            value = value_code(item)
            if value is not None:
                g.qualitative.append(Qualitative(concept, value))
        elif vt == "TEXT" and concept is not None:
            text = clean_text(value_of(item, tag.TEXT_VALUE))
            if text:
                g.qualitative.append(Qualitative(concept, text))

    def _measurement(self, item: Dataset, concept: Code, path: str, g: "_GroupState") -> Measurement | None:
        if tables.is_not_a_measurement(concept):
            if not value_of(item, tag.MEASURED_VALUE_SEQUENCE):
                self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no value "
                          "(a point or label marker, not a measurement); skipped")
            return None
        values = value_of(item, tag.MEASURED_VALUE_SEQUENCE)
        if not values:
            qualifier = code_of(value_of(item, tag.NUMERIC_VALUE_QUALIFIER_CODE_SEQUENCE))
            why = f" ({qualifier.meaning or qualifier.value})" if qualifier else ""
            self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no value{why}; skipped")
            return None
        mv = values[0]
        raw = numeric_string(mv)
        unit = code_of(value_of(mv, tag.MEASUREMENT_UNITS_CODE_SEQUENCE))
        try:
            number = Decimal(raw) if raw is not None else None
        except InvalidOperation:
            number = None
        if not usable_number(number):
            self.warn(f"{g.name(path)}: {concept.meaning or concept.value} at item {path} has no finite value "
                      f"of plausible size ({raw!r}); skipped")
            return None
        derivation = method = None
        ref_sop = graphic = None
        for child in children(item) or ():
            child_key = concept_key(child)
            child_vt = value_of(child, tag.VALUE_TYPE)
            if child_key == DERIVATION:
                derivation = derivation or value_code(child)
            elif child_key == METHOD:
                method = method or value_code(child)
            elif child_key == FINDING_SITE and g.num_site is None:
                site = value_code(child)
                if site is not None and not tables.is_free_text_label(site):
                    g.num_site = site
            elif child_key == TRACKING_UID and g.num_tracking_uid is None:
                g.num_tracking_uid = clean_text(value_of(child, tag.UID))
            elif child_vt in ("SCOORD", "SCOORD3D"):
                graphic = graphic or clean_text(value_of(child, tag.GRAPHIC_TYPE))
                ref_sop = ref_sop or selected_from(child)
            elif child_vt == "IMAGE":
                ref_sop = ref_sop or referenced_sop(child)
        kind, value, unit_code, quarantined = self._normalise(concept, number, unit, g, path)
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
            provenance=Provenance(path=path, observation_uid=clean_text(value_of(item, tag.OBSERVATION_UID)),
                                  referenced_sop_instance_uid=ref_sop, graphic_type=graphic),
        )

    def _normalise(self, concept: Code, number: Decimal, unit: Code | None, g: "_GroupState", path: str):
        """Kind from concept and unit dimension; value converted to mm / mm2 / mm3 when it is a size."""
        rule = tables.concept_rule(concept)
        unit_value = unit.value if unit else ""
        unit_rule = tables.unit_rule(unit_value)
        what = concept.meaning or concept.value
        if unit is not None and unit_rule.dimension and unit.scheme != "UCUM":
            self.warn(f"{g.name(path)}: unit {unit_value!r} of {what} at item {path} is coded in {unit.scheme}, "
                      "not UCUM; read as the UCUM unit of that name")
        sized = size_of(rule, number, unit_value, unit.meaning if unit else "")
        if sized.quarantined:
            self.warn(f"{g.name(path)}: {what} {number} at item {path} quarantined: {sized.quarantined}")
        if sized.dimension_conflict:
            self.warn(f"{g.name(path)}: {what} at item {path} {sized.dimension_conflict}; read as {sized.kind.value}")
        return sized.kind, sized.value, sized.unit, sized.quarantined


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
        for group in children(library) or ():
            self._context(children(group) or ())
            if self.study_dates:
                continue
            for entry in children(group) or ():  # PixelMed puts the context under each IMAGE
                if value_of(entry, tag.VALUE_TYPE) == "IMAGE":
                    self._context(children(entry) or ())
                    if self.study_dates:
                        break

    def _context(self, items) -> None:
        for item in items:
            if value_of(item, tag.RELATIONSHIP_TYPE) != "HAS ACQ CONTEXT":
                continue
            key = concept_key(item)
            if key == STUDY_DATE:
                date = parse_date(clean_text(value_of(item, tag.DATE)))
                if date:
                    self.study_dates.add(date)
            elif key == STUDY_TIME and self.study_time is None:
                self.study_time = parse_time(clean_text(value_of(item, tag.TIME)))
            elif key == ACQUISITION_DATE:
                date = parse_date(clean_text(value_of(item, tag.DATE)))
                if date:
                    self.acquisition_dates.add(date)
            elif key == MODALITY and self.modality is None:
                value = value_code(item)
                self.modality = value.value if value else None


def _time_point_item(item: Dataset, key, state: dict) -> None:
    if key in (TIME_POINT, SUBJECT_TIME_POINT_ID):
        state.setdefault("identifier", clean_text(value_of(item, tag.TEXT_VALUE)))
    elif key == PROTOCOL_TIME_POINT_ID:
        state.setdefault("protocol_identifier", clean_text(value_of(item, tag.TEXT_VALUE)))
    elif key == TIME_POINT_TYPE:
        state.setdefault("type", value_code(item))
    elif key == TIME_POINT_ORDER:
        values = value_of(item, tag.MEASURED_VALUE_SEQUENCE)
        raw = numeric_string(values[0]) if values else None
        try:
            state.setdefault("order", Decimal(raw) if raw else None)
        except InvalidOperation:
            pass


def _time_point(state: dict) -> TimePointContext | None:
    if not any(state.values()):
        return None
    return TimePointContext(**state)
