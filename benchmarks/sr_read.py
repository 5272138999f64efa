"""SR parse speed: adapter.read_sr against baselines measured in the same run.

Baselines: a plain pydicom read plus a walk of every content item (what a careful script does) and
highdicom's srread plus its measurement-group getters. Figures are the median of several rounds;
ratios are what matter (same machine, same run).

    make bench        # or: python -m benchmarks.sr_read
"""

from __future__ import annotations

import datetime as dt
import io
import os
import statistics
import sys
import time
from pathlib import Path

import highdicom as hd
import pydicom

import adapter
from adapter.sources import dicom_fast
from fixtures import generate as g

CORPUS = Path(os.environ.get("OLIGO_CORPUS", Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
RADIOMICS = "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm"


def eight_lesion_sr(number: int = 0) -> bytes:
    """An 8-lesion SR; each `number` gives another patient, study and other sizes."""
    sites = ["liver", "liver", "lung", "lung", "lymph node", "adrenal gland", "bone", "kidney"]
    patient = g.Patient(f"BENCH-{number}")
    patient.time_points = [g.TimePoint(dt.date(2024, 1, 10) + dt.timedelta(days=number), baseline=True, lesions=[
        g.Lesion(f"Lesion {i + 1}", site, 20.0 + i + number / 10, 12.0 + i + number / 20,
                 role="target" if i < 5 else "non-target", template=("1410", "1411", "1501")[i % 3])
        for i, site in enumerate(sites)
    ])]
    return g.make_series(patient)[0]


def cold(fn):
    """The call with the fast reader's caches emptied first: one file read once."""
    def run(data: bytes):
        dicom_fast.clear_caches()
        return fn(data)
    return run


def pydicom_walk(data: bytes) -> int:
    ds = pydicom.dcmread(io.BytesIO(data))
    count = 0
    stack = list(ds.ContentSequence)
    while stack:
        item = stack.pop()
        count += 1
        if item.ValueType == "NUM" and "MeasuredValueSequence" in item:
            float(item.MeasuredValueSequence[0].NumericValue)
        stack.extend(item.get("ContentSequence", []))
    return count


def highdicom_groups(data: bytes) -> int:
    sr = hd.sr.srread(io.BytesIO(data))
    count = 0
    for getter in ("get_planar_roi_measurement_groups", "get_volumetric_roi_measurement_groups",
                   "get_image_measurement_groups"):
        for group in getattr(sr.content, getter)():
            count += len(group.get_measurements())
    return count


def per_second(fn, inputs: list[bytes], budget: float = 1.5, rounds: int = 5) -> float:
    """Median calls per second over `rounds`, each round cycling through the inputs for about
    budget/rounds seconds."""
    fn(inputs[0])
    rates = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < budget / rounds:
            fn(inputs[calls % len(inputs)])
            calls += 1
        rates.append(calls / elapsed)
    return statistics.median(rates)


def main() -> None:
    print(f"SR parse throughput, one core ({os.uname().machine}, Python {sys.version.split()[0]})")
    archive = [eight_lesion_sr(n) for n in range(200)]
    print(f"\n200 different 8-lesion SRs, read in turn ({len(archive[0]):,} bytes each)")
    report_rates(per_second(adapter.read_sr, archive), per_second(pydicom_walk, archive),
                 per_second(highdicom_groups, archive[:20]))
    radiomics = CORPUS / RADIOMICS
    if radiomics.is_file():
        data = [radiomics.read_bytes()]
        print(f"\n1,561-measurement SR (rsna2018_dataset3, {len(data[0]):,} bytes), caches emptied before each read")
        report_rates(per_second(cold(adapter.read_sr), data), per_second(pydicom_walk, data))


def report_rates(ours: float, walk: float, highdicom: float | None = None) -> None:
    print(f"  adapter.read_sr      {ours:10.1f}/s  {1000 / ours:8.2f} ms")
    print(f"  pydicom read + walk  {walk:10.1f}/s  {1000 / walk:8.2f} ms   ours {ours / walk:6.1f}x")
    if highdicom is not None:
        print(f"  highdicom srread     {highdicom:10.1f}/s  {1000 / highdicom:8.2f} ms   ours {ours / highdicom:6.1f}x")


if __name__ == "__main__":
    main()
