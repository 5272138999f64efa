#!/bin/sh
# Make sure the independent DICOM software the listener and Orthanc tests use is installed: DCMTK
# (storescu, echoscu), Orthanc and its Python plugin (Debian packages dcmtk, orthanc, orthanc-python).
# Installs what is missing (apt-get update once first; needs root). Never starts the system Orthanc:
# the tests run their own on loopback ports. Fails loudly when the install fails: those tests never skip.
set -eu
say() { echo "ensure-dicom-tools: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
  say "need root to $*"; exit 1; fi; }

missing=""
command -v storescu >/dev/null 2>&1 && command -v echoscu >/dev/null 2>&1 || missing="$missing dcmtk"
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || missing="$missing orthanc"
ls /usr/share/orthanc/plugins/libOrthancPython.so /usr/lib/orthanc/libOrthancPython.so* >/dev/null 2>&1 \
  || missing="$missing orthanc-python"
[ -z "$missing" ] && exit 0

say "installing the Debian package(s)$missing"
as_root apt-get update -qq
# policy-rc.d keeps the packages' own service from starting (there may be no init system at all)
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086 (one word per package)
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
command -v storescu >/dev/null 2>&1 || { say "storescu is still missing after installing dcmtk"; exit 1; }
say "installed$missing"
