"""Loading settings: env expansion, cross-checks, secrets, and the errors a user sees through the CLI."""

from __future__ import annotations

import pytest

from elspeth.errors import ConfigError
from elspeth.settings import Settings, load_settings, read_settings_file, redacted, secret_values, structure

MINIMAL = """\
source: {plugin: csv, options: {path: in.csv}}
sinks:
  output: {plugin: csv, options: {path: out.csv}}
"""


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            "source: {plugin: csv}\nsinks:\n  output: {options: {path: out.csv}}\n",
            ["sinks.output.plugin: required field missing", "add 'plugin: <name>'", "elspeth plugins"],
            id="missing-key",
        ),
        pytest.param(
            MINIMAL + "engine: {write_batch_rows: lots}\n",
            ["engine.write_batch_rows: expected an integer, got 'lots'"],
            id="bad-type",
        ),
        pytest.param(
            MINIMAL + "on_error: rejects\n",
            ["on_error: no sink named 'rejects'", "use one of: output"],
            id="unknown-sink",
        ),
        pytest.param(
            "source: {plugin: csv, options: {path: in.csv}}\n"
            "sinks:\n  output: {plugin: csv, options: {path: '${ELSPETH_TEST_UNSET}/out.csv'}}\n",
            ["sinks.output.options.path", "ELSPETH_TEST_UNSET is not set", "${ELSPETH_TEST_UNSET:-value}"],
            id="undefined-env-var",
        ),
        pytest.param(
            "source:\n  plugin: csv\n   options: [\nsinks: {}\n",
            ["line 3, column 11", "YAML syntax error"],
            id="yaml-syntax",
        ),
        pytest.param(
            MINIMAL + "  output: {plugin: jsonl}\n",
            ["key 'output' appears twice (lines 3 and 4)"],
            id="duplicate-key",
        ),
        pytest.param(
            MINIMAL.replace("options:", "opts:", 1),
            ["source.opts: unknown key; did you mean 'options'?"],
            id="misspelt-key",
        ),
        pytest.param(
            MINIMAL + "  errors: {plugin: jsonl, options: {path: e.jsonl}}\n",
            ["default_sink: required when there is more than one sink", "one of: output, errors"],
            id="default-sink-needed",
        ),
        pytest.param(
            MINIMAL + "aggregations: [{plugin: stats, trigger: {count: 0}}]\n",
            ["aggregations[0].trigger.count: must be greater than 0"],
            id="trigger-count",
        ),
        pytest.param(
            "source: {plugin: csv}\nsinks:\n  output: {plugin: }\n",
            ["sinks.output.plugin: expected a string, got nothing (null)"],
            id="empty-value",
        ),
    ],
)
def test_settings_errors_name_file_and_key(elspeth, write, user_error, monkeypatch, text, fragments):
    monkeypatch.delenv("ELSPETH_TEST_UNSET", raising=False)
    write("bad.yaml", text)
    result = elspeth("validate", "bad.yaml")
    user_error(result, *fragments)
    # Every line of the message starts with the file, so it can be found from any line.
    for line in result.stderr.removeprefix("Error: ").splitlines():
        assert line.startswith("bad.yaml: "), line


def test_all_problems_are_reported_at_once(write):
    path = write("bad.yaml", "source: {plugin: csv, optons: {}}\nsinks: {out: {}}\ntransforms: [{name: x}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["source.optons", "sinks.out.plugin", "transforms[0].plugin"]


def test_missing_file(elspeth, user_error):
    user_error(elspeth("validate", "nowhere.yaml"), "nowhere.yaml: no such file")


def test_debug_shows_the_traceback(elspeth, write):
    write("bad.yaml", "source: {plugin: csv}\n")
    result = elspeth("--debug", "validate", "bad.yaml")
    assert isinstance(result.exception, ConfigError)


def test_env_expansion(write, monkeypatch):
    monkeypatch.setenv("OUT_DIR", "/data/out")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("ELSPETH_TEST_UNSET", raising=False)
    path = write(
        "s.yaml",
        """\
        source: {plugin: csv, options: {path: "${IN:-input.csv}", sep: "${EMPTY:-;}"}}
        sinks:
          out:
            plugin: csv
            options:
              path: ${OUT_DIR}/out-${ELSPETH_TEST_UNSET:-x}.csv
              fields: ["${OUT_DIR}", "$${OUT_DIR}", plain]
        engine: {write_batch_rows: "${BATCH:-50}"}
        """,
    )
    monkeypatch.delenv("IN", raising=False)
    monkeypatch.delenv("BATCH", raising=False)
    settings = load_settings(path)
    assert settings.source.options == {"path": "input.csv", "sep": ";"}
    assert settings.sinks["out"].options == {
        "path": "/data/out/out-x.csv",
        "fields": ["/data/out", "${OUT_DIR}", "plain"],
    }
    assert settings.engine.write_batch_rows == 50


def test_secret_values_and_redaction(write, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_KEY", "storage-key-value")
    monkeypatch.setenv("API_TOKEN", "token-value-123")
    monkeypatch.setenv("REGION", "westeurope")
    monkeypatch.setenv("DB_PASSWORD", "db-pass-word")
    path = write(
        "s.yaml",
        """\
        source:
          plugin: blob
          options:
            account_url: "https://acct.blob.core.windows.net/?key=${AZURE_STORAGE_KEY}"
            region: ${REGION}
            sas_token: literal-sas-value
            headers: {Authorization: "Bearer ${API_TOKEN}"}
        sinks:
          out: {plugin: csv, options: {path: out.csv}}
        landscape: {url: "postgresql+psycopg://elspeth:${DB_PASSWORD}@db/landscape"}
        """,
    )
    secrets = secret_values(read_settings_file(path))
    assert secrets == {
        "storage-key-value",
        "token-value-123",
        "Bearer token-value-123",
        "literal-sas-value",
        "db-pass-word",
    }
    safe = redacted(load_settings(path), secrets)
    options = safe["source"]["options"]
    assert options["account_url"] == "https://acct.blob.core.windows.net/?key=***"
    assert options["region"] == "westeurope"
    assert options["sas_token"] == "***"
    assert options["headers"] == {"Authorization": "***"}
    assert safe["landscape"]["url"] == "postgresql+psycopg://elspeth:***@db/landscape"
    for secret in secrets:
        assert secret not in repr(safe)


def test_structure_names_plugin_options_under_where():
    from elspeth.plugins.csv_files import CsvSinkConfig

    with pytest.raises(ConfigError) as caught:
        structure({"paht": "x", "fields": "a,b"}, CsvSinkConfig, where="sinks.out.options", file="s.yaml")
    assert str(caught.value).splitlines() == [
        "s.yaml: sinks.out.options.path: required field missing; add 'path: <value>'",
        "s.yaml: sinks.out.options.fields: expected a list, got 'a,b'",
        "s.yaml: sinks.out.options.paht: unknown key; did you mean 'path'? "
        "(allowed here: path, if_exists, delimiter, fields)",
    ]


def test_structure_accepts_expanded_strings_for_numbers():
    data = {"source": {"plugin": "csv"}, "sinks": {"o": {"plugin": "csv"}}, "engine": {"retry": {"max_attempts": "5"}}}
    settings = structure(data, Settings, where="")
    assert settings.engine.retry.max_attempts == 5
    assert settings.default_sink is None
