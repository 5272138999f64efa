"""Archive runs on dask.distributed: a folder of SRs and FHIR files -> Bundles (NDJSON) + a summary table.

Two passes keep memory bounded by one chunk, never the archive:
1. index: workers read chunks of files and return only (path, patient) pairs and rejections;
2. assess: workers take chunks of patients, read just their files again, assess and emit.
Every chunk's output is written to its own part file by rename, so a run that is interrupted resumes
where it stopped: indexed files are not read again and finished patient chunks are not redone.
The output follows FHIR Bulk Data: NDJSON parts and a manifest.json naming them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import expand, read_one

SUMMARY_COLUMNS = ("patient_id", "patient_issuer", "time_points", "first_date", "latest_date", "state",
                   "recist_overall", "progressing_count", "organ_count", "best_overall_response", "preset",
                   "reports", "bundle_entries")
FILES_PER_CHUNK = 64
PATIENTS_PER_CHUNK = 16


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


def index_chunk(paths: list[str]) -> list[tuple[str, str, str, str]]:
    """(path, patient id, issuer, reason) for each report in each file; reason is "" for a usable
    report and the rejection reason (with empty patient) otherwise."""
    rows = []
    for path in paths:
        outcome = read_one(path)
        if not outcome.ok:
            rows.append((path, "", "", outcome.reason or "rejected"))
            continue
        for report in outcome.reports:
            if report.patient_id:
                rows.append((path, report.patient_id, report.patient_issuer or "", ""))
            else:
                rows.append((path, "", "", "no patient id: cannot be placed on a patient's timeline"))
    return rows


def assess_chunk(patients: list[tuple[str, str, list[str]]], options: BatchOptions) -> tuple[list[str], list[dict]]:
    """Bundles (one JSON line each) and summary rows for a chunk of (patient id, issuer, paths)."""
    from .assess import assess_timelines
    from .emit import bundle_json, to_fhir
    from .timeline import build_timeline_result

    lines: list[str] = []
    rows: list[dict] = []
    for patient_id, issuer, paths in patients:
        reports = [r for path in paths for r in read_one(path).reports
                   if r.patient_id == patient_id and (r.patient_issuer or "") == issuer]
        placed = build_timeline_result(reports)
        for assessment in assess_timelines(placed.timelines, options.preset):
            bundle = to_fhir(assessment, options.fhir_version, include_plot=options.plot, validate=options.validate)
            lines.append(bundle_json(bundle).replace("\n", ""))
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
    todo = (p for p in expand([input_dir]) if p not in done_paths)
    chunks = ((None, chunk) for chunk in _chunks(todo, options.files_per_chunk))

    def submit(chunk):
        return client.submit(index_chunk, chunk, pure=False)

    next_part = len(parts)
    for _, rows in _bounded(client, chunks, submit, limit=2 * _worker_count(client)):
        _write_atomic(out / "index" / f"part-{next_part:06d}.tsv", _tsv(rows))
        next_part += 1
        result.index_chunks_done += 1
        if progress:
            progress("index", next_part, None)


def _assess(client, out: Path, options: BatchOptions, result: BatchResult, progress) -> None:
    by_patient: dict[tuple[str, str], set[str]] = defaultdict(set)
    rejected: list[tuple[str, str]] = []
    files: set[str] = set()
    for part in sorted((out / "index").glob("part-*.tsv")):
        for path, patient_id, issuer, reason in _read_tsv(part):
            files.add(path)
            if reason:
                rejected.append((path, reason))
            else:
                by_patient[(patient_id, issuer)].add(path)
    result.files = len(files)
    result.rejected = len({p for p, _ in rejected})
    result.unplaced = sum(1 for _, reason in rejected if reason.startswith("no patient id"))
    _write_atomic(out / "rejected.tsv", _tsv(sorted(set(rejected))))
    patients = [(pid, issuer, sorted(paths)) for (pid, issuer), paths in sorted(by_patient.items())]
    result.patients = len(patients)
    chunks = [patients[i:i + options.patients_per_chunk] for i in range(0, len(patients), options.patients_per_chunk)]
    pending = []
    for number, chunk in enumerate(chunks):
        if (out / "summary" / f"part-{number:06d}.csv").exists():
            result.patient_chunks_skipped += 1
        else:
            pending.append((number, chunk))

    def submit(chunk):
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
    `items` yields (tag, payload); `submit(payload)` returns a future."""
    from dask.distributed import as_completed

    tags = {}
    running = as_completed()

    def add() -> None:
        item = next(items, None)
        if item is not None:
            future = submit(item[1])
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
