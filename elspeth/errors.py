"""One exception hierarchy. The CLI turns any ElspethError into exit code 2 and its message, no traceback."""


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


class ResumeError(ElspethError):
    """A run cannot be resumed as asked."""


class PluginCrash(ElspethError):
    """A plugin raised instead of returning a result; the run stops and can be resumed."""
