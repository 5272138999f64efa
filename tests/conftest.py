"""Shared test fixtures: the corpus of real files written by others, and generated SRs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("OLIGO_CORPUS", REPO.parent / "shared" / "corpus")).resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus; its absence is an error, never a silent skip."""
    if not (CORPUS / "MANIFEST.md").is_file():
        pytest.fail(f"corpus not found at {CORPUS}; set OLIGO_CORPUS to the shared corpus folder")
    return CORPUS
