#!/bin/sh
# Make sure the test FHIR server and validator (tests/fhir_server) can run: Node.js and npm (the Debian
# packages nodejs and npm when missing; needs root), the npm packages pinned in its package-lock.json
# (npm ci, again only when the lock file changed) and the mCODE STU4 package hl7.fhir.us.mcode 4.0.0
# (npm pack, checked against its pinned sha512; its own dependencies are not on npm and are not needed:
# its profiles carry full snapshots). Fails loudly: the tests that need them never skip.
set -eu
DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/fhir_server"
MCODE=hl7.fhir.us.mcode@4.0.0
MCODE_DIR="$DIR/packages/hl7.fhir.us.mcode-4.0.0"
MCODE_SHA512="HJogFi9rQetIUE8gqKFq2tt4I8ukdH3PUCQO5jBiKxYUgh+vrlXvkWkt/XuYOzpNPdfRmsj3LG4UJm5o1g2OlA=="
say() { echo "ensure-fhir-server: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
  say "need root to $*"; exit 1; fi; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "Node.js or npm is missing: installing the Debian packages nodejs and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# @medplum 4.5.2 declares node ^20.19.0 || >=22.12.0
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)'; then
  say "Node.js $(node --version) is too old for the pinned Medplum packages (need 20.19+ or 22.12+)"; exit 1
fi

lock_sum="$(cksum < "$DIR/package-lock.json")"
if [ ! -d "$DIR/node_modules" ] || [ "$(cat "$DIR/node_modules/.lock-cksum" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing the pinned npm packages of tests/fhir_server"
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" > "$DIR/node_modules/.lock-cksum"
fi

if [ ! -f "$MCODE_DIR/package.json" ]; then
  say "fetching $MCODE"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "$MCODE" --silent >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  got="$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
  if [ "$got" != "$MCODE_SHA512" ]; then
    say "$MCODE: sha512 $got is not the pinned $MCODE_SHA512"; exit 1
  fi
  mkdir -p "$work/x" && tar -xzf "$tarball" -C "$work/x"
  rm -rf "$MCODE_DIR" && mkdir -p "$(dirname "$MCODE_DIR")" && mv "$work/x/package" "$MCODE_DIR"
fi
