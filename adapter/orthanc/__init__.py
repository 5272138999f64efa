"""The Orthanc integration: an Orthanc Python plugin script (`forward_sr.py`, shipped in this package)
that sends every new SR Orthanc stores to oligo-adapter's STOW-RS endpoint (`POST /studies`).

`python -m adapter.orthanc` prints where the script is, for Orthanc's "PythonScript" setting.
README.md ("Pointing a PACS at oligo-adapter") says why this route and how to install it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def plugin_script() -> Path:
    """The plugin script's path inside the installed package."""
    return Path(str(resources.files(__package__) / "forward_sr.py"))
