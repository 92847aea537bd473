"""Signed exports: the key pair `keygen` made, the export `export` wrote, and what `verify-export` found."""

from __future__ import annotations

from pathlib import Path

from elspeth.console import plural
from elspeth.evidence.check_export import ExportCheck

_FINGERPRINT_CHARS = 16
"""Of the public key's fingerprint shown beside an export: enough to tell keys apart at a glance."""


def render_key_pair(private_key: Path, public_key: Path, fingerprint: str) -> str:
    return f"Private key {private_key} (keep it secret)\nPublic key  {public_key}\nFingerprint {fingerprint}"


def render_export(run_id: str, output: Path, records: int, grade: str, bodies_purged: int, fingerprint: str) -> str:
    """An export of `records` records written to `output`, signed by the key of `fingerprint`."""
    lines = [f"Exported run {run_id} to {output}: {plural(records, 'record')}, grade {grade}"]
    if bodies_purged:
        lines.append(f"  {plural(bodies_purged, 'call body')} purged: only their hashes are in the export")
    lines.append(
        f"  signed by key {fingerprint[:_FINGERPRINT_CHARS]}…; check it with: "
        f"elspeth verify-export {output} --key PUBLIC.pem"
    )
    return "\n".join(lines)


def render_export_check(export_file: str, result: ExportCheck) -> str:
    if not result.problems:
        records = sum(result.counts.values())
        return (
            f"OK {export_file}: run {result.run_id}, {plural(records, 'record')}, grade {result.grade}, "
            f"signed by key {result.key_fingerprint[:_FINGERPRINT_CHARS]}…"
        )
    lines = [f"FAILED {export_file}: {plural(len(result.problems), 'problem')}"]
    lines += [
        f"  {'line ' + str(line) if line is not None else 'file'}: {message}" for line, message in result.problems
    ]
    return "\n".join(lines)
