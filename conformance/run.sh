#!/usr/bin/env bash
# The conformance run of everything we ship: every installed elspeth plugin through every scenario that
# applies, each against a fresh FK-enforced SQLite Landscape. Writes conformance/REPORT.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
python3 -m pytest --elspeth-conformance --elspeth-report "$here/REPORT.md" -p no:cacheprovider -q -rs -n 2 "$@"
