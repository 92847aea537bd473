"""Keeping secrets out of everything a run writes (the Landscape, payloads, cassettes, what `explain`
prints): one rule for the names that carry credentials (option keys, environment variables, headers,
query parameters, connection-string fields), and the credential values the run knows, replaced wherever
they appear, as they are or encoded."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from attrs import field, frozen

REDACTED = "***"
_ALWAYS = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "pwd",
        "credential",
        "credentials",
        "sas",
        "sig",
        "signature",
        "authorization",
        "apikey",
        "cookie",
    }
)
# "key" names a credential only after one of these ("api_key", "STORAGE_KEY"): an S3 object `key` or a
# `partition_key` are data. A name ending in "token" is taken for a credential (`max_tokens` is plural).
_CREDENTIAL_PREFIXES = frozenset(
    {
        "api",
        "access",
        "account",
        "secret",
        "storage",
        "private",
        "subscription",
        "encryption",
        "master",
        "shared",
        "client",
        "sas",
        "auth",
        "signing",
        "session",
        "refresh",
        "bearer",
        "id",
        "personal",
        "service",
    }
)
# On the wire a bare name is a credential too: `?key=` (Google-style API keys), `?code=` (Azure Functions
# keys, OAuth codes), `?auth=`. In a recorded body a bare `key` is data (an S3 object's key).
_BARE_WIRE_CREDENTIALS = frozenset({"key", "code", "auth"})
_WORDS = re.compile(r"[-_.\s]+|(?<=[a-z0-9])(?=[A-Z])")
# name=value in a query string, a fragment, a form body, a connection string or a SAS token, wherever it is
# quoted; not a path segment ("/year=2024/key=a/": partitions are data).
_PAIR = re.compile(r"(?:^|(?<=[?&#;\s,(\"']))([A-Za-z][\w.-]*)=([^&;\s\"'<>#)]+)")
# "Name: value" on a line of its own (headers printed in an error message or a log).
_HEADER_LINE = re.compile(r"^([ \t]*([A-Za-z][\w-]*)[ \t]*:[ \t]*)(\S[^\r\n]*)", re.M)
# "name": "value" and 'name': 'value' (JSON text, a repr of a dict in an error message or a log line,
# its value maybe bytes: 'name': b'value').
_QUOTED_PAIR = re.compile(r"""(["'])([A-Za-z][\w.-]*)\1(\s*:\s*b?)(["'])((?:\\.|(?!\4)[^\\\r\n])*)\4""")
# Keys whose dict holds names on the wire, as plugins record them.
_WIRE_MAPS = frozenset({"headers", "query", "params"})
_MIN_SECRET = 6
"""Very short values would blank out ordinary words; a real credential is never that short."""
_MIN_BASE64_CORE = 8


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """Whether an option, field or environment variable of this name carries a credential."""
    words = [w.lower() for w in _WORDS.split(name) if w]
    if any(w in _ALWAYS for w in words):
        return True
    if "connection" in words and "string" in words:
        return True
    if words and words[-1] == "token":
        return True
    if words[-2:] == ["key", "id"]:  # aws_access_key_id: the key's public half, still a credential
        words = words[:-1]
    return len(words) > 1 and words[-1] == "key" and words[-2] in _CREDENTIAL_PREFIXES


@functools.lru_cache(maxsize=4096)
def looks_secret_on_the_wire(name: str) -> bool:
    """`looks_secret` for a header, query parameter or connection-string field, where a bare `key`,
    `code` or `auth` is a credential as well."""
    return looks_secret(name) or name.strip().lower() in _BARE_WIRE_CREDENTIALS


def redacted_headers(headers: Any) -> dict[str, Any]:
    """Headers as they may be stored: the value of every secret-looking header is "***"."""
    return {k: REDACTED if looks_secret_on_the_wire(str(k)) else v for k, v in dict(headers).items()}


def embedded_credentials(text: str) -> set[str]:
    """The credentials written into a text that is no secret as a whole: the values of secret-looking
    fields of a query string, a SAS token or a connection string ("...&sig=...", "...;AccountKey=..."),
    as written and percent-decoded, and the password of a URL ("https://user:password@host")."""
    found: set[str] = set()
    if "=" in text:
        for name, value in _PAIR.findall(text):
            if looks_secret_on_the_wire(name):
                found |= {value, unquote(value)}
    if "://" in text:
        for url in re.findall(r"[A-Za-z][\w+.-]*://\S+", text):
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password:
                found |= {password, unquote(password)}
    return {f for f in found if len(f) >= _MIN_SECRET}


def credential_parts(secret: str) -> set[str]:
    """A secret value and the credentials inside it, each of which may travel on its own: the token of
    "Bearer TOKEN" (and the password of Basic credentials) and the `embedded_credentials`."""
    parts = {secret, *embedded_credentials(secret)}
    scheme, _, rest = secret.strip().partition(" ")
    rest = rest.strip()
    if rest and scheme.isalpha() and " " not in rest:
        parts.add(rest)
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                parts.add(base64.b64decode(rest, validate=True).decode().partition(":")[2])
    return {p for p in parts if len(p) >= _MIN_SECRET}


def encoded_forms(secret: str) -> set[str]:
    """How a secret can show up in text: as is, percent-encoded, JSON-escaped, hex, and the part of its
    base64 (standard and URL-safe, at each of the three alignments) that does not depend on its neighbours."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], raw.hex()}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).decode("ascii")
            core = encoded[(pad * 4 + 2) // 3 : len(encoded) - 4]
            if len(core) >= _MIN_BASE64_CORE:
                forms.add(core)
    return forms


@frozen
class Redactor:
    """Applied to every request, response, error and URI before they are hashed and stored, and to what a
    cassette keeps: values under secret-looking names, and every known secret in any of its encodings."""

    secrets: frozenset[str] = frozenset()
    _forms: tuple[str, ...] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        forms = {form for secret in self.secrets for form in encoded_forms(secret)}
        object.__setattr__(self, "_forms", tuple(sorted(forms, key=len, reverse=True)))

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A redactor for these secret values and every credential inside them (see `credential_parts`)."""
        found: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= _MIN_SECRET:
                found |= credential_parts(secret)
        return cls(frozenset(found))

    def __call__(self, value: Any, *, on_the_wire: bool = False) -> Any:
        """`value` with secrets out; `on_the_wire`: a dict's keys are header or query-parameter names."""
        if isinstance(value, dict):
            secret = looks_secret_on_the_wire if on_the_wire else looks_secret
            return {
                k: (
                    REDACTED
                    if isinstance(k, str) and secret(k) and v not in (None, "")
                    else self(v, on_the_wire=isinstance(k, str) and k.lower() in _WIRE_MAPS)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, value: str) -> str:
        """The text with every known secret and every value under a secret-looking name replaced."""
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        if "=" in value:
            value = _PAIR.sub(_redact_pair, value)
        if ":" in value:
            value = _HEADER_LINE.sub(_redact_header_line, value)
            value = _QUOTED_PAIR.sub(_redact_quoted_pair, value)
        return value

    def data(self, value: bytes) -> bytes:
        """`text` for bytes: UTF-8 is redacted as text; other bytes lose every known secret's bytes."""
        try:
            return self.text(value.decode("utf-8")).encode("utf-8")
        except UnicodeDecodeError:
            pass
        for form in self._forms:
            value = value.replace(form.encode(), REDACTED.encode())
        return value


def _redact_pair(m: re.Match[str]) -> str:
    return f"{m.group(1)}={REDACTED}" if looks_secret_on_the_wire(m.group(1)) else m.group(0)


def _redact_header_line(m: re.Match[str]) -> str:
    # The field rule, not the wire rule: "Code: NoSuchKey" in an error message is no credential.
    return m.group(1) + REDACTED if looks_secret(m.group(2)) else m.group(0)


def _redact_quoted_pair(m: re.Match[str]) -> str:
    quote_, name, sep, value_quote, value = m.groups()
    if not value or not looks_secret(name):
        return m.group(0)
    return f"{quote_}{name}{quote_}{sep}{value_quote}{REDACTED}{value_quote}"
