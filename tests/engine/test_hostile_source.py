"""A source file with records nested deep enough to exhaust the stack: each is quarantined, the run
completes, and a run that failed for another reason resumes over them (it once failed at that record on
every attempt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEEP = '{"d":' + "[" * 1_000 + "]" * 1_000 + "}"
VERY_DEEP = '{"d":' + "[" * 100_000 + "]" * 100_000 + "}"


def write_source(path: Path, rows: int) -> None:
    lines = []
    for i in range(rows):
        lines.append(json.dumps({"id": i}))
        if i % 7 == 3:
            lines.append(DEEP if i % 2 else VERY_DEEP)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_deep_records_are_quarantined_and_a_failed_run_resumes_over_them(world: Any) -> None:
    w = world("deep")
    source = w.root / "in.jsonl"
    write_source(source, 40)
    settings = w.settings(source={"plugin": "jsonl", "options": {"path": str(source)}}, sinks=["out"])
    failed = w.run(settings, faults={"out": {"at": "flush", "n": 2, "action": "raise"}})
    assert failed.status == "failed"
    resumed = w.resume(failed.run_id, settings)
    assert resumed.status == "completed", resumed.error
    assert [row["id"] for row in w.lines("out")] == list(range(40))
    quarantined = w.query(
        "SELECT count(*) AS n FROM token_outcomes WHERE run_id = :run AND outcome = 'quarantined'",
        run=failed.run_id,
    )
    assert quarantined == [{"n": 6}]
    w.assert_clean(failed.run_id)
