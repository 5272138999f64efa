"""SR parse speed: adapter.read_sr against baselines measured in the same run.

Baselines: a plain pydicom read plus a walk of every content item (what a careful script does) and
highdicom's srread plus its measurement-group getters; when installed, dcmqi's tid1500reader and
DCMTK's dsrdump (programs, so each call includes starting a process). Figures are the median of
several rounds; ratios are what matter (same machine, same run). Targets (issue 9, one core):
>= 1,500 8-lesion SRs/s, >= 7x the pydicom walk, >= 100x highdicom; <= 60 ms for the 1,561-measurement
SR read cold.

    make bench        # or: python -m benchmarks.sr_read

Timings on a shared machine are noisy; instruction counts are not. `--instructions` runs a fixed
workload under valgrind's callgrind (200 8-lesion SRs read in turn after one warm-up pass, and the
radiomics SR read cold) and prints the instructions of one pass: the count of two passes minus that
of one, so start-up and imports cancel out. The cycle collector is off in that workload: its runs fall
at different points from run to run and move the count by up to 10 % (it takes a few % of the time).

    python -m benchmarks.sr_read --instructions
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom

import adapter
from adapter.sources import dicom_fast

CORPUS = Path(os.environ.get("OLIGO_CORPUS", Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
RADIOMICS = "tid1500-fhir/rsna2018_dataset3/1.2.276.0.7230010.3.1.4.0.13541.1541454323.848792.dcm"
ARCHIVE_SIZE = 200


def eight_lesion_sr(number: int = 0) -> bytes:
    """An 8-lesion SR; each `number` gives another patient, study and other sizes."""
    from fixtures import generate as g

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
    import highdicom as hd

    sr = hd.sr.srread(io.BytesIO(data))
    count = 0
    for getter in ("get_planar_roi_measurement_groups", "get_volumetric_roi_measurement_groups",
                   "get_image_measurement_groups"):
        for group in getattr(sr.content, getter)():
            count += len(group.get_measurements())
    return count


def program(*command: str):
    """A program run on a file, or None when it is not installed; the file is the last argument."""
    if shutil.which(command[0]) is None:
        return None

    def run(path: Path) -> None:
        subprocess.run([*command, str(path)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def tid1500reader(out: Path):
    """dcmqi's reader (its JSON written to `out`), or None when it is not installed."""
    if shutil.which("tid1500reader") is None:
        return None

    def run(path: Path) -> None:
        subprocess.run(["tid1500reader", "--metaDataFileName", str(out), "--inputSRFileName", str(path)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def per_second(fn, inputs: list, budget: float = 1.5, rounds: int = 5) -> float:
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


def write_archive(folder: Path) -> list[Path]:
    paths = []
    for number in range(ARCHIVE_SIZE):
        paths.append(folder / f"sr-{number:03d}.dcm")
        paths[-1].write_bytes(eight_lesion_sr(number))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", action="store_true", help="instruction counts under callgrind")
    parser.add_argument("--workload", choices=("archive", "radiomics"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        fixed_workload(args.workload, args.inputs, args.passes)
    elif args.instructions:
        instructions()
    else:
        throughput()


def throughput() -> None:
    print(f"SR parse throughput, one core ({os.uname().machine}, Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_archive(Path(tmp))
        archive = [path.read_bytes() for path in paths]
        print(f"\n{len(archive)} different 8-lesion SRs, read in turn ({len(archive[0]):,} bytes each)")
        ours = per_second(adapter.read_sr, archive)
        report_rates(ours, [("pydicom read + walk", per_second(pydicom_walk, archive)),
                            ("highdicom srread", per_second(highdicom_groups, archive[:20]))]
                     + programs(paths, Path(tmp)))
        radiomics = CORPUS / RADIOMICS
        if radiomics.is_file():
            data = [radiomics.read_bytes()]
            print(f"\n1,561-measurement SR (rsna2018_dataset3, {len(data[0]):,} bytes), caches emptied before each "
                  "read")
            ours = per_second(cold(adapter.read_sr), data)
            report_rates(ours, [("pydicom read + walk", per_second(pydicom_walk, data))]
                         + programs([radiomics], Path(tmp)))


def programs(paths: list[Path], tmp: Path) -> list[tuple[str, float]]:
    """The installed external readers, each timed on the same files (a process per file)."""
    rates = []
    for name, run in (("dcmqi tid1500reader", tid1500reader(tmp / "out.json")),
                      ("DCMTK dsrdump", program("dsrdump"))):
        if run is None:
            continue
        try:
            run(paths[0])
        except subprocess.CalledProcessError as exc:
            print(f"  {name}: fails on {paths[0].name} (exit status {exc.returncode}); not timed")
            continue
        rates.append((name + " (process)", per_second(run, paths[:20])))
    return rates


def report_rates(ours: float, baselines: list[tuple[str, float]]) -> None:
    print(f"  {'adapter.read_sr':26} {ours:10.1f}/s  {1000 / ours:8.2f} ms")
    for name, rate in baselines:
        print(f"  {name:26} {rate:10.1f}/s  {1000 / rate:8.2f} ms   ours {ours / rate:6.1f}x")


def fixed_workload(workload: str, inputs: Path | None, passes: int) -> None:
    """What --instructions counts: a warm-up read of everything, then `passes` passes."""
    gc.disable()
    if workload == "archive":
        archive = [path.read_bytes() for path in sorted(inputs.glob("*.dcm"))]
        for data in archive:
            adapter.read_sr(data)
        for _ in range(passes):
            for data in archive:
                adapter.read_sr(data)
    else:
        data = (CORPUS / RADIOMICS).read_bytes()
        adapter.read_sr(data)
        for _ in range(passes):
            dicom_fast.clear_caches()
            adapter.read_sr(data)


def instructions() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        write_archive(Path(tmp))
        for workload, what, per in (("archive", f"{ARCHIVE_SIZE} 8-lesion SRs, read in turn", ARCHIVE_SIZE),
                                    ("radiomics", "1,561-measurement SR, read cold", 1)):
            if workload == "radiomics" and not (CORPUS / RADIOMICS).is_file():
                continue
            one, two = (callgrind(workload, Path(tmp), passes) for passes in (1, 2))
            print(f"{what}: {two - one:,} instructions a pass ({(two - one) // per:,} a file)")


def callgrind(workload: str, inputs: Path, passes: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
               "benchmarks.sr_read", "--workload", workload, "--inputs", str(inputs), "--passes", str(passes)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=Path(__file__).resolve().parents[1])
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


if __name__ == "__main__":
    main()
