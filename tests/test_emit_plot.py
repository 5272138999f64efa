"""The spider plot: the numbers behind each line, and a PNG that is stable for the same data and
changes when the data change."""

from __future__ import annotations

import zlib

import pytest

import adapter
from adapter.emit import spider_png, spider_series

from tests.assess_cases import C2_SCANS, L, patient, reports
from tests.emit_helpers import assessment_of


def test_c2_series():
    lesions, total, unplotted = spider_series(assessment_of("C2"))
    by_name = {s.name: s for s in lesions}
    assert [s.name for s in lesions] == ["Liver 1", "Lesion 2", "Lung 1", "Lung 2", "Node 1"]
    assert by_name["Lesion 2"].points == ((0.0, 0.0), (8.0, -52.0), (16.0, -20.0))  # 25 -> 12 -> 20 mm
    assert by_name["Lesion 2"].progressing and by_name["Lesion 2"].note == "12 → 20 mm"
    assert [s.name for s in lesions if s.progressing] == ["Lesion 2"]
    assert by_name["Node 1"].points == ((0.0, 0.0), (8.0, -50.0), (16.0, -50.0))  # short axis 18 -> 9
    assert total.points[0] == (0.0, 0.0) and total.points[1] == (8.0, -50.0)  # 108 -> 54
    assert total.points[2][1] == pytest.approx(-42.59, abs=0.01)  # 62
    assert unplotted == []


def test_new_lesions_start_at_their_first_sighting_and_unmeasured_lesions_are_named():
    lesions, _, _ = spider_series(assessment_of("C3"))
    new = [s for s in lesions if s.new]
    assert [(s.name, s.points, s.progressing, s.note) for s in new] == [
        ("New adrenal", ((16.0, 0.0),), True, "new, 14 mm"), ("New bone", ((16.0, 0.0),), True, "new, 12 mm")]
    _, _, unplotted = spider_series(assessment_of("E2"))
    assert unplotted == ["N"]  # the non-target bone lesion has no number


def _png_text_chunks(png: bytes) -> list[bytes]:
    chunks, i = [], 8
    while i < len(png):
        length = int.from_bytes(png[i:i + 4], "big")
        kind = png[i + 4:i + 8]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            chunks.append(png[i + 8:i + 8 + length])
        i += 12 + length
    return chunks


def test_png_is_deterministic_and_carries_no_software_or_date():
    first = spider_png(assessment_of("C2"))
    assert first == spider_png(assessment_of("C2"))
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    chunks = b"".join(_png_text_chunks(first))
    assert b"Software" not in chunks and b"atplotlib" not in chunks and b"Date" not in chunks


def test_png_changes_when_the_data_change():
    base = spider_png(assessment_of("C2"))
    scans = [list(s) for s in C2_SCANS]
    changed = [(w, [L(x.name, x.site, (x.long_axis if x.site != "lymph node" else x.short_axis))
                    for x in lesions]) for w, lesions in scans]
    changed[2][1][1] = L("Lesion 2", "liver", 24)  # 12 -> 24 mm instead of 20
    (other,) = adapter.assess(reports(patient("C2", *changed)))
    assert spider_png(other) != base
    # the same numbers give the same picture again
    (same,) = adapter.assess(reports(patient("C2", *scans)))
    assert spider_png(same) == base


def test_png_is_a_real_image_of_the_requested_size():
    png = spider_png(assessment_of("C2"), dpi=100)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (800, 520)
    # the image data inflates (a complete, readable PNG)
    i, data = 8, b""
    while i < len(png):
        length = int.from_bytes(png[i:i + 4], "big")
        if png[i + 4:i + 8] == b"IDAT":
            data += png[i + 8:i + 8 + length]
        i += 12 + length
    assert len(zlib.decompress(data)) == height * (1 + width * 4)
