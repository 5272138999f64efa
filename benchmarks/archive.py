"""A large archive of SRs, fast: one patient's series is written with highdicom once, then cloned.

highdicom needs about 0.2 s an SR and a pydicom re-save about 0.1 s, so 20,000 SRs would take an
hour; a clone is a byte substitution of the template (new patient, new UIDs, sizes scaled by a
per-patient factor so no two patients share measurement bytes) where every substituted value keeps its
length, so the Part 10 framing stays valid. Archives are kept under build/bench/ and reused when a
finished one of the same size is already there.

    python -m benchmarks.archive PATIENTS OUT_DIR
"""

from __future__ import annotations

import hashlib
import re
import sys
from decimal import Decimal
from pathlib import Path

import pydicom
from pydicom.uid import UID_dictionary

from benchmarks.end_to_end import patient as eight_by_six
from fixtures import generate as g

DONE_MARK = ".complete"
PATIENT_ID = "ARCHIVE-{:08d}"  # 16 characters, as the template's
TEMPLATE_ID = "ARCHIVE-TEMPLATE"


class SeriesCloner:
    """The template series, each SR's bytes with a marker in every place a clone changes."""

    def __init__(self) -> None:
        template = eight_by_six()
        template.patient_id = TEMPLATE_ID
        self.dates = [tp.date for tp in template.time_points]
        self.templates: list[tuple[bytes, dict[bytes, Decimal], set[bytes]]] = []
        marker = 0
        for data in g.make_series(template):
            ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
            sizes: dict[bytes, Decimal] = {}
            for item in _measurements(ds):
                marker += 1
                text = f"7.{marker:04d}"  # a DS of six characters, found nowhere else in the file
                sizes[text.encode()] = Decimal(str(item.NumericValue))
                item.NumericValue = text
            uids = {str(v).encode() for v in _instance_uids(ds) if str(v).startswith("2.25.")}
            self.templates.append((g.to_bytes(ds), sizes, uids))
        for data, sizes, uids in self.templates:
            for found in list(sizes) + list(uids):
                if data.count(found) < 1 or any(found != other and found in other for other in uids):
                    raise RuntimeError(f"the template cannot be cloned safely: {found!r}")

    def clone(self, number: int) -> list[bytes]:
        """The series of patient `number`: its own id and UIDs, sizes x (1 + (number % 37) / 100)."""
        factor = Decimal(100 + number % 37) / 100
        out = []
        for data, sizes, uids in self.templates:
            swap = {TEMPLATE_ID.encode(): PATIENT_ID.format(number).encode()}
            for marker, value in sizes.items():
                swap[marker] = _six_characters(value * factor).encode()
            for value in uids:
                swap[value] = _same_length_uid(value, number)
            pattern = re.compile(b"|".join(re.escape(k) for k in sorted(swap, key=len, reverse=True)))
            out.append(pattern.sub(lambda m: swap[m.group()], data))
        return out


def _same_length_uid(value: bytes, number: int) -> bytes:
    """Another UID of the same length: 2.25. and the leading digits of a hash of the old UID and the
    clone number, kept below 2**128 as the 2.25 (UUID) form requires."""
    wanted = len(value) - 5
    if not value.startswith(b"2.25.") or wanted > 39:
        raise RuntimeError(f"the template UID {value!r} is not in the 2.25 form")
    digest = hashlib.sha256(b"%d\x1f%s" % (number, value)).digest()
    digits = str(int.from_bytes(digest, "big"))[:wanted]
    if int(digits) >= 2 ** 128:
        digits = "1" + digits[1:]
    return b"2.25." + digits.encode()


def _instance_uids(ds):
    """Every UI value that is not a registered class or syntax UID (the generator's instance UIDs are
    all in the 2.25 form; the others are fixed identifiers such as an implementation class)."""
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _instance_uids(item)
        elif element.VR == "UI" and element.value and str(element.value) not in UID_dictionary:
            yield element.value
    if hasattr(ds, "file_meta"):
        yield from (e.value for e in ds.file_meta if e.VR == "UI" and str(e.value) not in UID_dictionary)


def _measurements(ds):
    """The MeasuredValueSequence items under Imaging Measurements (126010): the lesions' sizes, not
    the image library's rows, spacing and positions."""
    for container in ds.ContentSequence:
        if container.ConceptNameCodeSequence[0].CodeValue == "126010":
            yield from _measured_values(container)


def _measured_values(ds):
    for item in ds.get("ContentSequence", []):
        yield from item.get("MeasuredValueSequence", [])
        yield from _measured_values(item)


def _six_characters(value: Decimal) -> str:
    for places in (3, 2, 1, 0):
        text = f"{value:.{places}f}"
        if len(text) <= 6:
            return text.rjust(6)  # leading spaces are not significant in a DS
    raise RuntimeError(f"{value} does not fit the template's six characters")


def build(patients: int, out_dir: Path) -> Path:
    """`patients` x 6 SRs in out_dir/ARCHIVE-nnnnnnnn/; reused when already complete."""
    mark = out_dir / DONE_MARK
    if mark.exists() and mark.read_text().strip() == str(patients):
        return out_dir
    cloner = SeriesCloner()
    for number in range(patients):
        folder = out_dir / PATIENT_ID.format(number)
        folder.mkdir(parents=True, exist_ok=True)
        for date, data in zip(cloner.dates, cloner.clone(number), strict=True):
            (folder / f"{date.isoformat()}.dcm").write_bytes(data)
    mark.write_text(f"{patients}\n")
    return out_dir


if __name__ == "__main__":
    build(int(sys.argv[1]), Path(sys.argv[2]))
