"""The distribution as a user installs it: its entry point, what `elspeth plugins` shows, its options."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from elspeth_s3.sink import S3Sink, S3SinkConfig
from elspeth_s3.source import S3Source

from elspeth.api import Capability
from elspeth.cli import main
from elspeth.errors import ConfigError
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.settings import structure


def test_registered_through_the_entry_point() -> None:
    registry = PluginRegistry(make_plugin_manager())
    for kind, cls in (("source", S3Source), ("sink", S3Sink)):
        info = registry.get(kind, "s3")
        assert info.cls is cls
        assert (info.distribution, info.version) == ("elspeth-s3", "0.1.0")
    assert S3Sink.capabilities == {Capability.EXTERNAL_CALLS, Capability.RESUMABLE, Capability.DETERMINISTIC}
    assert S3Source.capabilities == {Capability.EXTERNAL_CALLS, Capability.DETERMINISTIC}


def test_elspeth_plugins_lists_both() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    out = result.output
    listed = {(p["kind"], p["name"]): p for p in json.loads(out)}
    for kind in ("source", "sink"):
        assert listed[(kind, "s3")]["distribution"] == "elspeth-s3"
        assert listed[(kind, "s3")]["version"] == "0.1.0"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"part_size_mb": 4}, "part_size_mb"),
        ({"part_size_mb": 6000}, "part_size_mb"),
        ({"overwrite": "sometimes"}, "overwrite"),
        ({"fields": ["a", "a"]}, "fields"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"endpoint_url": "localhost:9000"}, "endpoint_url"),
        ({"aws_access_key_id": "AKIA0000"}, "aws_secret_access_key"),
        ({"key": "old-name.jsonl"}, "key"),
    ],
)
def test_sink_options_errors_name_the_option(options: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        structure({"bucket": "b", "path": "out.jsonl", **options}, S3SinkConfig, where="options")


def test_sink_defaults() -> None:
    config = structure({"bucket": "b", "path": "dir/out.csv", "format": "csv"}, S3SinkConfig, where="options")
    assert (config.part_size_mb, config.overwrite, config.max_attempts) == (8, False, 3)
    assert config.uri == "s3://b/dir/out.csv"


def test_conformance_setups_are_importable() -> None:
    from elspeth_s3.conformance import moto_s3, s3_setups

    with moto_s3() as endpoint:
        setups = s3_setups(endpoint)
    assert set(setups) == {"source:s3", "sink:s3"}
    assert setups["sink:s3"].service is not None and setups["sink:s3"].service.upstream == endpoint
