"""The credentials a run's settings resolve to, kept out of the Landscape, and the settings as recorded."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from elspeth.landscape.redaction import REDACTED, Redactor, embedded_credentials, looks_secret
from elspeth.settings.model import Settings
from elspeth.settings.structuring import KeyPath, converter
from elspeth.settings.variables import expand_str, references

# Broader than the Landscape's header/field list: environment variables are named by people
# (AZURE_STORAGE_KEY, OPENAI_SAS, DB_PASSWORD), and redacting a harmless value costs nothing.


def is_secret_name(name: str) -> bool:
    """Whether an environment variable or option key of this name holds a credential."""
    return looks_secret(name)


def secret_values(raw_settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """Every credential the settings resolve to, so the engine can keep it out of the Landscape: the values
    of secret-looking environment variables they reference, every value under a secret-looking option key,
    the credentials written into any value (`?apikey=...` in a URL, `AccountKey=...` in a connection
    string, a URL's password, the landscape URL's included). `raw_settings` is the mapping before expansion."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for path, text in _strings(raw_settings, ()):
        found |= embedded_credentials(expand_str(text, KeyPath(), env, []))
        for name, default in references(text):
            if is_secret_name(name):
                found.add(env.get(name) or default or "")
        if _under_secret_option(path):
            # The whole value ("Bearer abc") and each variable in it, which a plugin may send on its own.
            found.add(expand_str(text, KeyPath(), env, []))
            found.update(env.get(name) or default or "" for name, default in references(text))
    landscape = raw_settings.get("landscape")
    if isinstance(landscape, Mapping) and isinstance(landscape.get("url"), str):
        found |= _url_password(expand_str(landscape["url"], KeyPath(), env, []))
    found.discard("")
    return found


# The shell's working directories, not passwords, whatever "pwd" means elsewhere.
_NOT_CREDENTIALS = frozenset({"PWD", "OLDPWD"})
# Issued credentials are long (an AWS key id has 20 characters); a short value in a variable the settings
# never name is more likely a local default ("postgres", "testing") that would blank out ordinary words.
_MIN_ENVIRONMENT_SECRET = 10


def environment_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """The values of the environment's secret-looking variables. SDKs read credentials from the environment
    without the settings naming them (AWS_SESSION_TOKEN, AZURE_CLIENT_SECRET), so the run knows them too."""
    env = os.environ if environ is None else environ
    return {
        value
        for name, value in env.items()
        if name not in _NOT_CREDENTIALS and is_secret_name(name) and len(value) >= _MIN_ENVIRONMENT_SECRET
    }


def run_secrets(settings_data: Mapping[str, Any]) -> set[str]:
    """What the engine keeps out of everything a run of these settings (expanded, as plain data) writes:
    their `secret_values` and the `environment_secrets`."""
    return secret_values(settings_data, environ={}) | environment_secrets()


def _strings(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _under_secret_option(path: tuple[Any, ...]) -> bool:
    """Only keys inside `options` count: elsewhere keys are elspeth's own fields and the user's sink names."""
    if "options" not in path:
        return False
    below = path[path.index("options") + 1 :]
    return any(isinstance(k, str) and is_secret_name(k) for k in below)


def _url_password(url: str) -> set[str]:
    try:
        password = make_url(url).password
    except ArgumentError:
        return set()
    return {str(password)} if password else set()


def redacted(settings: Settings, secrets: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The settings as plain data, safe to store: values under secret-looking option keys, the landscape
    URL's password and any of `secrets` appearing in a string are replaced by "***"."""
    data: dict[str, Any] = converter.unstructure(settings)
    redactor = Redactor.of(secrets)
    url = data["landscape"].get("url")
    if url:
        data["landscape"]["url"] = redactor.text(hide_password(url))
    return _redact(data, (), redactor)


def hide_password(url: str) -> str:
    """A database URL fit to print or store: its password shown as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _redact(value: Any, path: tuple[Any, ...], redactor: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, (*path, k), redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, (*path, i), redactor) for i, v in enumerate(value)]
    if _under_secret_option(path) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redactor.text(value)
    return value
