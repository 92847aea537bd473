"""The pipeline `validate` prints, from settings loaded and checked as `validate` does: each aggregation's
trigger in words, each step's error sink, each sink's roles, and the flow."""

from __future__ import annotations

import textwrap

from elspeth import __version__
from elspeth.console.pipeline import render_pipeline
from elspeth.plugin_manager import PluginRegistry, make_plugin_manager
from elspeth.preflight import check_plugins
from elspeth.settings import load_settings

SETTINGS = """\
    source:
      plugin: csv
      options: {path: "{root}/input.csv", types: {n: int}}
      on_quarantine: rejects
    transforms:
      - {name: tidy, plugin: passthrough, on_error: rejects}
    aggregations:
      - {name: by_count, plugin: stats, options: {group_by: g, fields: [n]}, trigger: {count: 50, timeout_seconds: 2.5}}
      - {name: by_time, plugin: stats, options: {group_by: g, fields: [n]}, trigger: {timeout_seconds: 30}}
      - {name: at_end, plugin: stats, options: {group_by: g, fields: [n]}}
    on_error: rejects
    default_sink: out
    sinks:
      out: {plugin: csv, options: {path: "{root}/out.csv"}}
      rejects: {plugin: jsonl, options: {path: "{root}/rejects.jsonl"}}
    """


def test_triggers_error_sinks_and_sink_roles_read_in_words(tmp_path):
    (tmp_path / "input.csv").write_text("g,n\na,1\n")
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(SETTINGS).replace("{root}", str(tmp_path)))
    settings = load_settings(path)
    infos = check_plugins(settings, PluginRegistry(make_plugin_manager()), str(path))
    header, *rows, blank, flow = render_pipeline(settings, infos).splitlines()

    assert header.split() == ["KIND", "NAME", "PLUGIN", "FROM", "NOTES"]
    notes = {row.split()[1]: row.split(f"elspeth {__version__}", 1)[1].strip() for row in rows}
    assert notes == {
        "csv": "quarantine -> rejects",
        "tidy": "errors -> rejects",
        "by_count": "flush every 50 rows or after 2.5s or at end of source",
        "by_time": "flush after 30.0s or at end of source",
        "at_end": "flush at end of source",
        "out": "default",
        "rejects": "errors, quarantine",
    }
    assert blank == ""
    assert flow == "csv -> tidy -> by_count -> by_time -> at_end -> {out, rejects}"
