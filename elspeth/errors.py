"""One exception hierarchy. The CLI turns any ElspethError into exit code 2 and its message, no traceback."""

from __future__ import annotations


class ElspethError(Exception):
    """Something the user can fix; the message says what and how."""


class ConfigError(ElspethError):
    """Settings or plugin options are invalid. The message names the file, the key and the fix."""


class PluginError(ElspethError):
    """A plugin could not be found, loaded or registered."""


class LandscapeError(ElspethError):
    """The audit database refused something, or is not what this version of elspeth expects."""


class NonCanonicalValueError(ElspethError, ValueError):
    """A value that cannot be hashed canonically (NaN, Infinity, an integer beyond 2**53, a non-JSON type)."""


class KeyFileError(ElspethError):
    """A signing key file that is missing, unreadable, or not an Ed25519 key of the kind asked for."""


class ResumeError(ElspethError):
    """A run cannot be resumed as asked."""


class PluginCrash(ElspethError):
    """A plugin raised instead of returning a result; the run stops and can be resumed."""


class ServiceUnreachable(ElspethError):
    """Raised by a plugin when a service it depends on cannot be reached at all (connection refused, no such
    host, connect timeout) once its own retries are spent: nobody's row is at fault, so no row may fail for
    it. The engine closes the open state as failed, gives the row or batch no outcome, and stops the run;
    `elspeth resume` does that work again once the service is back."""

    def __init__(self, service: str, reason: str, *, message: str | None = None) -> None:
        super().__init__(message or f"cannot reach {service}: {reason}")
        self.service = service
        self.reason = reason

    def stopping(self, node_id: str, run_id: str) -> ServiceUnreachable:
        """What the engine raises to stop the run: names the node and the way on."""
        return ServiceUnreachable(
            self.service,
            self.reason,
            message=f"{node_id}: {self}; its rows are unfinished, not failed: once it can be reached, "
            f"`elspeth resume {run_id}`",
        )


__all__ = [
    "ConfigError",
    "ElspethError",
    "KeyFileError",
    "LandscapeError",
    "NonCanonicalValueError",
    "PluginCrash",
    "PluginError",
    "ResumeError",
    "ServiceUnreachable",
]
