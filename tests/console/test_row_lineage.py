"""A row's lineage as text, from rows a real run recorded: values shortened at VALUE_CHARS (and said once),
a field changed in place, a long payload, a quarantined row, a purged one, one still without an outcome."""

from __future__ import annotations

import json

from elspeth.console.row_lineage import VALUE_CHARS, lineage_json, render_lineage
from elspeth.landscape import lineage
from elspeth.landscape.row_values import step_values

# JSON adds two quotes: FITS shows exactly VALUE_CHARS characters, CUT one more, so it is shortened.
FITS = "a" * (VALUE_CHARS - 2)
CUT = "b" * (VALUE_CHARS - 1)
LONG_NAME = "Grace " + "Brewster Murray Hopper " * 5
SETTINGS = f"""\
    source:
      plugin: csv
      options: {{path: "{{root}}/input.csv", types: {{id: int}}}}
      on_quarantine: rejects
    transforms:
      - name: tidy
        plugin: field_map
        options: {{constants: {{fits: "{FITS}", cut: "{CUT}", region: XX}}}}
    default_sink: out
    sinks:
      out: {{plugin: csv, options: {{path: "{{root}}/out.csv", if_exists: overwrite}}}}
      rejects: {{plugin: jsonl, options: {{path: "{{root}}/rejects.jsonl", if_exists: overwrite}}}}
    """
INPUT = f"id,name,region\n1,Ada,EU\n2,{LONG_NAME},NA\nthree,Linus,EU\n"


def _lineage(landscape, run_id: str, row_id: int):
    with landscape.connect() as conn:
        row = lineage.row_lineage(conn, run_id, row_id, landscape.store.get)
    return row, step_values(row)


def _step_lines(text: str, node_id: str) -> list[str]:
    """The value lines under the state of `node_id`."""
    after = text.split(f" {node_id} process ", 1)[1].splitlines()[1:]
    return [line.strip() for line in after if line.startswith("      ") and line.strip()[:1] in "+-~"]


def test_values_longer_than_value_chars_are_shortened_and_the_json_keeps_them(landscape):
    landscape.run("l1", SETTINGS, input_csv=INPUT)
    row, values = _lineage(landscape, "l1", 0)
    text = render_lineage(row, values)
    lines = {line.split(":", 1)[0]: line for line in _step_lines(text, "transform:tidy")}
    assert lines["+ fits"] == f'+ fits: "{FITS}"'
    shown = lines["+ cut"].removeprefix("+ cut: ")
    assert len(shown) == VALUE_CHARS and shown == json.dumps(CUT)[: VALUE_CHARS - 1] + "…"
    assert text.count("are shortened") == 1
    assert text.splitlines()[-1] == (
        f"Values longer than {VALUE_CHARS} characters are shortened (…); --json shows them whole."
    )
    [tidy] = [v for v in lineage_json(row, values)["values"] if v["state_id"] in values]
    assert {c["field"]: c["after"] for c in tidy["changes"]}["cut"] == CUT


def test_a_field_changed_in_place_shows_before_and_after(landscape):
    landscape.run("l2", SETTINGS, input_csv=INPUT)
    text = render_lineage(*_lineage(landscape, "l2", 0))
    assert '~ region: "EU" -> "XX"' in _step_lines(text, "transform:tidy")


def test_a_payload_too_long_for_one_line_is_shown_as_indented_json(landscape):
    landscape.run("l3", SETTINGS, input_csv=INPUT)
    row, values = _lineage(landscape, "l3", 1)
    lines = render_lineage(row, values).splitlines()
    start = lines.index("  payload") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("  sha256"))
    assert all(line.startswith("    ") for line in lines[start:end])
    assert json.loads("\n".join(lines[start:end])) == row.payload
    assert lines[end] == f"  sha256     {row.payload_hash}"


def test_a_quarantined_rows_reason_reads_as_its_sentence(landscape):
    landscape.run("l4", SETTINGS, input_csv=INPUT)
    row, values = _lineage(landscape, "l4", 2)
    assert row.quarantined
    text = render_lineage(row, values)
    [line] = [line for line in text.splitlines() if line.startswith("  quarantined: ")]
    assert line == f"  quarantined: {row.quarantine_reason['reason']}"
    assert "{" not in line


def test_a_purged_rows_payload_is_attributable_by_its_hash_only(landscape):
    landscape.run("l5", SETTINGS, input_csv=INPUT)
    before, _ = _lineage(landscape, "l5", 0)
    landscape.purge("l5")
    row, values = _lineage(landscape, "l5", 0)
    lines = render_lineage(row, values).splitlines()
    assert lines[1:3] == [
        "  payload    (purged: attributable by its sha256 only)",
        f"  sha256     {before.payload_hash}",
    ]


def test_a_row_without_an_outcome_says_resume_finishes_it(landscape):
    # The sink's directory is a file: the run fails at its first write, before any row has an outcome.
    (landscape.root / "blocked").write_text("")
    failing = SETTINGS.replace("{root}/out.csv", "{root}/blocked/out.csv")
    assert landscape.run("l6", failing, input_csv=INPUT).status == "failed"
    row, values = _lineage(landscape, "l6", 0)
    assert row.outcomes == []
    text = render_lineage(row, values)
    assert text.split("\nOutcomes\n", 1)[1].splitlines()[0] == (
        "  none yet: the run has unfinished work for this row (elspeth resume finishes it)"
    )
