"""The code tables in mappings/: coverage of the standard's values, and shipped inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adapter import tables
from adapter.model import Code, IdentifierKind, MeasurementKind

REPO = Path(__file__).resolve().parents[1]

# STANDARDS.md §2.8: common sites, with organ group, nodal, CNS, paired
SITES = [
    ("39607008", "lung", False, False, True),
    ("10200004", "liver", False, False, False),
    ("59441001", "lymph node", True, False, True),
    ("12738006", "brain", False, True, False),
    ("23451007", "adrenal gland", False, False, False),
    ("272673000", "bone", False, False, False),
    ("3138006", "bone", False, False, False),
    ("3120008", "pleura", False, False, False),
    ("15425007", "peritoneum", False, False, False),
    ("64033007", "kidney", False, False, True),
    ("78961009", "spleen", False, False, False),
    ("15776009", "pancreas", False, False, False),
    ("39937001", "skin", False, False, False),
    ("87784001", "soft tissue", False, False, False),
    ("76752008", "breast", False, False, False),
    ("80248007", "breast", False, False, False),
    ("71854001", "colon", False, False, False),
    ("34402009", "rectum", False, False, False),
    ("2748008", "spinal cord", False, True, False),
    ("15497006", "ovary", False, False, True),
    # corpus sites
    ("312501005", "lymph node", True, False, True),
    ("47975008", "head and neck", False, False, False),
]


@pytest.mark.parametrize(("code", "organ", "nodal", "cns", "paired"), SITES)
def test_sites_map_to_organ_groups(code, organ, nodal, cns, paired):
    anatomy = tables.anatomy_of(Code(code, "SCT"))
    assert (anatomy.organ, anatomy.nodal, anatomy.cns, anatomy.paired) == (organ, nodal, cns, paired)


def test_unknown_site_codes_fall_back_to_meaning_keywords():
    assert tables.anatomy_of(Code("55940004", "SCT", "pharyngeal tonsil (adenoid)")).organ == "head and neck"
    assert tables.anatomy_of(Code("X-1", "99LOCAL", "Right hilar lymph node")).nodal
    assert tables.anatomy_of(Code("X-2", "99LOCAL", "Left upper lobe of lung")).organ == "lung"
    assert tables.anatomy_of(Code("X-3", "99LOCAL", "Nodule")).organ is None  # "nodule" is not "node"
    assert tables.anatomy_of(None).organ is None


def test_srt_codes_normalise_to_sct():
    assert tables.normalise_code(Code("G-A185", "SRT", "Long Axis")) == Code("103339001", "SCT")
    assert tables.normalise_code(Code("T-C4000", "SRT", "Lymph node")) == Code("59441001", "SCT")
    # missing from pydicom's SRT->SCT table; found by exact meaning in its SCT dictionary
    assert tables.normalise_code(Code("T-53131", "SRT", "base of tongue")) == Code("47975008", "SCT")
    # unknown everywhere: kept as given
    assert tables.normalise_code(Code("T-99999", "SRT", "nowhere")) == Code("T-99999", "SRT")
    assert tables.normalise_code(Code("126010", "DCM")) == Code("126010", "DCM")


@pytest.mark.parametrize(
    ("code", "kind", "dimension"),
    [
        (Code("103339001", "SCT"), MeasurementKind.LONG_AXIS, "length"),
        (Code("103340004", "SCT"), MeasurementKind.SHORT_AXIS, "length"),
        (Code("81827009", "SCT"), MeasurementKind.DIAMETER, "length"),
        (Code("410668003", "SCT"), MeasurementKind.LENGTH, "length"),
        (Code("42798000", "SCT"), MeasurementKind.AREA, "area"),
        (Code("118565006", "SCT"), MeasurementKind.VOLUME, "volume"),
        (Code("L0JK", "IBSI"), MeasurementKind.DIAMETER, "length"),
        (Code("131190003", "SCT"), MeasurementKind.OTHER, "length"),  # radius is not a diameter
        (Code("126401", "DCM", "SUVbw"), MeasurementKind.OTHER, None),
        (Code("X", "99PRIV", "Long Axis"), MeasurementKind.LONG_AXIS, "length"),  # meaning-matched
        (Code("X", "99PRIV", "Surface to volume ratio"), MeasurementKind.OTHER, None),
    ],
)
def test_concepts(code, kind, dimension):
    rule = tables.concept_rule(code)
    assert (rule.kind, rule.dimension) == (kind, dimension)


@pytest.mark.parametrize(
    ("unit", "dimension", "factor", "uncalibrated"),
    [
        ("mm", "length", "1", False), ("cm", "length", "10", False), ("um", "length", "0.001", False),
        ("m", "length", "1000", False), ("cm2", "area", "100", False), ("cm3", "volume", "1000", False),
        ("ml", "volume", "1000", False), ("mL", "volume", "1000", False),
        ("1", None, None, True), ("{pixels}", None, None, True), ("px", None, None, True),
        ("[arb'U]{cm}", None, None, True), ("[hnsf'U]", None, None, False), ("{SUVbw}g/ml", None, None, False),
    ],
)
def test_units(unit, dimension, factor, uncalibrated):
    rule = tables.unit_rule(unit)
    assert rule.dimension == dimension
    assert (str(rule.factor) if rule.factor is not None else None) == factor
    assert rule.uncalibrated == uncalibrated


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("cornerstoneTools@^4.0.0:Length", IdentifierKind.TOOL_TAG),
        ("Cornerstone3DTools@^0.1.0:Bidirectional", IdentifierKind.TOOL_TAG),
        ("5b6eb4301d3175942d29985a3d0fbb00", IdentifierKind.HASH),
        ("Measurements group 1", IdentifierKind.GENERIC),
        ("Planar ROI Measurements", IdentifierKind.GENERIC),
        ("lymph node 1", IdentifierKind.HUMAN),
        ("Nodule 1", IdentifierKind.HUMAN),
        ("LungNodule0001", IdentifierKind.HUMAN),
    ],
)
def test_tracking_identifier_kinds(text, kind):
    assert tables.identifier_kind(text) is kind


def test_structures_are_not_lesions():
    assert tables.is_structure(Code("15825003", "SCT"), None)  # aorta
    assert tables.is_structure(Code("10200004", "SCT"), None)  # "Finding: Liver" = the organ itself
    assert tables.is_structure(None, Code("91723000", "SCT"))  # category Anatomical structure
    assert not tables.is_structure(Code("27925004", "SCT"), Code("49755003", "SCT"))  # nodule


def test_mappings_ship_inside_the_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("oligo_adapter-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for table in ("measurements", "units", "anatomy", "tracking", "fhir_output"):
        assert f"adapter/mappings/{table}.yaml" in names
    assert "adapter/mappings/oligo-codesystem.json" in names
    modules = {str(p.relative_to(REPO)) for p in (REPO / "adapter").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
