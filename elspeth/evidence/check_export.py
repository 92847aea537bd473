"""`elspeth verify-export`: check a signed export without the database.

Three layers, each naming the line at fault where it can: the chain (each line's "prev" is the SHA-256 of the
line before, so a changed line breaks the link after it), the records' own hashes (settings, node configs,
source rows, call bodies), and the Ed25519 signature over every byte before the signature line, checked
with the public key the user trusts: rewriting the chain and the hashes still fails there, unless one has
the private key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from attrs import define, field
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from elspeth.errors import ElspethError
from elspeth.evidence import signing
from elspeth.evidence.records import (
    BODY_FIELDS,
    FORMAT,
    OUTPUT_FIELDS,
    RECORD_TABLES,
    SIGNATURE_ALGORITHM,
    VERSION,
    hash_problem,
)

_RECORD_TYPES = frozenset(name for name, _ in RECORD_TABLES)


@define
class ExportCheck:
    run_id: str = ""
    grade: str = ""
    counts: dict[str, int] = field(factory=dict)
    key_fingerprint: str = ""
    problems: list[tuple[int | None, str]] = field(factory=list)
    """(line number or None for the file as a whole, what is wrong)."""

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append((line, message))


def _lines(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as fh:
            yield from fh
    except FileNotFoundError:
        raise ElspethError(
            f"export {path}: no such file; give the file 'elspeth export RUN_ID -o FILE' wrote"
        ) from None
    except IsADirectoryError:
        raise ElspethError(f"export {path} is a directory; give the file 'elspeth export' wrote") from None
    except OSError as exc:
        raise ElspethError(f"export {path} cannot be read: {exc.strerror}") from None


def check_export(path: str, key: Ed25519PublicKey) -> ExportCheck:
    """Every problem found in the export at `path`, checked against `key`. Raises ElspethError when the file
    is not an elspeth export at all (missing, unreadable, no header)."""
    result = ExportCheck()
    lines = _lines(path)
    first = next(lines, b"")
    header = _header(path, first)
    result.run_id = str(header.get("run_id", ""))
    result.grade = str(header.get("grade", ""))
    purged = header.get("purge") is not None
    digest = hashlib.sha256(first)
    previous = hashlib.sha256(first).hexdigest()
    broken_links: list[int] = []
    signature: tuple[int, dict[str, Any], bytes] | None = None
    end: tuple[int, dict[str, Any]] | None = None
    counted: dict[str, int] = {}
    number = 1
    for number, line in enumerate(lines, start=2):
        record = _record(line, number, result)
        if signature is not None:
            result.problem(number, "a line after the signature line: nothing after it is signed")
        if record is not None and record.get("prev") != previous:
            broken_links.append(number)
        previous = hashlib.sha256(line).hexdigest()
        if record is None:
            digest.update(line)
            continue
        kind = record.get("type")
        if kind == "signature":
            signature = (number, record, digest.digest())
            continue
        digest.update(line)
        if kind == "end":
            end = (number, record)
        elif kind in _RECORD_TYPES:
            counted[kind] = counted.get(kind, 0) + 1
            _check_record(kind, record, number, result, purged)
        else:
            result.problem(number, f"record type {kind!r} is not one of this format's")
    _name_changed_lines(broken_links, result)
    _check_end(end, counted, result)
    result.counts = counted
    if signature is None:
        result.problem(None, f"no signature line: the export was cut short after line {number}, or never signed")
    else:
        _check_signature(*signature, key, result)
    result.problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    return result


def _header(path: str, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("type") != "header" or header.get("format") != FORMAT:
        raise ElspethError(f"{path} is not an elspeth export: its first line is not an {FORMAT} header")
    if header.get("version") != VERSION:
        raise ElspethError(
            f"{path} is an {FORMAT} of version {header.get('version')!r}; this elspeth reads version {VERSION}: "
            "check it with the elspeth that wrote it, or a newer one"
        )
    return header


def _record(line: bytes, number: int, result: ExportCheck) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        result.problem(number, "not a JSON record (changed or cut)")
        return None
    if not isinstance(record, dict):
        result.problem(number, "not a JSON object")
        return None
    return record


def _name_changed_lines(broken: list[int], result: ExportCheck) -> None:
    """A link from line k to the line before is broken when line k-1 changed, or when line k's own "prev"
    did; in the second case line k's hash changed too, so the link after it breaks as well."""
    at = set(broken)
    for k in broken:
        if k - 1 in at:
            continue
        changed = k if k + 1 in at else k - 1
        result.problem(
            changed,
            "this line was changed since the export was written (its SHA-256 is not the one the next line records)",
        )


