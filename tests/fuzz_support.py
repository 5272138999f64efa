"""Shared by the fuzz tests: the hypothesis settings of `make test` (seeded, bounded) and `make fuzz`
(long, random), and the one property every input must have: it ends in a result or a clear error.

`make test`: OLIGO_FUZZ_SCALE unset, every example is derived from a fixed seed (derandomize) and the
counts below keep the whole fuzz part near 30 s on two cores. `make fuzz` sets OLIGO_FUZZ_SCALE (how
many times more examples) and OLIGO_FUZZ_RANDOM=1 (a fresh random seed each run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

import adapter
from adapter.errors import InputError
from adapter.model import Report

SCALE = float(os.environ.get("OLIGO_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("OLIGO_FUZZ_RANDOM") == "1"


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=not RANDOM,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


def check_rejection(exc: InputError, label: str) -> str:
    """A clear error: it names the input and gives a reason on one line."""
    assert exc.source == label, (exc.source, label)
    assert exc.reason and exc.reason.strip(), "an InputError without a reason"
    assert str(exc).startswith(f"{label}: ")
    assert "Traceback" not in exc.reason
    return "rejected"


def check_reports(reports: list[Report]) -> str:
    """A result: Reports that serialise and carry on through the rest of the pipeline without error."""
    assert reports and all(isinstance(r, Report) for r in reports)
    for report in reports:
        report.to_dict()
    for result in adapter.assess(reports):
        bundle = adapter.to_fhir(result, version="R4")
        assert bundle["resourceType"] == "Bundle"
    return "read"
