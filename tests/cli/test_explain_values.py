"""`elspeth explain --row` shows each transform step's values (what it changed, field by field) beside its
hashes, shortened in text and whole in --json; and copes with bodies gone from the payload store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from elspeth import canonical

LONG = "x" * 40_000  # past the recorder's inline limit: the output row goes to the payload store

INPUT = "id,name,region\n1,Ada,EU\n2,Grace,NA\n"


def _pipeline(write, constant: str = "gold") -> Path:
    write("input.csv", INPUT)
    return write(
        "settings.yaml",
        f"""\
        source: {{plugin: csv, options: {{path: input.csv, types: {{id: int}}}}}}
        transforms:
          - name: tidy
            plugin: field_map
            options: {{rename: {{name: customer}}, constants: {{tier: "{constant}"}}}}
          - name: by_region
            plugin: route
            options: {{field: region, routes: {{EU: europe}}}}
        default_sink: rest
        sinks:
          rest: {{plugin: csv, options: {{path: out/rest.csv, if_exists: overwrite}}}}
          europe: {{plugin: csv, options: {{path: out/europe.csv, if_exists: overwrite}}}}
        """,
    )


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit' / 'landscape.db'}"


def test_explain_shows_what_each_step_changed(elspeth, write, tmp_path):
    url = _url(tmp_path)
    assert elspeth("run", str(_pipeline(write)), "--landscape", url, "--run-id", "v1", "-q").exit_code == 0
    result = elspeth("explain", "v1", "--row", "0", "--landscape", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "row 0 (rows count from 0)" in out
    tidy, route = out.split("transform:tidy process", 1)[1].split("transform:by_region process", 1)
    # A rename shows as the old field removed and the new one added, with its value; the constant as added.
    assert '+ customer: "Ada"' in tidy and '- name: "Ada"' in tidy and '+ tier: "gold"' in tidy
    assert "values: unchanged" in route
    assert "shortened" not in out


def test_explain_json_keeps_the_values_whole_and_they_hash_to_the_recorded_hashes(elspeth, write, tmp_path):
    url = _url(tmp_path)
    settings = _pipeline(write, constant="y" * 200)
    assert elspeth("run", str(settings), "--landscape", url, "--run-id", "v2", "-q").exit_code == 0
    text = elspeth("explain", "v2", "--row", "1", "--landscape", url).stdout
    assert '+ tier: "yyyyy' in text and "…" in text and "--json shows them whole" in text

    data = json.loads(elspeth("explain", "v2", "--row", "1", "--landscape", url, "--json").stdout)
    tidy = next(s for s in data["states"] if s["node_id"] == "transform:tidy")
    assert tidy["output_status"] == "recorded"
    assert tidy["output"] == {"id": 2, "customer": "Grace", "region": "NA", "tier": "y" * 200}
    # The kept value is what the output hash is the hash of: the audit can check it.
    assert canonical.stable_hash(tidy["output"]) == tidy["output_hash"]
    route = next(s for s in data["states"] if s["node_id"] == "transform:by_region")
    assert route["output_status"] == "unchanged" and route["output"] is None
    [step] = [v for v in data["values"] if v["state_id"] == tidy["state_id"]]
    assert step["known"] and step["input_verified"] is True
    assert {(c["field"], c["change"]) for c in step["changes"]} == {
        ("name", "removed"),
        ("customer", "added"),
        ("tier", "added"),
    }


def test_explain_copes_with_purged_payloads(elspeth, write, tmp_path):
    url = _url(tmp_path)
    assert (
        elspeth("run", str(_pipeline(write, constant=LONG)), "--landscape", url, "--run-id", "v3", "-q").exit_code == 0
    )
    before = json.loads(elspeth("explain", "v3", "--row", "0", "--landscape", url, "--json").stdout)
    tidy = next(s for s in before["states"] if s["node_id"] == "transform:tidy")
    assert tidy["output_status"] == "recorded" and tidy["output"]["tier"] == LONG

    shutil.rmtree(tmp_path / "audit" / "payloads")  # what a purge leaves: hashes without bodies
    result = elspeth("explain", "v3", "--row", "0", "--landscape", url)
    assert result.exit_code == 0, result.output
    tidy_text = result.stdout.split("transform:tidy process", 1)[1].split("\n  #", 1)[0]
    assert "values: output purged" in tidy_text
    # The next step's input is not known either, and says so rather than guessing.
    route_text = result.stdout.split("transform:by_region process", 1)[1].split("\n  #", 1)[0]
    assert "values: unchanged" in route_text
    after = json.loads(elspeth("explain", "v3", "--row", "0", "--landscape", url, "--json").stdout)
    tidy = next(s for s in after["states"] if s["node_id"] == "transform:tidy")
    assert tidy["output_status"] == "purged" and tidy["output"] is None
    kept = next(s for s in before["states"] if s["node_id"] == "transform:tidy")
    assert tidy["output_hash"] == kept["output_hash"]  # the hash stays: the audit still proves what it was


def test_explain_help_says_rows_count_from_0(elspeth):
    result = elspeth("explain", "--help")
    assert result.exit_code == 0
    assert "Rows count from 0" in " ".join(result.stdout.split())
