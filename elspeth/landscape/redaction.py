"""Keeping secrets out of the Landscape: header and field names that carry credentials, and the literal
secret values the settings resolved (api keys, SAS tokens, connection strings)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from attrs import frozen

REDACTED = "***"
_ALWAYS = frozenset(
    {"secret", "password", "passwd", "pwd", "credential", "credentials", "sas", "sig", "authorization", "apikey"}
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
_WORDS = re.compile(r"[-_.\s]+|(?<=[a-z0-9])(?=[A-Z])")
_QUERY_SECRET = re.compile(r"([?&](?:sig|api-key|code|access_token)=)[^&\s\"']+", re.I)


def looks_secret(name: str) -> bool:
    """Whether a header, option or environment variable of this name carries a credential."""
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


@frozen
class Redactor:
    """Applied to every request, response and error before they are hashed and stored."""

    secrets: frozenset[str] = frozenset()

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        # Very short values would blank out ordinary words; a real credential is never that short.
        return cls(frozenset(s for s in secrets if isinstance(s, str) and len(s) >= 6))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and looks_secret(k) and v not in (None, "") else self(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "=" in value:
            value = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, value)
        return value
