"""The fast SR reader (adapter/sources/dicom_fast.py) and the pydicom path give identical Reports."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

import adapter
from adapter.sources import dicom_fast, dicom_sr
from fixtures import generate as g
from tests.generated import simple_sr

# corpus files the fast path reads itself (the others are handed to pydicom, or rejected by both)
FAST = [
    "_derived/hl7-dicom-sr/Example-MeasurementReport.fixed-accession.dcm",
    "dcmjs/sample-sr.dcm",
    "dcmqi/sr.dcm",
    "highdicom/sr_document.dcm",
    "highdicom/sr_document_with_multiple_groups.dcm",
    "tid1500-fhir/dcmqi/result.dcm",
    "tid1500-fhir/rsna2018_dataset1/sr-tid1500-ct-liver-example.dcm",
    "tid1500-fhir/rsna2018_dataset2/Measurements_User2_SemiAuto_Trial2.dcm",
    "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm",
    "tid1500-fhir/rsna2018_dataset4/1.dcm",
]


def both(data: bytes, label: str = "x"):
    """(result of read_sr on the bytes, result of the pydicom path); a result is a Report or an error."""
    def attempt(fn):
        try:
            return fn()
        except adapter.InputError as exc:
            return str(exc)

    auto = attempt(lambda: adapter.read_sr(data, name=label))
    via_pydicom = attempt(lambda: dicom_sr.report_from_dataset(
        pydicom.dcmread(io.BytesIO(data), force=True), label=label))
    return auto, via_pydicom


def fast_only(data: bytes, label: str = "x"):
    return dicom_sr.report_from_dataset(dicom_fast.parse(data), label=label)


def test_every_corpus_sr_reads_the_same_on_both_paths(corpus):
    for path in sorted(corpus.rglob("*.dcm")):
        auto, via_pydicom = both(path.read_bytes(), str(path))
        assert auto == via_pydicom, path


@pytest.mark.parametrize("rel", FAST)
def test_fast_path_covers_the_common_files(corpus, rel):
    data = (corpus / rel).read_bytes()
    assert fast_only(data) == dicom_sr.report_from_dataset(pydicom.dcmread(io.BytesIO(data)), label="x")


def test_values_pydicom_warns_about_go_to_pydicom(corpus):
    # the OHIF v2 file has an SH value over 16 characters: pydicom warns, so pydicom reads it
    data = (corpus / "dcmjs/structured_report.dcm").read_bytes()
    with pytest.raises(dicom_fast.NeedsPydicom):
        fast_only(data)
    report = adapter.read_sr(data)
    assert any("exceeds the maximum length of 16 allowed for VR SH" in w for w in report.warnings)


def test_generated_series_read_the_same(tmp_path):
    for patient in g.demo_patients():
        for data in g.make_series(patient):
            assert fast_only(data) == both(data)[1]


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_other_little_endian_syntaxes(syntax):
    ds = simple_sr()
    explicit = adapter.read_sr(g.to_bytes(ds))
    buffer = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    assert fast_only(data) == explicit
    assert adapter.read_sr(data) == explicit


def test_big_endian_goes_to_pydicom():
    ds = simple_sr()
    explicit = adapter.read_sr(g.to_bytes(ds))
    buffer = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(dicom_fast.NeedsPydicom):
        dicom_fast.parse(buffer.getvalue())
    assert adapter.read_sr(buffer.getvalue()) == explicit


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_character_sets(charset):
    ds = simple_sr(name="Läsion 1")
    ds.SpecificCharacterSet = charset
    data = g.to_bytes(ds)
    report = fast_only(data)
    assert report.findings[0].tracking_identifier == "Läsion 1"
    assert report == both(data)[1]


def test_iso_2022_goes_to_pydicom():
    ds = simple_sr()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    data = g.to_bytes(ds)
    with pytest.raises(dicom_fast.NeedsPydicom):
        dicom_fast.parse(data)
    auto, via_pydicom = both(data)
    assert auto == via_pydicom


def test_long_free_text_is_not_held_by_the_decode_cache():
    """Decoded values are cached, but not long ones: a stream of files with long texts must not fill
    memory through the cache."""
    def growth(name: str) -> int:  # how many values reading one file adds to the cache
        before = dicom_fast.decode.cache_info().currsize
        report = adapter.read_sr(g.to_bytes(simple_sr(name=name)))
        assert report.findings[0].tracking_identifier == name
        return dicom_fast.decode.cache_info().currsize - before

    dicom_fast.clear_caches()
    growth("a" * 5000)  # the values every file shares
    long_text, short_text = growth("b" * 5000), growth("c" * 50)  # then each file's own UIDs, and its name
    assert short_text == long_text + 1
