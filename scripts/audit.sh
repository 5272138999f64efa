#!/bin/sh
# The dependency audit of `make test` (and CI): pip-audit over the installed environment, the project
# itself (editable) left out. A known vulnerability fails the run and names the package, its version,
# the advisory and the fixed version. pip-audit asks the PyPI advisory service: where that cannot be
# reached (an offline mirror, as on the project's own build machines) packages are listed as "could not
# be audited" and the run goes on with that warning; with OLIGO_AUDIT_STRICT=1 (for a machine that does
# reach the service) it fails the run too.
set -u
BIN="${BIN:-.venv/bin}"
STRICT=""
if [ "${OLIGO_AUDIT_STRICT:-}" = "1" ]; then STRICT="--strict"; fi
if "$BIN/pip-audit" --skip-editable --progress-spinner off --desc off $STRICT; then
  exit 0
fi
echo "make test: pip-audit failed: the packages named above have known vulnerabilities (upgrade them via" >&2
echo "the bounds in pyproject.toml) or could not be audited (no access to the PyPI advisory service)" >&2
exit 1
