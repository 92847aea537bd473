"""Keeping credentials out of logs. botocore logs every request at DEBUG, signature header included (it
names the access key id; a session token rides in a header of its own), and an error body may quote the key
id back. While a plugin's client lives, its credentials are blanked out of what the botocore and urllib3
loggers emit."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from elspeth.api import Redactor

_FAMILIES = ("botocore", "boto3", "urllib3")


class CredentialFilter(logging.Filter):
    """Redacts a record's message as the engine redacts the Landscape: these secrets in any encoding, and
    the values of secret-looking headers and query parameters."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.redact = Redactor.of(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is not ours to fix
            return True
        redacted = self.redact.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _loggers() -> list[logging.Logger]:
    names = [name for name in logging.Logger.manager.loggerDict if name.split(".")[0] in _FAMILIES]
    return [logging.getLogger(name) for name in (*_FAMILIES, *names)]


class RedactedLogs:
    """Attach a CredentialFilter to every botocore/boto3/urllib3 logger (call after the client is built, so
    that botocore's modules and their loggers exist); `detach()` when the client is closed."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.filter = CredentialFilter(secrets)
        self._attached: list[logging.Logger] = []
        if self.filter.redact.secrets:
            self._attached = _loggers()
            for logger in self._attached:
                logger.addFilter(self.filter)

    def detach(self) -> None:
        for logger in self._attached:
            logger.removeFilter(self.filter)
        self._attached = []
