"""Archive runs on dask.distributed: a folder of SRs and FHIR files -> Bundles (NDJSON) + a summary table.

Two passes keep memory bounded by one chunk, never the archive:
1. index: workers read chunks of files, write the normalised Reports to a spill file per chunk
   (pickled, one after the other) and return only (path, patient, place in the spill) rows and rejections;
2. assess: workers take chunks of patients, load just their Reports from the spills, assess and emit.
Each file is read once: unpickling a Report costs a fraction of reading the SR again. Every chunk's
output is written to its own part file by rename, so a run that is interrupted resumes where it
stopped: indexed files are not read again and finished patient chunks are not redone. Input and
output folders must be visible to every worker at the same path (a shared file system for a cluster).
The spills are this run's own intermediate files and are loaded only from the output folder.
The output follows FHIR Bulk Data: NDJSON parts and a manifest.json naming them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import pickle
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import expand, read_one
from .model import Report

SUMMARY_COLUMNS = ("patient_id", "patient_issuer", "time_points", "first_date", "latest_date", "state",
                   "recist_overall", "progressing_count", "organ_count", "best_overall_response", "preset",
                   "reports", "bundle_entries")
FILES_PER_CHUNK = 128
PATIENTS_PER_CHUNK = 32


@dataclass(frozen=True)
class BatchOptions:
    preset: str = "consensus-5"
    fhir_version: str = "R4"
    validate: bool = True  # check each Bundle against fhir.resources (about 50 ms a Bundle)
    plot: bool = True  # embed the spider plot (about 100 ms a Bundle)
    files_per_chunk: int = FILES_PER_CHUNK
    patients_per_chunk: int = PATIENTS_PER_CHUNK


@dataclass
class BatchResult:
    files: int = 0
    rejected: int = 0
    patients: int = 0
    unplaced: int = 0
    index_chunks_done: int = 0
    index_chunks_skipped: int = 0
    patient_chunks_done: int = 0
    patient_chunks_skipped: int = 0
    states: dict[str, int] = field(default_factory=dict)


# --- work done on the workers (pure functions of their arguments, importable by name) ----------------


def index_chunk(paths: list[str], spill: str) -> list[tuple[str, str, str, str, int, int]]:
    """(path, patient id, issuer, reason, offset, length) for each report in each file; reason is ""
    for a usable report, whose pickled Report is at offset/length in `spill`, and the rejection reason
    (with empty patient and no place) otherwise. The spill is complete on disk before this returns."""
    rows = []
    tmp = spill + ".tmp"
    with open(tmp, "wb") as fh:
        for path in paths:
            outcome = read_one(path)
            if not outcome.ok:
                rows.append((path, "", "", outcome.reason or "rejected", 0, 0))
                continue
            for report in outcome.reports:
                if not report.patient_id:
                    rows.append((path, "", "", "no patient id: cannot be placed on a patient's timeline", 0, 0))
                    continue
                blob = pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL)
                rows.append((path, report.patient_id, report.patient_issuer or "", "", fh.tell(), len(blob)))
                fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, spill)
    return rows


Place = tuple[str, int, int]  # spill file, offset, length


def load_reports(places: list[Place]) -> list[Report]:
    """The Reports at these places, each spill opened once."""
    by_spill: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for spill, offset, length in places:
        by_spill[spill].append((offset, length))
    reports = []
    for spill, spans in sorted(by_spill.items()):
        with open(spill, "rb") as fh:
            for offset, length in sorted(spans):
                fh.seek(offset)
                reports.append(pickle.loads(fh.read(length)))
    return reports


def assess_chunk(patients: list[tuple[str, str, list[Place]]], options: BatchOptions) -> tuple[list[str], list[dict]]:
    """Bundles (one JSON line each) and summary rows for a chunk of (patient id, issuer, report places)."""
    from .assess import assess_timelines
    from .emit import bundle_json, to_fhir
    from .timeline import build_timeline_result

    lines: list[str] = []
    rows: list[dict] = []
    for _patient_id, _issuer, places in patients:
        reports = load_reports(places)
        placed = build_timeline_result(reports)
        for assessment in assess_timelines(placed.timelines, options.preset):
            bundle = to_fhir(assessment, options.fhir_version, include_plot=options.plot, validate=options.validate)
            lines.append(bundle_json(bundle, indent=None))
            rows.append(_summary_row(assessment, len(reports), len(bundle["entry"])))
    return lines, rows


def _summary_row(assessment, reports: int, entries: int) -> dict:
    latest = assessment.latest
    dates = [tp.date for tp in assessment.timepoints if tp.date]
    return {
        "patient_id": assessment.patient_id,
        "patient_issuer": assessment.patient_issuer or "",
        "time_points": len(assessment.timepoints),
        "first_date": min(dates).isoformat() if dates else "",
        "latest_date": latest.date.isoformat() if latest and latest.date else "",
        "state": latest.state if latest else "",
        "recist_overall": latest.recist.overall if latest and latest.recist else "",
        "progressing_count": latest.progressing_count if latest else 0,
        "organ_count": latest.organ_count if latest else 0,
        "best_overall_response": assessment.best_overall_response or "",
        "preset": assessment.preset,
        "reports": reports,
        "bundle_entries": entries,
    }


# --- the driver (I/O) ----------------------------------------------------------------------------------


def run_batch(input_dir: str | os.PathLike, out_dir: str | os.PathLike, *, options: BatchOptions | None = None,
              scheduler: str | None = None, workers: int | None = None,
              progress: Callable[[str, int, int | None], None] | None = None) -> BatchResult:
    """Index, assess and write; `scheduler` is a dask scheduler address (default: a LocalCluster of
    `workers` processes). `progress(phase, done, total)` is called as chunks finish."""
    from dask.distributed import Client, LocalCluster

    options = options or BatchOptions()
    out = Path(out_dir)
    for folder in ("index", "bundles", "summary"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers or max(1, os.cpu_count() or 1), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        _index(client, Path(input_dir), out, options, result, progress)
        _assess(client, out, options, result, progress)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _finish(out, result)
    return result


def _index(client, input_dir: Path, out: Path, options: BatchOptions, result: BatchResult, progress) -> None:
    done_paths: set[str] = set()
    parts = sorted((out / "index").glob("part-*.tsv"))
    for part in parts:
        done_paths.update(row[0] for row in _read_tsv(part))
    result.index_chunks_skipped = len(parts)
    for spill in (out / "index").glob("part-*.reports"):
        if not spill.with_suffix(".tsv").exists():  # written by a run killed before its index part
            spill.unlink()
    first = 1 + max((int(p.stem.split("-")[1]) for p in parts), default=-1)
    todo = (p for p in expand([input_dir]) if p not in done_paths)
    chunks = ((number, chunk) for number, chunk in enumerate(_chunks(todo, options.files_per_chunk), start=first))

    def submit(number, chunk):
        return client.submit(index_chunk, chunk, str(_spill(out, number)), pure=False)

    done = len(parts)
    for number, rows in _bounded(client, chunks, submit, limit=2 * _worker_count(client)):
        # the spill is on disk; the index part that marks the chunk as done comes last
        _write_atomic(out / "index" / f"part-{number:06d}.tsv", _tsv(rows))
        result.index_chunks_done += 1
        done += 1
        if progress:
            progress("index", done, None)


def _spill(out: Path, number: int) -> Path:
    return out / "index" / f"part-{number:06d}.reports"


def _assess(client, out: Path, options: BatchOptions, result: BatchResult, progress) -> None:
    by_patient: dict[tuple[str, str], list[Place]] = defaultdict(list)
    rejected: list[tuple[str, str]] = []
    files: set[str] = set()
    for part in sorted((out / "index").glob("part-*.tsv")):
        spill = str(_spill(out, int(part.stem.split("-")[1])))
        for path, patient_id, issuer, reason, offset, length in _read_tsv(part):
            files.add(path)
            if reason:
                rejected.append((path, reason))
            else:
                by_patient[(patient_id, issuer)].append((spill, int(offset), int(length)))
    result.files = len(files)
    result.rejected = len({p for p, _ in rejected})
    result.unplaced = sum(1 for _, reason in rejected if reason.startswith("no patient id"))
    _write_atomic(out / "rejected.tsv", _tsv(sorted(set(rejected))))
    patients = [(pid, issuer, places) for (pid, issuer), places in sorted(by_patient.items())]
    result.patients = len(patients)
    chunks = [patients[i:i + options.patients_per_chunk] for i in range(0, len(patients), options.patients_per_chunk)]
    pending = []
    for number, chunk in enumerate(chunks):
        if (out / "summary" / f"part-{number:06d}.csv").exists():
            result.patient_chunks_skipped += 1
        else:
            pending.append((number, chunk))

    def submit(_number, chunk):
        return client.submit(assess_chunk, chunk, options, pure=False)

    done = result.patient_chunks_skipped
    for number, (lines, rows) in _bounded(client, iter(pending), submit, limit=2 * _worker_count(client)):
        # the Bundles first, then the summary part that marks the chunk as done
        _write_atomic(out / "bundles" / f"Bundle-{number:06d}.ndjson", "".join(line + "\n" for line in lines))
        _write_atomic(out / "summary" / f"part-{number:06d}.csv", _csv(rows))
        result.patient_chunks_done += 1
        done += 1
        if progress:
            progress("assess", done, len(chunks))


def _finish(out: Path, result: BatchResult) -> None:
    """One summary table (CSV and Parquet) and the Bulk Data manifest, from the parts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row for part in sorted((out / "summary").glob("part-*.csv"))
            for row in csv.DictReader(io.StringIO(part.read_text(encoding="utf-8")))]
    for row in rows:
        result.states[row["state"]] = result.states.get(row["state"], 0) + 1
    _write_atomic(out / "summary.csv", _csv(rows))
    table = pa.table({column: [_typed(column, row[column]) for row in rows] for column in SUMMARY_COLUMNS})
    tmp = out / "summary.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, out / "summary.parquet")
    manifest = {
        "transactionTime": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "request": "oligo batch",
        "requiresAccessToken": False,
        "output": [{"type": "Bundle", "url": f"bundles/{p.name}"}
                   for p in sorted((out / "bundles").glob("Bundle-*.ndjson"))],
        "error": [],
    }
    _write_atomic(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _typed(column: str, value: str):
    if column in ("time_points", "progressing_count", "organ_count", "reports", "bundle_entries"):
        return int(value)
    return value


# --- small helpers -----------------------------------------------------------------------------------


def _worker_count(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bounded(client, items: Iterator[tuple], submit, *, limit: int) -> Iterator[tuple]:
    """Submit at most `limit` tasks at a time; yield (tag, result) as each completes.
    `items` yields (tag, payload); `submit(tag, payload)` returns a future."""
    from dask.distributed import as_completed

    tags = {}
    running = as_completed()

    def add() -> None:
        item = next(items, None)
        if item is not None:
            future = submit(*item)
            tags[future.key] = item[0]
            running.add(future)

    for _ in range(limit):
        add()
    for future in running:
        yield tags.pop(future.key), future.result()
        add()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _tsv(rows: Iterable[tuple]) -> str:
    return "".join("\t".join(str(v).replace("\t", " ").replace("\n", " ") for v in row) + "\n" for row in rows)


def _read_tsv(path: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
