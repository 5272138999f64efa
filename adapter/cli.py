"""The `oligo` command line (DESIGN.md §5.1).

Exit status: 0 every input used; 2 usage error or no usable input; 3 some inputs rejected (the rest
processed). Each rejected input gets one line on stderr, "path: reason". Never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .inputs import Outcome, read_all
from .model import Finding, Measurement, Report
from .timeline import build_timeline_result, describe_timeline, timeline_to_dict

EXIT_OK, EXIT_USAGE, EXIT_SOME_REJECTED = 0, 2, 3

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Lesion measurements from DICOM SR (TID 1500) to oligo/polyprogression reports.",
)


@app.callback()
def _root() -> None:
    """oligo-adapter command line."""


InputsArg = Annotated[list[str], typer.Argument(help="Files or directories (recursed).", show_default=False)]


@app.command()
def inspect(
    inputs: InputsArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show what was read from each input: patient, study, date, lesions, measurements (mm), warnings."""
    outcomes = read_all(inputs)
    _report_rejections(outcomes)
    if as_json:
        document = {
            "inputs": [
                {"path": o.path, "reports": [r.to_dict() for r in o.reports]} for o in outcomes if o.ok
            ],
            "rejected": [{"path": o.path, "reason": o.reason} for o in outcomes if not o.ok],
            **_timelines_document(outcomes),
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        for outcome in outcomes:
            for report in outcome.reports:
                sys.stdout.write(_describe_report(outcome.path, report))
        sys.stdout.write(_describe_timelines(outcomes))
    raise typer.Exit(_exit_status(outcomes))


def _timelines_document(outcomes: list[Outcome]) -> dict:
    """Per-patient timelines ("patients") and the reports no timeline could take ("unplaced")."""
    paths = {r.source_id: o.path for o in outcomes for r in o.reports}
    result = build_timeline_result(r for o in outcomes for r in o.reports)
    return {
        "patients": [timeline_to_dict(t) for t in result.timelines],
        "unplaced": [{"path": paths.get(p.source_id), **p.to_dict()} for p in result.problems],
    }


def _describe_timelines(outcomes: list[Outcome]) -> str:
    paths = {r.source_id: o.path for o in outcomes for r in o.reports}
    result = build_timeline_result(r for o in outcomes for r in o.reports)
    text = "".join(describe_timeline(t) for t in result.timelines)
    return text + "".join(f"not on any timeline: {paths.get(p.source_id, p.source_id)}: {p.reason}\n"
                          for p in result.problems)


@app.command()
def assess(
    inputs: Annotated[list[str] | None, typer.Argument(help="Files or directories (recursed).",
                                                       show_default=False)] = None,
    preset: Annotated[str, typer.Option("--preset", help="Named preset (mappings/presets.yaml).")] = "consensus-5",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    treated: Annotated[list[str], typer.Option(
        "--treated", help="Local therapy of a lesion: LESION=YYYY-MM-DD (repeatable).")] = [],  # noqa: B006
    criteria: Annotated[str, typer.Option("--criteria", help="recist or irecist.")] = "recist",
    database: Annotated[str | None, typer.Option("--database", help="Read the patient's reports from this "
                                                 "store (path or URL) instead of INPUTs.")] = None,
    patient: Annotated[str | None, typer.Option("--patient", help="Patient ID (with --database).")] = None,
) -> None:
    """Per-patient timeline and assessment of every time point (RECIST 1.1 and the oligo/poly state)."""
    from .assess import CRITERIA, assess_timelines, preset_names

    if preset not in preset_names():
        _usage(f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
    if criteria not in CRITERIA:
        _usage(f"unknown criteria {criteria!r}; use one of {', '.join(CRITERIA)}")
    therapy = _parse_treated(treated)
    if bool(database) != bool(patient) or bool(database) == bool(inputs):
        _usage("give INPUT files, or --database URL with --patient ID")
    outcomes = read_all(inputs) if inputs else _stored_outcomes(database, patient)
    _report_rejections(outcomes)
    paths = {r.source_id: o.path for o in outcomes for r in o.reports}
    placed = build_timeline_result(r for o in outcomes for r in o.reports)
    for problem in placed.problems:
        sys.stderr.write(f"{paths.get(problem.source_id, problem.source_id)}: {problem.reason}\n")
    results = assess_timelines(placed.timelines, preset, treated=therapy, criteria=criteria)
    if as_json:
        document = {"patients": [result.to_dict() for result in results]}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        for result in results:
            sys.stdout.write(_describe_assessment(result))
    status = _exit_status(outcomes)
    if status == EXIT_OK and placed.problems:
        status = EXIT_SOME_REJECTED if placed.timelines else EXIT_USAGE
    raise typer.Exit(status)


def _stored_outcomes(database: str, patient: str) -> list[Outcome]:
    """The patient's current reports in the store, as if read from one input named by the database. A
    patient still queued is assessed first, so the stored assessment (and its delivery) catch up too."""
    from .service.commands import open_store
    from .service.config import ConfigError, Settings

    try:
        store = open_store(Settings(database=database))
    except ConfigError as exc:
        _usage(str(exc))
    try:
        for failure in [a for a in store.assess_now(patient) if a.error]:
            sys.stderr.write(f"{store.describe()} --patient {patient}: the stored assessment could not be made "
                             f"({failure.error}); it stays queued\n")
        reports = store.reports_of(patient)
    finally:
        store.close()
    if not reports:
        return [Outcome(f"{store.describe()} --patient {patient}", reason="no reports of this patient are stored")]
    return [Outcome(store.describe(), reports=tuple(reports))]


def _service_settings(config: str | None, **overrides):
    from .service.config import ConfigError, Settings

    try:
        return Settings.load(config, **overrides)
    except ConfigError as exc:
        _usage(str(exc))


def _service_run(call) -> None:
    from .service.config import ConfigError

    try:
        status = call()
    except ConfigError as exc:
        _usage(str(exc))
    raise typer.Exit(status)


ConfigOpt = Annotated[str | None, typer.Option("--config", help="Settings file (TOML); default $OLIGO_CONFIG.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="Store path or URL; default $OLIGO_DATABASE.")]


@app.command()
def ingest(
    inputs: InputsArg,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Store SRs and FHIR files and reassess their patients; sending a file again changes nothing."""
    from .service import commands

    settings = _service_settings(config, database=database)
    _service_run(lambda: commands.ingest(inputs, settings, as_json))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Service processes sharing the port and the "
                                                                  "store; default 1.")] = None,
) -> None:
    """The HTTP service for integration engines (FastAPI + uvicorn), with delivery to the EHR."""
    from .service import commands

    settings = _service_settings(config, database=database, workers=workers)
    _service_run(lambda: commands.serve(settings, host, port))


@app.command()
def listen(
    ae_title: Annotated[str | None, typer.Option("--ae-title", help="Our AE title; default OLIGO.")] = None,
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 11112,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    allow_ae: Annotated[list[str], typer.Option("--allow-ae", help="Calling AE title let in (repeatable); "
                                                                   "default: any.")] = [],  # noqa: B006
    max_associations: Annotated[int | None, typer.Option("--max-associations",
                                                         help="Concurrent associations; default 10.")] = None,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """DICOM listener (C-STORE SCP for SRs, C-ECHO): each SR is stored, assessed and delivered like POST /dicom."""
    from .service import commands

    settings = _service_settings(config, database=database, listen_ae_title=ae_title,
                                 listen_allowed_aets=",".join(allow_ae) or None,
                                 listen_max_associations=max_associations)
    _service_run(lambda: commands.listen(settings, host, port))


@app.command()
def deliveries(
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or failed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    retry: Annotated[list[int], typer.Option("--retry", help="Put this failed delivery back in the outbox "
                                                             "(repeatable).")] = [],  # noqa: B006
) -> None:
    """The outbox of deliveries to the EHR, e.g. `--status failed`; `--retry ID` after fixing the EHR."""
    from .service import commands

    if status not in (None, "pending", "delivered", "failed"):
        _usage(f"--status {status!r}: use pending, delivered or failed")
    settings = _service_settings(config, database=database)
    _service_run(lambda: commands.deliveries(settings, status, as_json, retry))


@app.command()
def report(
    inputs: InputsArg,
    output: Annotated[str | None, typer.Option(
        "-o", "--output", help="Write the FHIR Bundle here (default: print it). Several patients: "
                               "the patient id is added to the file name.")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Also write the spider plot (PNG) here.")] = None,
    preset: Annotated[str, typer.Option("--preset", help="Named preset (mappings/presets.yaml).")] = "consensus-5",
    fhir_version: Annotated[str, typer.Option("--fhir-version", help="R4 (default) or R5.")] = "R4",
    treated: Annotated[list[str], typer.Option(
        "--treated", help="Local therapy of a lesion: LESION=YYYY-MM-DD (repeatable).")] = [],  # noqa: B006
    issued: Annotated[str | None, typer.Option(
        "--issued", help="DiagnosticReport.issued (ISO date-time); default: when the latest report was "
                         "written.")] = None,
    code_system_url: Annotated[str | None, typer.Option(
        "--code-system-url", help="Canonical URL of the local CodeSystem (oligo/poly codes).")] = None,
    identifier_system: Annotated[str | None, typer.Option(
        "--identifier-system", help="Prefix of the identifier systems this adapter mints.")] = None,
) -> None:
    """The main job: a FHIR transaction Bundle with the DiagnosticReport for each patient's latest scan."""
    import datetime as dt
    from pathlib import Path

    from .assess import assess_timelines, preset_names
    from .emit import VERSIONS, EmitOptions, bundle_json, spider_png, to_fhir

    if preset not in preset_names():
        _usage(f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
    if fhir_version.upper() not in VERSIONS:
        _usage(f"unknown FHIR version {fhir_version!r}; use one of {', '.join(VERSIONS)}")
    moment = None
    if issued is not None:
        try:
            moment = dt.datetime.fromisoformat(issued)
        except ValueError:
            _usage(f"--issued {issued!r}: expected an ISO date-time such as 2024-05-08T12:00:00+00:00")
    therapy = _parse_treated(treated)
    outcomes = read_all(inputs)
    _report_rejections(outcomes)
    paths = {r.source_id: o.path for o in outcomes for r in o.reports}
    placed = build_timeline_result(r for o in outcomes for r in o.reports)
    for problem in placed.problems:
        sys.stderr.write(f"{paths.get(problem.source_id, problem.source_id)}: {problem.reason}\n")
    results = assess_timelines(placed.timelines, preset, treated=therapy)
    if len(results) > 1 and output is None:
        _usage(f"{len(results)} patients in the inputs: give -o FILE (one Bundle per patient)")
    summary = sys.stdout if output is not None else sys.stderr
    for result in results:
        png = spider_png(result) if result.timepoints else None
        options = EmitOptions(issued=moment, code_system_url=code_system_url, identifier_system=identifier_system,
                              plot_png=png)
        try:
            bundle = to_fhir(result, fhir_version.upper(), options=options)
        except ValueError as exc:
            sys.stderr.write(f"patient {result.patient_id}: {exc}\n")
            continue
        text = bundle_json(bundle)
        where = "stdout"
        if output is None:
            sys.stdout.write(text)
        else:
            where = _write(_per_patient(Path(output), result.patient_id, len(results)), text.encode("utf-8"))
        line = f"patient {result.patient_id}: FHIR {fhir_version.upper()} Bundle ({len(bundle['entry'])} entries) " \
               f"-> {where}"
        if plot is not None and png is not None:
            line += f"; spider plot -> {_write(_per_patient(Path(plot), result.patient_id, len(results)), png)}"
        conclusion = bundle["entry"][-1]["resource"]["conclusion"]
        summary.write(f"{line}\n  conclusion: {conclusion}\n")
    status = _exit_status(outcomes)
    if status == EXIT_OK and placed.problems:
        status = EXIT_SOME_REJECTED if placed.timelines else EXIT_USAGE
    raise typer.Exit(status)


def _per_patient(path, patient_id: str, patients: int):
    """One file per patient when there are several: bundle.json -> bundle-P1.json."""
    if patients <= 1:
        return path
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in patient_id)
    return path.with_name(f"{path.stem}-{safe}{path.suffix}")


def _write(path, data: bytes) -> str:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        sys.stderr.write(f"oligo: cannot write {path}: {exc.strerror or exc}\n")
        raise typer.Exit(EXIT_USAGE) from None
    return str(path)


def _usage(message: str) -> None:
    sys.stderr.write(f"oligo: {message}\n")
    raise typer.Exit(EXIT_USAGE)


def _parse_treated(values: list[str]) -> dict:
    import datetime as dt

    out = {}
    for value in values:
        lesion, sep, date = value.rpartition("=")
        try:
            out[lesion.strip()] = dt.date.fromisoformat(date.strip())
        except ValueError:
            sep = ""
        if not sep or not lesion.strip():
            _usage(f"--treated {value!r}: expected LESION=YYYY-MM-DD")
    return out


def _describe_assessment(result) -> str:
    lines = [f"patient {result.patient_id or '(no patient id)'}  preset {result.preset}  criteria {result.criteria}"]
    for tp in result.timepoints:
        recist = tp.recist.overall if tp.recist else "-"
        extra = f"  iRECIST {tp.irecist.overall}" if tp.irecist else ""
        lines.append(f"  {tp.date or '(no date)'}  {tp.state}  RECIST {recist}{extra}  "
                     f"progressing {tp.progressing_count}")
        lines += [f"    {reason}" for reason in tp.reasons]
    lines.append(f"  best overall response: {result.best_overall_response or '-'} ({result.best_overall_reason})")
    lines += [f"  warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


@app.command()
def batch(
    input_dir: Annotated[str, typer.Argument(help="Folder of SRs and FHIR files (recursed).", show_default=False)],
    output: Annotated[str, typer.Option("-o", "--output", help="Output folder (Bundles, summary, manifest).")],
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a dask scheduler; default: a local cluster.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local worker processes (default: cores).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="Named preset (mappings/presets.yaml).")] = "consensus-5",
    fhir_version: Annotated[str, typer.Option("--fhir-version", help="R4 (default) or R5.")] = "R4",
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate", help="Check each Bundle against the FHIR models (slower).")] = True,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Embed the spider plot in each report.")] = True,
) -> None:
    """Archive run on dask: Bundles as NDJSON and a per-patient summary (CSV, Parquet); resumable."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .assess import preset_names
    from .batch import BatchOptions, run_batch
    from .emit import VERSIONS

    if not Path(input_dir).is_dir():
        _usage(f"{input_dir}: is not a folder")
    if preset not in preset_names():
        _usage(f"unknown preset {preset!r}; known presets: {', '.join(preset_names())}")
    if fhir_version.upper() not in VERSIONS:
        _usage(f"unknown FHIR version {fhir_version!r}; use one of {', '.join(VERSIONS)}")
    if workers is not None and workers < 1:
        _usage("--workers must be at least 1")
    options = BatchOptions(preset=preset, fhir_version=fhir_version.upper(), validate=validate, plot=plot)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_stderr_console(), transient=False) as bar:
        tasks = {"index": bar.add_task("reading files (chunks)", total=None),
                 "assess": bar.add_task("assessing patients (chunks)", total=None)}

        def progress(phase: str, done: int, total: int | None) -> None:
            bar.update(tasks[phase], completed=done, total=total)

        result = run_batch(input_dir, output, options=options, scheduler=scheduler, workers=workers,
                           progress=progress)
    states = ", ".join(f"{state} {count}" for state, count in sorted(result.states.items())) or "none"
    sys.stdout.write(
        f"{result.files} files, {result.rejected} rejected (see {Path(output) / 'rejected.tsv'}), "
        f"{result.patients} patients: {states}\n"
        f"chunks: index {result.index_chunks_done} done / {result.index_chunks_skipped} already done, "
        f"patients {result.patient_chunks_done} done / {result.patient_chunks_skipped} already done\n"
        f"Bundles: {Path(output) / 'manifest.json'}; summary: {Path(output) / 'summary.csv'} and summary.parquet\n")
    if result.files == 0:
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_SOME_REJECTED if result.rejected else EXIT_OK)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _report_rejections(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if not outcome.ok:
            sys.stderr.write(f"{outcome.path}: {outcome.reason}\n")


def _exit_status(outcomes: list[Outcome]) -> int:
    used = sum(1 for o in outcomes if o.ok)
    if used == 0:
        if not outcomes:
            sys.stderr.write("oligo: no input files found\n")
        return EXIT_USAGE
    return EXIT_OK if used == len(outcomes) else EXIT_SOME_REJECTED


def _describe_report(path: str, report: Report) -> str:
    patient = report.patient_id or "(no patient id)"
    if report.patient_issuer:
        patient += f" ({report.patient_issuer})"
    date = report.imaging_date.isoformat() if report.imaging_date else "(no date)"
    flags = "/".join(f for f in (report.completion_flag, report.verification_flag) if f)
    lines = [
        path,
        f"  patient {patient}  study {report.study_uid or '(none)'}  date {date}"
        f" [{report.imaging_date_source or '-'}]",
        f"  {_source_kind(report)} {report.source_id}  {flags}  {len(report.lesions)} lesion(s) of {len(report.findings)} finding(s)",
    ]
    lines += [f"  {_describe_finding(f)}" for f in report.findings]
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def _source_kind(report: Report) -> str:
    return f"FHIR {report.fhir_version}" if report.fhir_version else "SR"


def _describe_finding(finding: Finding) -> str:
    parts = [finding.name]
    tags = []
    if finding.role:
        tags.append(finding.role.value)
    if not finding.is_lesion:
        tags.append("not a lesion")
    if finding.anatomy.organ:
        tags.append(finding.anatomy.organ + (" node" if finding.anatomy.nodal and "node" not in
                                             finding.anatomy.organ else ""))
    if finding.response:
        tags.append(finding.response.meaning or finding.response.value)
    if tags:
        parts.append("[" + ", ".join(tags) + "]")
    sizes = [_describe_measurement(m) for m in finding.measurements if m.kind.value != "other"]
    others = sum(1 for m in finding.measurements if m.kind.value == "other")
    if others:
        sizes.append(f"{others} other measurement(s)")
    return " ".join(parts) + (": " + ", ".join(sizes) if sizes else "")


def _describe_measurement(m: Measurement) -> str:
    if m.value is None:
        unit = m.original_unit.value if m.original_unit else "no unit"
        return f"{m.kind.value} {m.original_value} {unit} (quarantined)"
    return f"{m.kind.value} {_number(m.value)} {m.unit}"


def _number(value) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("oligo: interrupted\n")
        sys.exit(130)
