"""End to end for one patient, 8 lesions x 6 time points: timeline + assessment + Bundle.

The baseline in the same run is reading the patient's six SRs, so the ratio says how the clinical core
compares with the cheapest step of the pipeline. Target (issue 9): <= 5 ms for assess + report.

    python -m benchmarks.end_to_end
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import adapter
from adapter.assess import assess_timelines
from adapter.timeline import build_timelines
from fixtures import generate as g

SITES = ["liver", "liver", "lung", "lung", "lymph node", "adrenal gland", "bone", "kidney"]


def patient() -> g.Patient:
    p = g.Patient("E2E-1")
    for t in range(6):
        p.time_points.append(g.TimePoint(dt.date(2024, 1, 10) + dt.timedelta(days=56 * t), baseline=t == 0, lesions=[
            g.Lesion(f"Lesion {i + 1}", site, 20.0 + i + (1.5 * t if i == 0 else -0.5 * t), 12.0 + i,
                     role="target" if i < 5 else "non-target")
            for i, site in enumerate(SITES)]))
    return p


def median_ms(fn, rounds: int = 30) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    series = g.make_series(patient())
    reports = [adapter.read_sr(data) for data in series]
    (assessment,) = adapter.assess(reports)
    read = median_ms(lambda: [adapter.read_sr(data) for data in series])
    core = median_ms(lambda: adapter.to_fhir(assess_timelines(build_timelines(reports))[0],
                                             include_plot=False, validate=False))
    checked = median_ms(lambda: adapter.to_fhir(assessment, include_plot=False), rounds=10)
    plotted = median_ms(lambda: adapter.to_fhir(assessment), rounds=5)
    print(f"\nOne patient, 8 lesions x 6 time points (latest state: {assessment.latest.state})")
    print(f"  read the 6 SRs (baseline)                   {read:8.2f} ms")
    print(f"  timeline + assess + Bundle                  {core:8.2f} ms   {core / read:5.2f}x the read"
          f"   target 5 ms: {'met' if core <= 5 else 'missed'}")
    print(f"  Bundle checked against fhir.resources R4B   {checked:8.2f} ms   (adds the model check)")
    print(f"  Bundle with the spider plot                 {plotted:8.2f} ms   (adds matplotlib)")


if __name__ == "__main__":
    main()
