"""The pipeline settings: attrs models, and loading them from a YAML file.

Loading reads the YAML (`yaml_file`), expands `${VAR}` / `${VAR:-default}` from the environment
(`variables`), structures the result into `Settings` with cattrs (`structuring`, `model`) and cross-checks
what one field says about another (`checks`). Every error names the file, the key and the fix, and all
problems are reported at once rather than one per attempt. `secrets` finds the credentials a run's settings
resolve to and gives the settings as recorded, redacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from elspeth.errors import ConfigError
from elspeth.settings.checks import cross_check
from elspeth.settings.model import (
    MAX_CONCURRENCY,
    AggregationSettings,
    EngineSettings,
    LandscapeSettings,
    RetrySettings,
    Settings,
    SinkSettings,
    SourceSettings,
    TransformSettings,
    TriggerSettings,
)
from elspeth.settings.secrets import (
    environment_secrets,
    hide_password,
    is_secret_name,
    redacted,
    run_secrets,
    secret_values,
)
from elspeth.settings.structuring import KeyPath, join_problems, structure
from elspeth.settings.variables import expand
from elspeth.settings.yaml_file import read_settings_file


def load_settings(path: str | Path) -> Settings:
    """Read, expand, structure and cross-check the settings in `path`."""
    return settings_from_raw(read_settings_file(path), file=str(path))


def settings_from_raw(raw: Mapping[str, Any], *, file: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from an already-read mapping (see `read_settings_file`); `file` names it in errors."""
    problems: list[tuple[KeyPath, str]] = []
    expanded = expand(raw, KeyPath(), os.environ if environ is None else environ, problems)
    if problems:
        raise ConfigError(join_problems(file, problems))
    settings = structure(expanded, Settings, where="", file=file)
    problems = list(cross_check(settings))
    if problems:
        raise ConfigError(join_problems(file, problems))
    return settings


__all__ = [
    "MAX_CONCURRENCY",
    "AggregationSettings",
    "EngineSettings",
    "LandscapeSettings",
    "RetrySettings",
    "Settings",
    "SinkSettings",
    "SourceSettings",
    "TransformSettings",
    "TriggerSettings",
    "environment_secrets",
    "hide_password",
    "is_secret_name",
    "load_settings",
    "read_settings_file",
    "redacted",
    "run_secrets",
    "secret_values",
    "settings_from_raw",
    "structure",
]
