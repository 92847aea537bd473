"""Canonical JSON (RFC 8785) and the SHA-256 hashes the Landscape records.

`rfc8785` is the reference; a fast path handles rows and call bodies made of str, bool, None, safe-range int
and float values (all but the tiniest and the integral ones from 2**53) under ASCII keys, nested or not,
where `json.dumps(sort_keys=True)` produces the very same bytes. Property tests hold the two together.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import add, itemgetter
from typing import Any

import rfc8785

from elspeth.errors import NonCanonicalValueError

_MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 100
"""Lists and objects nested deeper than this are refused: real records are far shallower, and every
recursive walk of a value (hashing, storing, `explain`) then stays well inside Python's recursion limit."""


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON type")


def _chunker(sort_keys: bool) -> Callable[[Any, int], Any]:
    """json's C encoder, built once (`json.dumps` rebuilds it on every call, which costs more than the
    encoding of a small row), called as `"".join(chunks(obj, 0))`: no Python frame of ours around it on the
    per-row path. No circular-reference markers: rows are trees, and a cycle still fails (as
    RecursionError, which callers treat as a non-canonical value)."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has the accelerator
        encoder = json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return lambda obj, _level: encoder.iterencode(obj)
    chunks: Callable[[Any, int], Any] = c_make_encoder(
        None, _refuse, encode_basestring, None, ":", ",", sort_keys, False, False
    )
    return chunks


_sorted_chunks = _chunker(sort_keys=True)
_stored_chunks = _chunker(sort_keys=False)


_OTHER, _AS_IS, _INTEGRAL_FLOATS = 0, 1, 2
"""What `_tree_kind` finds: a value for the reference encoder; one that json's C encoder (sorting keys) writes
in RFC 8785's bytes as it is; one it writes so once its integral floats are ints."""
_REPR_FLOOR = 1e-4
"""Finite floats that are not integers and not below this in size (they are all below 2**52) are written by
`repr` as ECMAScript writes them: the same shortest round-trip digits, without an exponent. Below it, repr
writes an exponent (1e-05) that ECMAScript does not (0.00001, down to 1e-7)."""


def _tree_kind(obj: Any, depth: int = 0) -> int:
    """Lists and objects (ASCII keys) of str, bool, None, safe-range int and most floats, nested less than
    MAX_DEPTH deep, are written in RFC 8785's bytes by `json.dumps(sort_keys=True)` too (see `_REPR_FLOOR`),
    integral floats once they are ints (repr writes 2.0, ECMAScript 2; integers below 2**53 are exact).
    Not so a tiny float, an integral one from 2**53, a non-ASCII key (RFC 8785 sorts keys by UTF-16 code
    units), or anything else: `_OTHER`, for the reference."""
    if depth >= MAX_DEPTH:
        return _OTHER
    t = type(obj)
    if t is dict:
        try:
            if not "".join(obj).isascii():
                return _OTHER
        except TypeError:  # a key that is not a string
            return _OTHER
        values: Any = obj.values()
    elif t is list:
        values = obj
    else:
        return _OTHER
    kind = _AS_IS
    for value in values:
        tv = type(value)
        if tv is str or value is None or tv is bool:
            continue
        if tv is int:
            if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                continue
            return _OTHER
        if tv is float:
            if value.is_integer():  # False for NaN and infinities
                if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
                    kind = _INTEGRAL_FLOATS
                    continue
                return _OTHER
            if _REPR_FLOOR <= abs(value) < 1e16:  # the upper bound keeps NaN and infinities out
                continue
            return _OTHER
        if tv is dict or tv is list:
            inner = _tree_kind(value, depth + 1)
            if inner:
                kind = max(kind, inner)
                continue
        return _OTHER
    return kind


def _integral_floats_as_ints(obj: Any) -> Any:
    t = type(obj)
    if t is float and obj.is_integer():
        return int(obj)
    if t is dict:
        return {k: _integral_floats_as_ints(v) for k, v in obj.items()}
    if t is list:
        return [_integral_floats_as_ints(v) for v in obj]
    return obj


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 bytes of `obj`. Raises NonCanonicalValueError for NaN, Infinity, unsafe ints, non-JSON types
    and values nested deeper than MAX_DEPTH."""
    kind = _tree_kind(obj)
    if kind:
        if kind == _INTEGRAL_FLOATS:
            obj = _integral_floats_as_ints(obj)
        try:
            return "".join(_sorted_chunks(obj, 0)).encode()
        except UnicodeEncodeError as exc:
            raise NonCanonicalValueError(f"a string holds a lone surrogate and is not valid Unicode: {exc}") from exc
    _refuse_deep(obj)
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError is a ValueError; RecursionError is a cycle
        raise NonCanonicalValueError(describe_non_canonical(obj) or str(exc)) from exc


def stable_hash(obj: Any) -> str:
    """SHA-256 hex of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()


