"""Archive throughput: `oligo batch` with 1 and with 2 local workers on the same archive, in one run,
against a plain one-process loop; peak memory of the whole process tree (driver, scheduler, nannies,
workers) sampled while each run goes.

Targets (issue 9): 20,000 SRs of 1,000+ patients, peak memory under 1 GB, 2 workers >= 1.7x 1 worker.

    python -m benchmarks.batch_run [PATIENTS]      # default 3,334 patients x 6 SRs = 20,004 SRs
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from adapter.assess import assess_timelines
from adapter.batch import BatchOptions, run_batch
from adapter.emit import bundle_json, to_fhir
from adapter.inputs import expand, read_one
from adapter.timeline import build_timelines
from benchmarks import archive

BENCH_DIR = Path(__file__).resolve().parents[1] / "build" / "bench"
OPTIONS = BatchOptions(validate=False, plot=False)
LOOP_PATIENTS = 300  # the baseline loop's sample: enough for a steady rate


class PeakMemory:
    """Largest sum of resident memory over this process and all its descendants, sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def plain_loop(folder: Path, patients: int) -> float:
    """SRs/s of read + timeline + assess + NDJSON Bundle for the first `patients` patients, one process."""
    folders = sorted(p for p in folder.iterdir() if p.is_dir())[:patients]
    files = 0
    start = time.perf_counter()
    for patient in folders:
        reports = [r for path in expand([patient]) for r in read_one(path).reports]
        files += len(reports)
        for assessment in assess_timelines(build_timelines(reports)):
            bundle_json(to_fhir(assessment, include_plot=False, validate=False), indent=None)
    return files / (time.perf_counter() - start)


def batch(folder: Path, workers: int) -> tuple[int, float, int]:
    """(files, seconds, peak bytes) of one `oligo batch` run from nothing, cluster start-up included."""
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
        start = time.perf_counter()
        result = run_batch(folder, Path(tmp) / "out", options=OPTIONS, workers=workers)
        seconds = time.perf_counter() - start
    return result.files, seconds, memory.peak


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 3334
    folder = archive.build(patients, BENCH_DIR / f"archive-{patients}")
    loop = plain_loop(folder, min(patients, LOOP_PATIENTS))
    files, one, one_peak = batch(folder, 1)
    _, two, two_peak = batch(folder, 2)
    speedup = one / two
    print(f"\nArchive: {patients} patients x 6 SRs ({files} files), no plot, no model check; "
          f"cores: {psutil.cpu_count()}")
    print(f"  one process, plain loop (baseline)    {loop:8.1f} SRs/s   (first {min(patients, LOOP_PATIENTS)} patients)")
    print(f"  oligo batch, 1 worker                 {files / one:8.1f} SRs/s   {files / one / loop:5.2f}x   "
          f"{one:6.1f} s   peak {one_peak / 2**20:6.0f} MiB")
    print(f"  oligo batch, 2 workers                {files / two:8.1f} SRs/s   {files / two / loop:5.2f}x   "
          f"{two:6.1f} s   peak {two_peak / 2**20:6.0f} MiB")
    print(f"  2 workers vs 1: {speedup:4.2f}x (target 1.7x: {'met' if speedup >= 1.7 else 'missed'}); "
          f"peak memory target 1 GB: {'met' if max(one_peak, two_peak) < 2**30 else 'missed'}")


if __name__ == "__main__":
    main()
