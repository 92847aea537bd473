#!/usr/bin/env bash
# The conformance run of everything we ship: every installed elspeth plugin through every scenario that
# applies, each against a fresh FK-enforced SQLite Landscape. Writes conformance/REPORT.md, or the file
# ELSPETH_CONFORMANCE_REPORT names.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
python3 -m pytest --elspeth-conformance --elspeth-report "${ELSPETH_CONFORMANCE_REPORT:-$here/REPORT.md}" -p no:cacheprovider -q -rs -n 2 "$@"
