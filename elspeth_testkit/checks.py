"""Scenario bodies shared by several plugin kinds: each takes a Harness and fails through it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from attrs import has

from elspeth.api import NoConfig
from elspeth.errors import ConfigError
from elspeth.settings import structure
from elspeth_testkit.harness import Harness, RunResult
from elspeth_testkit.setups import Row, text_rows


def contract(h: Harness) -> None:
    """Registered under a usable name; options are attrs fields structured by cattrs; an unknown option is
    a ConfigError that names it."""
    cls = h.plugin.info.cls
    if not h.plugin.info.name.replace("_", "").replace("-", "").isalnum():
        h.fail("contract-name", f"plugin name {h.plugin.info.name!r} is not a plain identifier")
    config_class = cls.config_class
    if config_class is not NoConfig and not has(config_class):
        h.fail("contract-config-class", f"config_class {config_class!r} is not an attrs class")
    try:
        structure({"__not_an_option__": 1}, config_class, where="options")
    except ConfigError as exc:
        if "__not_an_option__" not in str(exc):
            h.fail("contract-config-error", f"an unknown option gave a ConfigError that does not name it: {exc}")
    else:
        h.fail("contract-config-error", "an unknown option `__not_an_option__` was accepted silently")


def artifact_matches_bytes(h: Harness, result: RunResult, sink_node: str, data: bytes) -> None:
    """The recorded artifact of the sink's last flush describes all the stored bytes (bug class 2)."""
    artifacts = result.rows("artifacts", node_id=sink_node)
    if not artifacts:
        h.fail("artifact-missing", f"no artifact was recorded for {sink_node}")
    last = max(artifacts, key=lambda a: a["artifact_id"])
    digest = hashlib.sha256(data).hexdigest()
    if (last["content_hash"], last["size"]) != (digest, len(data)):
        h.fail(
            "artifact-bytes",
            f"the last artifact of {sink_node} records sha256 {last['content_hash'][:12]} and {last['size']} bytes, "
            f"but the destination holds {len(data)} bytes hashing to {digest[:12]}: the hash must describe the "
            "whole output, not the last batch",
            [last],
        )


def same_rows(h: Harness, invariant: str, got: list[Row], expected: list[Row], what: str) -> None:
    """`got` holds exactly `expected`, in order, each once (compared as text)."""
    got_text, expected_text = text_rows(got), text_rows(expected)
    if got_text == expected_text:
        return
    seen: dict[str, int] = {}
    for row in got_text:
        seen[json.dumps(row, sort_keys=True)] = seen.get(json.dumps(row, sort_keys=True), 0) + 1
    duplicated = [json.loads(k) for k, n in seen.items() if n > 1]
    missing = [r for r in expected_text if json.dumps(r, sort_keys=True) not in seen]
    h.fail(
        invariant,
        f"{what}: expected {len(expected)} rows in order, got {len(got)}; "
        f"{len(missing)} missing, {len(duplicated)} duplicated",
        (missing[:5] + duplicated[:5]) or got_text[:10],
    )


def deterministic_outputs(h: Harness, first: RunResult, second: RunResult) -> None:
    """Two runs over the same input record the same output hashes, node by node, token by token."""

    def hashes(result: RunResult) -> list[tuple[Any, ...]]:
        states = result.rows("node_states")
        return sorted(
            (s["node_id"], s["operation"], s["token_id"], s["input_hash"], s["output_hash"])
            for s in states
            if s["operation"] == "process"
        )

    a, b = hashes(first), hashes(second)
    if a != b:
        diff = [dict(zip(("node", "op", "token", "in", "out"), x, strict=True)) for x in a if x not in b]
        h.fail("deterministic-hashes", "the same input gave different recorded hashes in two runs", diff[:10])


def empty_run(h: Harness, settings: dict[str, Any]) -> RunResult:
    result = h.run(settings)
    h.check(result)
    return result