def _check_record(kind: str, record: dict[str, Any], number: int, result: ExportCheck, purged: bool) -> None:
    """The record's bodies against its hashes. In a purged run (the header carries its purge) a body may be
    gone, its hash kept; in any other run a hash without its body is a problem."""
    if kind == "run":
        _check_hash(record, "settings_json", "settings_hash", number, result, "settings")
    elif kind == "node":
        _check_hash(record, "config_json", "config_hash", number, result, f"config of node {record.get('node_id')}")
    elif kind == "row" and record.get("payload_hash") is not None:
        if not (purged and record.get("payload_json") is None):
            what = f"payload of row {record.get('row_id')}"
            _check_hash(record, "payload_json", "payload_hash", number, result, what)
    elif kind in ("call", "state"):
        name = f"{kind} {record.get('state_id')}" + (f"/{record.get('call_index')}" if kind == "call" else "")
        fields = BODY_FIELDS if kind == "call" else OUTPUT_FIELDS
        for text_field, ref_field, hash_field in fields:
            if kind == "state" and record.get(text_field) is None and record.get(ref_field) is None:
                continue  # the step kept nothing: it changed nothing, or the run was purged
            if purged and record.get(text_field) is None and record.get(ref_field) is None:
                continue
            which = text_field.removesuffix("_json")
            ref = record.get(ref_field)
            if ref is None:
                _check_hash(record, text_field, hash_field, number, result, f"{which} of {name}")
                continue
            body = record.get(f"{which}_body")
            if body is None:
                continue  # purged: the header counts these, and the grade says what that costs
            if not isinstance(body, str) or hashlib.sha256(body.encode("utf-8")).hexdigest() != ref:
                result.problem(number, f"the {which} body of {name} is not the payload {str(ref)[:12]}… it names")
                continue
            _check_hash({"b": body, "h": record.get(hash_field)}, "b", "h", number, result, f"{which} of {name}")


def _check_hash(
    record: dict[str, Any], text_field: str, hash_field: str, number: int, result: ExportCheck, what: str
) -> None:
    text, recorded = record.get(text_field), record.get(hash_field)
    if text is None and recorded is None:
        return
    if not isinstance(text, str) or not isinstance(recorded, str):
        result.problem(number, f"the {what} or its hash is missing")
        return
    problem = hash_problem(text, recorded)
    if problem:
        result.problem(number, f"the {what} was changed: {problem}")


def _check_end(end: tuple[int, dict[str, Any]] | None, counted: dict[str, int], result: ExportCheck) -> None:
    if end is None:
        result.problem(None, "no end record: the export was cut short")
        return
    number, record = end
    declared = record.get("counts")
    if declared != counted:
        result.problem(
            number, f"the export says it holds {declared}, but holds {counted}: records were added or removed"
        )


def _check_signature(
    number: int, record: dict[str, Any], digest: bytes, key: Ed25519PublicKey, result: ExportCheck
) -> None:
    result.key_fingerprint = str(record.get("key_fingerprint", ""))
    if record.get("algorithm") != SIGNATURE_ALGORITHM:
        result.problem(number, f"signature algorithm {record.get('algorithm')!r} is not {SIGNATURE_ALGORITHM}")
        return
    given = signing.fingerprint(key)
    if result.key_fingerprint != given:
        result.problem(
            number,
            f"signed with key {result.key_fingerprint[:16]}…, not with the key given ({given[:16]}…): check with the "
            "public key of whoever signed it, if you trust that key",
        )
        return
    if record.get("sha256") != digest.hex():
        result.problem(number, "the lines above are not the ones that were signed (their SHA-256 differs)")
        return
    if not signing.signature_holds(key, digest, str(record.get("signature", ""))):
        result.problem(number, "the signature does not verify with the key given")
