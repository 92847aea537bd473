"""`validate` (and `run`) compare where the plugins read and write: two sinks on one file, or a sink on the
source's file, are refused before anything is written. Third-party plugins take part through
`Plugin.locations` (by default a `uri` attribute or a `path` option)."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen
from click.testing import Result

from elspeth.api import Artifact, Location, Row, Sink
from elspeth.errors import ConfigError
from elspeth.hookspecs import hookimpl
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.preflight import check_plugins
from elspeth.settings import load_settings

Elspeth = Callable[..., Result]
Write = Callable[[str, str], Path]


def settings(source: str, **sinks: str) -> str:
    lines = [f"source: {{plugin: csv, options: {{path: '{source}'}}}}", "sinks:"]
    lines += [
        f"  {name}: {{plugin: csv, options: {{path: '{path}', if_exists: overwrite}}}}" for name, path in sinks.items()
    ]
    if len(sinks) > 1:
        lines.append(f"default_sink: {next(iter(sinks))}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def source(write: Write) -> Path:
    return write("in.csv", "id,name\n1,a\n2,b\n")


def test_two_sinks_on_one_file_are_refused(elspeth: Elspeth, write: Write, source: Path, user_error: Any) -> None:
    (source.parent / "out").mkdir()
    write("s.yaml", settings("in.csv", a="out/x.csv", b="./out/../out/x.csv"))
    for command in ("validate", "run"):
        user_error(
            elspeth(command, "s.yaml"),
            "s.yaml: sinks.b.options.path: ",
            "is also written by sinks.a.options.path",
            "give each its own",
        )
    assert not (source.parent / "out" / "x.csv").exists()


def test_a_sink_on_the_source_file_is_refused_and_the_input_survives(
    elspeth: Elspeth, write: Write, source: Path, user_error: Any
) -> None:
    (source.parent / "link.csv").symlink_to(source)
    (source.parent / "hard.csv").hardlink_to(source)
    for sink in ("in.csv", "link.csv", "hard.csv"):
        write("s.yaml", settings("in.csv", out=sink))
        for command in ("validate", "run"):
            user_error(
                elspeth(command, "s.yaml"),
                "s.yaml: sinks.out.options.path: ",
                "is what source.options.path reads",
                "destroy the input",
            )
    assert source.read_text() == "id,name\n1,a\n2,b\n"


def test_validate_catches_a_missing_or_unusable_source(elspeth: Elspeth, write: Write, user_error: Any) -> None:
    write("s.yaml", settings("nope.csv", out="out.csv"))
    user_error(elspeth("validate", "s.yaml"), "s.yaml: source.options.path: ", "nope.csv does not exist")
    (write("s.yaml", settings(".", out="out.csv")).parent / "d").mkdir()
    user_error(elspeth("validate", "s.yaml"), "s.yaml: source.options.path: ", "is a directory")
    write("s.yaml", settings("in.csv", out="x" * 5000 + ".csv"))
    user_error(elspeth("validate", "s.yaml"), "s.yaml: sinks.out.options.path: ", "too long")
    write("s.yaml", settings("in.csv", out="a\\x00b.csv").replace("'", '"'))
    user_error(elspeth("validate", "s.yaml"), "s.yaml: sinks.out.options.path: ", "NUL")


# A third-party sink that writes to a URI of its own, and one that says nothing of where it writes.
@frozen
class QueueConfig:
    queue: str

    @property
    def uri(self) -> str:
        return f"queue://{self.queue}"


class QueueSink(Sink):
    name = "queue_sink"
    config_class = QueueConfig

    def write(self, rows: list[Row], ctx: Any) -> None: ...

    def flush(self, ctx: Any) -> Artifact:
        return Artifact(uri=self.config.uri, content_hash="0" * 64, size=0, row_count=0)


class OverridingSink(QueueSink):
    name = "overriding_sink"

    @classmethod
    def locations(cls, config: QueueConfig) -> list[Location]:
        return [Location(f"queue://{config.queue.lower()}", True, "queue")]


plugins = types.SimpleNamespace(
    register_sinks=hookimpl(lambda register: [register(QueueSink), register(OverridingSink)])
)


def test_third_party_sinks_declare_their_locations(tmp_path: Path, source: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    registry = PluginRegistry(make_plugin_manager(extra_plugins=[plugins]))
    path = tmp_path / "s.yaml"
    path.write_text(
        "source: {plugin: csv, options: {path: in.csv}}\n"
        "default_sink: a\n"
        "sinks:\n"
        "  a: {plugin: queue_sink, options: {queue: Jobs}}\n"
        "  b: {plugin: overriding_sink, options: {queue: JOBS}}\n"
        "  c: {plugin: overriding_sink, options: {queue: jobs}}\n"
        "  d: {plugin: queue_sink, options: {queue: Jobs}}\n"
    )
    with pytest.raises(ConfigError) as raised:
        check_plugins(load_settings(path), registry, "s.yaml")
    assert str(raised.value).splitlines() == [
        "s.yaml: sinks.c.options.queue: queue://jobs is also written by sinks.b.options.queue; two writers of one "
        "location overwrite each other: give each its own",
        "s.yaml: sinks.d.options.uri: queue://Jobs is also written by sinks.a.options.uri; two writers of one "
        "location overwrite each other: give each its own",
    ]


def test_blob_plugins_compare_account_container_and_blob() -> None:
    from elspeth.plugins.azure.blob_sink import AzureBlobSink, AzureBlobSinkConfig
    from elspeth.plugins.azure.blob_source import AzureBlobSource, AzureBlobSourceConfig

    common = {"container": "data", "account_url": "https://acct.blob.core.windows.net", "sas_token": "sv=x"}
    [read] = AzureBlobSource.locations(AzureBlobSourceConfig(blob_path="in.csv", **common))
    [written] = AzureBlobSink.locations(AzureBlobSinkConfig(blob_path="in.csv", **common))
    assert read.uri == written.uri == "azure-blob://acct/data/in.csv"
    assert (read.writes, written.writes, written.option) == (False, True, "blob_path")
    assert "sv=x" not in read.uri
