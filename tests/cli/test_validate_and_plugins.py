"""`elspeth validate`, `elspeth plugins` and the help texts."""

from __future__ import annotations

import json

import pytest

from elspeth.cli import main


def test_validate_ok(elspeth, pipeline):
    result = elspeth("validate", str(pipeline))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {pipeline}")
    assert "csv -> by_region -> {rest, europe, rejects}" in result.output
    assert "quarantine -> rejects" in result.output


def test_validate_checks_plugin_options(elspeth, write, user_error):
    write(
        "s.yaml",
        """\
        source: {plugin: csv, options: {paht: in.csv}}
        transforms: [{plugin: route, options: {field: region}}]
        sinks:
          out: {plugin: csv, options: {path: out.csv, if_exists: sometimes}}
        """,
    )
    user_error(
        elspeth("validate", "s.yaml"),
        "s.yaml: source.options.path: required field missing",
        "s.yaml: source.options.paht: unknown key; did you mean 'path'?",
        "s.yaml: transforms[0].options.routes: required field missing",
        "s.yaml: sinks.out.options: option `if_exists` is 'sometimes'; use one of: fail, overwrite",
    )


def test_validate_checks_concurrency(elspeth, write, user_error):
    write(
        "s.yaml",
        """\
        source: {plugin: csv, options: {path: in.csv}}
        transforms: [{plugin: passthrough, concurrency: 0}]
        sinks: {out: {plugin: csv, options: {path: out.csv}}}
        """,
    )
    user_error(elspeth("validate", "s.yaml"), "s.yaml: transforms[0].concurrency: must be a whole number from 1 to 256")
    write("in.csv", "id\n1\n")
    write(
        "t.yaml",
        """\
        source: {plugin: csv, options: {path: in.csv}}
        transforms: [{plugin: passthrough, concurrency: 8}]
        sinks: {out: {plugin: csv, options: {path: out.csv}}}
        """,
    )
    user_error(
        elspeth("validate", "t.yaml"),
        "transforms[0].concurrency: Passthrough declares no external calls",
        "remove the key",
    )


def test_validate_unknown_plugin(elspeth, write, user_error):
    write("s.yaml", "source: {plugin: csv, options: {path: x}}\nsinks: {out: {plugin: parquet}}\n")
    user_error(elspeth("validate", "s.yaml"), "s.yaml: sinks.out.plugin: no sink plugin named 'parquet'", "jsonl")


def test_plugins_json(elspeth):
    result = elspeth("plugins", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    by_kind = {(p["kind"], p["name"]) for p in listed}
    assert {("source", "csv"), ("source", "jsonl"), ("transform", "field_map"), ("transform", "route")} <= by_kind
    assert {("transform", "passthrough"), ("aggregate", "stats"), ("sink", "csv"), ("sink", "jsonl")} <= by_kind
    csv_sink = next(p for p in listed if p["kind"] == "sink" and p["name"] == "csv")
    assert csv_sink == {
        "name": "csv",
        "kind": "sink",
        "distribution": "elspeth",
        "version": csv_sink["version"],
        "hook": "register_sinks",
    }


def test_plugins_table(elspeth):
    result = elspeth("plugins")
    assert result.exit_code == 0, result.output
    assert result.output.split("\n", 1)[0].split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "HOOK"]
    assert "field_map" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_teaches_by_example(elspeth, command):
    result = elspeth(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
