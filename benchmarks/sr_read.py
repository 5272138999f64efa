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
import time
from pathlib import Path

import highdicom as hd
import pydicom

import adapter
from fixtures import generate as g

CORPUS = Path(os.environ.get("OLIGO_CORPUS", Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
RADIOMICS = "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm"


def eight_lesion_sr() -> bytes:
    sites = ["liver", "liver", "lung", "lung", "lymph node", "adrenal gland", "bone", "kidney"]
    patient = g.Patient("BENCH-1")
    patient.time_points = [g.TimePoint(dt.date(2024, 1, 10), baseline=True, lesions=[
        g.Lesion(f"Lesion {i + 1}", site, 20.0 + i, 12.0 + i, role="target" if i < 5 else "non-target",
                 template=("1410", "1411", "1501")[i % 3])
        for i, site in enumerate(sites)
    ])]
    return g.make_series(patient)[0]


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


def per_second(fn, data: bytes, budget: float = 1.5, rounds: int = 5) -> float:
    """Median calls per second over `rounds`, each round running for about budget/rounds seconds."""
    fn(data)
    rates = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < budget / rounds:
            fn(data)
            calls += 1
        rates.append(calls / elapsed)
    return statistics.median(rates)


def main() -> None:
    cases = {"8-lesion generated SR": eight_lesion_sr()}
    radiomics = CORPUS / RADIOMICS
    if radiomics.is_file():
        cases["1,561-measurement SR (rsna2018_dataset3)"] = radiomics.read_bytes()
    print(f"SR parse throughput, one core ({os.uname().machine}, Python {os.sys.version.split()[0]})")
    for name, data in cases.items():
        ours = per_second(adapter.read_sr, data)
        walk = per_second(pydicom_walk, data)
        print(f"\n{name} ({len(data):,} bytes)")
        print(f"  adapter.read_sr      {ours:10.1f}/s  {1000 / ours:8.2f} ms")
        print(f"  pydicom read + walk  {walk:10.1f}/s  {1000 / walk:8.2f} ms   ratio {ours / walk:6.1f}x")
        if name.startswith("8-lesion"):
            hdc = per_second(highdicom_groups, data)
            print(f"  highdicom srread     {hdc:10.1f}/s  {1000 / hdc:8.2f} ms   ratio {ours / hdc:6.1f}x")


if __name__ == "__main__":
    main()