def dumps(obj: Any) -> str:
    """Storage JSON: keeps key order and the int/float distinction (canonical JSON writes 1.0 as 1), so a
    stored row round-trips with its types. Rejects NaN, Infinity and values nested deeper than MAX_DEPTH."""
    if not _tree_kind(obj):
        _refuse_deep(obj)
    try:
        return "".join(_stored_chunks(obj, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        raise NonCanonicalValueError(describe_non_canonical(obj) or str(exc)) from exc


_FLAT_PLANS_MAX = 64
"""Key sequences whose plan is kept: a source's rows share one or a few; rows of ever new keys (a JSON source
of free-form records) take the general path beyond these, so memory stays flat."""
_flat_plans: dict[tuple[str, ...], tuple[list[str], Callable[[list[str]], Any] | None, list[str]]] = {}


def _flat_plan(keys: tuple[str, ...]) -> tuple[list[str], Callable[[list[str]], Any] | None, list[str]] | None:
    """For a row's keys (two or more, ASCII): each key's `"key":` prefix in the row's order, what puts the
    values in sorted key order (None: they are in it already), and the prefixes in that order."""
    try:
        if len(keys) < 2 or not "".join(keys).isascii():
            return None
    except TypeError:  # a key that is not a string
        return None
    prefixes = [encode_basestring(key) + ":" for key in keys]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    plan = (prefixes, None if order == list(range(len(keys))) else itemgetter(*order), [prefixes[i] for i in order])
    if len(_flat_plans) < _FLAT_PLANS_MAX:
        _flat_plans[keys] = plan
    return plan


def _flat_dumps_and_hash(row: dict[Any, Any]) -> tuple[str, str] | None:
    """`dumps_and_hash` of a dict of scalars under ASCII keys whose floats `repr` writes as ECMAScript does, or
    None for any other value. Each value is written once and the two texts assembled from the same pieces in
    the two key orders: json's C encoder, called twice, writes every value twice and sorts the items anew."""
    keys = tuple(row)
    plan = _flat_plans.get(keys) or _flat_plan(keys)
    if plan is None:
        return None
    parts: list[str] = []
    put = parts.append
    for value in row.values():
        t = type(value)
        if t is str:
            put(encode_basestring(value))
        elif t is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            put(int.__repr__(value))
        elif t is float and not value.is_integer() and _REPR_FLOOR <= abs(value) < 1e16:  # see _tree_kind
            put(float.__repr__(value))
        elif value is None:
            put("null")
        elif t is bool:
            put("true" if value else "false")
        else:
            return None
    prefixes, to_sorted, sorted_prefixes = plan
    stored = "{" + ",".join(map(add, prefixes, parts)) + "}"
    text = stored if to_sorted is None else "{" + ",".join(map(add, sorted_prefixes, to_sorted(parts))) + "}"
    try:
        return stored, hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError as exc:
        raise NonCanonicalValueError(f"a string holds a lone surrogate and is not valid Unicode: {exc}") from exc


def dumps_and_hash(obj: Any) -> tuple[str, str]:
    """`dumps(obj)` and `stable_hash(obj)` together, looking at `obj` once: what a source row costs."""
    if type(obj) is dict:
        flat = _flat_dumps_and_hash(obj)
        if flat is not None:
            return flat
    kind = _tree_kind(obj)
    if not kind:
        return dumps(obj), stable_hash(obj)
    stored = "".join(_stored_chunks(obj, 0))
    try:
        text = "".join(_sorted_chunks(obj if kind == _AS_IS else _integral_floats_as_ints(obj), 0)).encode()
    except UnicodeEncodeError as exc:
        raise NonCanonicalValueError(f"a string holds a lone surrogate and is not valid Unicode: {exc}") from exc
    return stored, hashlib.sha256(text).hexdigest()


def loads(text: str) -> Any:
    return json.loads(text)


def nesting_problem(obj: Any, limit: int = MAX_DEPTH) -> str | None:
    """Where `obj` is nested deeper than `limit` lists and objects, or None. Iterative: it must not itself
    hit the recursion limit on the values it is there to refuse."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth >= limit:
            return f"nested deeper than {limit} levels of lists and objects; flatten it, or store it as a string"
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return None


def _refuse_deep(obj: Any) -> None:
    problem = nesting_problem(obj)
    if problem is not None:
        raise NonCanonicalValueError(problem)


def describe_non_canonical(obj: Any, path: str = "$") -> str | None:
    """Where in `obj` the first value that cannot be canonically hashed sits, and why; None if all is well."""
    if path == "$":
        problem = nesting_problem(obj)
        if problem is not None:
            return problem
    if obj is None or isinstance(obj, bool | str):
        return None
    if isinstance(obj, int):
        if abs(obj) > _MAX_SAFE_INT:
            return f"{path}: integer {obj} is beyond 2**53 and cannot be hashed exactly; store it as a string"
        return None
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return f"{path}: {obj!r} is not a JSON number"
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            found = describe_non_canonical(value, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = describe_non_canonical(value, f"{path}[{i}]")
            if found:
                return found
        return None
    return f"{path}: {type(obj).__name__} is not a JSON type; convert it in the source (e.g. to a string)"


__all__ = [
    "MAX_DEPTH",
    "canonical_bytes",
    "describe_non_canonical",
    "dumps",
    "dumps_and_hash",
    "loads",
    "nesting_problem",
    "stable_hash",
]
