"""`oligo batch` on dask: Bundles as NDJSON, the summary table, rejected files, and resuming."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from adapter.batch import BatchOptions, run_batch
from fixtures import generate as g
from fixtures.fhir_generate import write_fhir_series

FAST = BatchOptions(validate=False, plot=False, files_per_chunk=4, patients_per_chunk=1)


def small_patient(number: int) -> g.Patient:
    patient = g.Patient(f"BATCH-{number}", issuer="OLIGO-DEMO")
    grow = 6.0 if number % 2 else -4.0
    patient.time_points = [
        g.TimePoint(dt.date(2024, 1, 1), baseline=True, lesions=[
            g.Lesion("Liver 1", "liver", 30.0, 20.0, role="target"),
            g.Lesion("Lung 1", "lung", 20.0, 14.0, role="target")]),
        g.TimePoint(dt.date(2024, 3, 1), lesions=[
            g.Lesion("Liver 1", "liver", 20.0, 14.0), g.Lesion("Lung 1", "lung", 13.0, 9.0)]),
        g.TimePoint(dt.date(2024, 5, 1), lesions=[
            g.Lesion("Liver 1", "liver", 20.0 + grow * 2, 14.0), g.Lesion("Lung 1", "lung", 13.0, 9.0)]),
    ]
    return patient


@pytest.fixture(scope="module")
def archive(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("archive")
    for number in range(4):
        g.write_series(small_patient(number), root / "sr")
    for patient in g.demo_patients():
        write_fhir_series(patient, root / "fhir", shapes=("mcode-r4",))
    (root / "junk.txt").write_text("not a report\n")
    (root / "reportsi.dcm").write_bytes((corpus / "pydicom" / "reportsi.dcm").read_bytes())
    return root


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address


def rows(out):
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_outputs(archive, cluster, tmp_path):
    out = tmp_path / "out"
    result = run_batch(archive, out, options=FAST, scheduler=cluster)
    assert (result.files, result.rejected, result.patients) == (4 * 3 + 2 * 3 + 2, 2, 6)
    summary = {row["patient_id"]: row for row in rows(out)}
    assert sorted(summary) == ["BATCH-0", "BATCH-1", "BATCH-2", "BATCH-3", "DEMO-OLIGO-1", "DEMO-POLY-2"]
    # odd patients: Liver 1 grows 20 -> 32 mm (+60 %, +12 mm) while the lung lesion stays controlled
    assert [summary[f"BATCH-{n}"]["state"] for n in range(4)] == [
        "no-progression", "oligoprogression", "no-progression", "oligoprogression"]
    assert summary["DEMO-OLIGO-1"]["state"] == "oligoprogression"  # read from FHIR (mCODE R4)
    assert summary["DEMO-POLY-2"]["state"] == "polyprogression"
    # sum 50 -> 33 (PR) -> 45 mm: +36 % and +12 mm over the nadir, RECIST PD from a single lesion
    assert summary["BATCH-1"]["recist_overall"] == "PD" and summary["BATCH-1"]["time_points"] == "3"
    bundles = [json.loads(line) for part in sorted((out / "bundles").glob("*.ndjson"))
               for line in part.read_text().splitlines()]
    assert len(bundles) == 6
    assert all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in bundles)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(o["url"] for o in manifest["output"]) == [f"bundles/Bundle-{n:06d}.ndjson" for n in range(6)]
    table = pq.read_table(out / "summary.parquet").to_pylist()
    assert [r["patient_id"] for r in table] == [r["patient_id"] for r in rows(out)]
    assert table[1]["progressing_count"] == 1
    rejected = (out / "rejected.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in rejected] == [str(archive / "junk.txt"), str(archive / "reportsi.dcm")]


def test_resumes_without_redoing_finished_work(archive, cluster, tmp_path):
    out = tmp_path / "out"
    calls = []

    def stop_after_two_patient_chunks(phase, done, total):
        calls.append(phase)
        if phase == "assess" and calls.count("assess") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(archive, out, options=FAST, scheduler=cluster, progress=stop_after_two_patient_chunks)
    assert len(list((out / "summary").glob("part-*.csv"))) == 2
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "bundles").glob("*.ndjson")}

    resumed = run_batch(archive, out, options=FAST, scheduler=cluster)
    assert (resumed.index_chunks_done, resumed.patient_chunks_skipped, resumed.patient_chunks_done) == (0, 2, 4)
    assert all((out / "bundles" / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())
    assert len(rows(out)) == 6

    again = run_batch(archive, out, options=FAST, scheduler=cluster)
    assert (again.index_chunks_done, again.patient_chunks_done, again.patient_chunks_skipped) == (0, 0, 6)


def test_resumes_an_interrupted_index_without_reading_indexed_files_again(archive, cluster, tmp_path):
    out = tmp_path / "out"
    calls = []

    def stop_after_two_index_chunks(phase, done, total):
        calls.append(phase)
        if phase == "index" and len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(archive, out, options=FAST, scheduler=cluster, progress=stop_after_two_index_chunks)
    indexed = sorted((out / "index").glob("part-*.tsv"))
    assert len(indexed) == 2
    # a spill written by a run killed before the index part that names it: never read, removed
    (out / "index" / "part-000099.reports").write_bytes(b"left over by a killed run")
    resumed = run_batch(archive, out, options=FAST, scheduler=cluster)
    assert resumed.index_chunks_skipped == 2 and resumed.index_chunks_done == 3  # 20 files, 4 per chunk
    assert (resumed.files, resumed.rejected, resumed.patients) == (20, 2, 6)
    assert not (out / "index" / "part-000099.reports").exists()
    fresh = run_batch(archive, tmp_path / "fresh", options=FAST, scheduler=cluster)
    assert rows(out) == rows(tmp_path / "fresh") and fresh.states == resumed.states


def test_cli(archive, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "adapter", "batch", str(archive), "-o", str(out), "--workers", "1",
                             "--no-plot", "--no-validate"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "20 files, 2 rejected" in result.stdout
    assert "oligoprogression 3" in result.stdout and "polyprogression 1" in result.stdout
    assert "Traceback" not in result.stderr
    assert subprocess.run([sys.executable, "-m", "adapter", "batch", str(tmp_path / "nowhere"), "-o", str(out)],
                          capture_output=True, text=True).returncode == 2
