"""A small loopback load run inside `make test` (the 10,000-request run is `make load`): several clients at
once against `oligo serve` on SQLite and PostgreSQL, every request answered without error."""

from __future__ import annotations

import pytest

from benchmarks import load
from tests.service_support import postgres_url  # noqa: F401 (fixture: PostgreSQL reachable, never skipped)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_mixed_requests_all_succeed(database, capsys, postgres_url):  # noqa: F811
    assert load.main(["--requests", "240", "--clients", "4", "--patients", "3", "--database", database]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"240 requests from 4 clients on {database}") and ": 0 errors" in printed
