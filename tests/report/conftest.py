"""A real LLM pipeline (the demo's, on tickets of our own) run against the testkit's Azure OpenAI emulator
into a real SQLite Landscape, once for the module: what the report tests read."""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen
from click.testing import CliRunner, Result

from elspeth.cli import main
from elspeth_testkit.azure_openai_emulator import EmulatedError

pytest.importorskip("openai")

HOSTILE = "<img src=x onerror=alert(1)>"
BREAKOUT = "</script><script>document.title='pwned'</script>"
TICKETS = [
    ("T-1", "Northwind", "Invoice shows wrong VAT", "Our March invoice charges 25% VAT, we are exempt."),
    ("T-2", "Contoso", "Cannot log in", "Every login attempt says 'account locked'."),
    ("T-3", "Fabrikam", f"Charged twice {HOSTILE}", f"Two charges for order SO-4471. {BREAKOUT}"),
    ("T-4", "Litware", "Flaky export crash", "The export crashes now and then."),
    ("T-5", "Proseware", "Blocked words", "This one the content filter refuses."),
]
BILLING_ROW = 0
HOSTILE_ROW = 2
RETRIED_ROW = 3
FAILED_ROW = 4


@frozen
class LlmRun:
    root: Path
    url: str
    run_id: str

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--landscape", self.url])


def _settings(root: Path, endpoint: str) -> Path:
    path = root / "settings.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            source: {{plugin: csv, options: {{path: {root / "tickets.csv"}}}}}
            transforms:
              - name: classify
                plugin: azure_llm
                options:
                  endpoint: {endpoint}
                  api_key: sk-report-secret-9876
                  deployment: gpt-4o-mini
                  temperature: 0
                  backoff_seconds: 0
                  system_prompt: You triage customer support tickets. Answer with the label only.
                  prompt: |
                    Classify this ticket. Labels: billing, access, bug, feedback, other
                    Subject: {{{{ subject }}}}
                    Body: {{{{ body }}}}
                  output_field: category
                on_error: failed
              - name: by_category
                plugin: route
                options: {{field: category, routes: {{billing: billing}}}}
            default_sink: triaged
            sinks:
              triaged: {{plugin: csv, options: {{path: {root / "out" / "triaged.csv"}}}}}
              billing: {{plugin: csv, options: {{path: {root / "out" / "billing.csv"}}}}}
              failed: {{plugin: jsonl, options: {{path: {root / "out" / "failed.jsonl"}}}}}
            """
        )
    )
    return path


def _flaky() -> Callable[[Any, Any], str | EmulatedError]:
    """A server error on the first request, an answer on the next: one failed call, then a retry."""
    seen: list[int] = []

    def reply(match: Any, request: Any) -> str | EmulatedError:
        seen.append(1)
        if len(seen) == 1:
            return EmulatedError(500, "server_error", "The server had an error while processing your request.")
        return "bug"

    return reply


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory: pytest.TempPathFactory, azure_openai_emulator: Any) -> LlmRun:
    root = tmp_path_factory.mktemp("llm-run")
    with (root / "tickets.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ticket_id", "customer", "subject", "body"])
        writer.writerows(TICKETS)
    emulator = azure_openai_emulator
    emulator.reset()
    emulator.rule(r"(?is)subject:.*blocked words", EmulatedError())
    emulator.rule(r"(?is)subject:.*flaky", _flaky())
    emulator.rule(r"(?is)subject:.*(invoice|charge)", "billing")
    emulator.rule(r"(?is)subject:.*log ?in", "access")
    url = f"sqlite:///{root / 'audit' / 'landscape.db'}"
    result = CliRunner().invoke(
        main, ["run", str(_settings(root, emulator.url)), "--landscape", url, "--run-id", "llm-report", "-q"]
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(CliRunner().invoke(main, ["runs", "--landscape", url, "--json"]).stdout)
    assert [r["run_id"] for r in listed] == ["llm-report"]
    return LlmRun(root, url, "llm-report")
