"""Files and directories named on a command line -> Reports, one outcome per file.

An edge module: it does the file I/O and hands bytes to the sources. Every file ends either in
Reports or in one plain reason; one bad file never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .model import Report
from .sources import looks_like_fhir, read_fhir, read_sr


@dataclass(frozen=True)
class Outcome:
    path: str
    reports: tuple[Report, ...] = ()
    reason: str | None = None  # set when the input was rejected

    @property
    def ok(self) -> bool:
        return self.reason is None


def expand(inputs: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Each file as given; each directory recursed in sorted order, hidden entries skipped."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield str(Path(root) / name)
        else:
            yield str(path)


def read_one(path: str) -> Outcome:
    if not os.path.exists(path):
        return Outcome(path, reason="does not exist")
    if not os.path.isfile(path):
        return Outcome(path, reason="is not a regular file")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Outcome(path, reason=f"cannot be read ({exc.strerror or exc})")
    try:
        if looks_like_fhir(data, path):  # FHIR resource, Bundle or NDJSON; DICOM stays with read_sr
            return Outcome(path, reports=tuple(read_fhir(data, name=path)))
        return Outcome(path, reports=(read_sr(data, name=path),))
    except InputError as exc:
        return Outcome(path, reason=exc.reason)


def read_all(inputs: Iterable[str | os.PathLike]) -> list[Outcome]:
    return [read_one(path) for path in expand(inputs)]
