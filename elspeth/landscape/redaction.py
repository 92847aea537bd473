"""Keeping secrets out of the Landscape: header and field names that carry credentials, and the literal
secret values the settings resolved (api keys, SAS tokens, connection strings)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from attrs import frozen

REDACTED = "***"
# Whole-name matches only: "max_tokens" or "prompt_tokens" in an LLM response are data, not secrets.
_SECRET_NAME = re.compile(
    r"(?:.*[-_])?(?:authorization|api[-_]?key|apikey|subscription[-_]?key|secret|password|passwd|"
    r"access[-_]?token|refresh[-_]?token|sas[-_]?token|id[-_]?token|account[-_]?key|connection[-_]?string|"
    r"credentials?|sig|sas|encryption[-_]?key)",
    re.IGNORECASE,
)
_QUERY_SECRET = re.compile(r"([?&](?:sig|api-key|code|access_token)=)[^&\s\"']+", re.I)


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.fullmatch(name))


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
