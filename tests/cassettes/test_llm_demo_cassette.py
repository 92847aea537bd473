"""The LLM demo: recorded against the local Azure OpenAI emulator, replayed offline from the cassette; the
replay records the same calls as the recording, and the cassette shipped in examples/ still replays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from elspeth.cli import main
from elspeth_testkit.replay_check import compare_replayed_calls
from elspeth_testkit.sweep import assert_clean

pytest.importorskip("openai")
pytest.importorskip("vcr")

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "examples" / "llm"


def _run(tmp: Path, name: str, *args: str, env: dict[str, str]) -> tuple[str, str]:
    url = f"sqlite:///{tmp / name / 'landscape.db'}"
    out = tmp / name / "out"
    result = CliRunner().invoke(
        main,
        ["run", str(DEMO / "settings.yaml"), "--landscape", url, "--quiet", *args],
        env={**env, "LLM_OUT": str(out)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    run_id = json.loads(CliRunner().invoke(main, ["runs", "--landscape", url, "--json"]).output)[0]["run_id"]
    assert_clean(url, run_id, tmp / name / "payloads")
    return url, run_id


@pytest.fixture
def in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_record_then_replay_offline_gives_the_same_calls_and_outputs(tmp_path, azure_openai_emulator, in_repo_root):
    azure_openai_emulator.reset()
    for pattern, reply in json.loads((DEMO / "emulator-rules.json").read_text()):
        azure_openai_emulator.rule(pattern, reply)
    tape = tmp_path / "tape.yaml"
    env = {"AZURE_OPENAI_ENDPOINT": azure_openai_emulator.url, "AZURE_OPENAI_API_KEY": "sk-demo-secret-4242"}
    recorded = _run(tmp_path, "recorded", "--record-cassette", str(tape), env=env)
    assert "sk-demo-secret-4242" not in tape.read_text()
    seen = len(azure_openai_emulator.requests_to("POST", ".*"))
    replayed = _run(tmp_path, "replayed", "--replay-cassette", str(tape), env=env)
    assert len(azure_openai_emulator.requests_to("POST", ".*")) == seen, "the replay went to the network"
    assert compare_replayed_calls(recorded, replayed) == []
    for name in ("triaged.csv", "billing.csv"):
        assert (tmp_path / "recorded" / "out" / name).read_bytes() == (
            tmp_path / "replayed" / "out" / name
        ).read_bytes()


def test_the_shipped_demo_cassette_replays_offline(tmp_path, in_repo_root):
    tape = tmp_path / "cassette.yaml"
    shutil.copy(DEMO / "cassette.yaml", tape)
    _run(tmp_path, "demo", "--replay-cassette", str(tape), env={})
    billing = (tmp_path / "demo" / "out" / "billing.csv").read_text()
    assert "T-1001" in billing and "T-1004" in billing
