"""Archive throughput: `oligo batch` on dask against a plain loop in one process, same files, same run.

    python -m benchmarks.batch_run [PATIENTS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from adapter.assess import assess_timelines
from adapter.batch import BatchOptions, run_batch
from adapter.emit import to_fhir
from adapter.inputs import read_all
from adapter.timeline import build_timelines
from benchmarks.end_to_end import patient as eight_by_six
from fixtures import generate as g


def archive(folder: Path, patients: int) -> int:
    template = eight_by_six()
    for number in range(patients):
        p = g.Patient(f"ARCHIVE-{number:05d}", issuer="BENCH")
        p.time_points = template.time_points
        g.write_series(p, folder)
    return patients * len(template.time_points)


def serial(folder: Path) -> None:
    reports = [r for o in read_all([folder]) for r in o.reports]
    for assessment in assess_timelines(build_timelines(reports)):
        to_fhir(assessment, include_plot=False, validate=False)


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archive"
        files = archive(folder, patients)
        start = time.perf_counter()
        serial(folder)
        loop = files / (time.perf_counter() - start)
        options = BatchOptions(validate=False, plot=False)
        start = time.perf_counter()
        run_batch(folder, Path(tmp) / "out", options=options, workers=workers)
        dask = files / (time.perf_counter() - start)
    print(f"\nArchive of {patients} patients x 6 SRs ({files} files), no plot, no model check")
    print(f"  one process, plain loop (baseline)   {loop:8.1f} SRs/s")
    print(f"  oligo batch, {workers} local workers       {dask:8.1f} SRs/s   {dask / loop:5.2f}x "
          "(includes cluster start-up and reading every file twice)")


if __name__ == "__main__":
    main()
