"""A stand-in for the engine's Context: file plugins need its ids at most, and must never record a call."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import define


@define
class FileContext:
    run_id: str = "run-1"
    node_id: str = "node-1"
    state_id: int = 1

    def record_call(self, **call: Any) -> None:
        raise AssertionError(f"a file plugin recorded an external call: {call}")

    def call(self, *args: Any) -> Any:
        raise AssertionError(f"a file plugin made an external call: {args}")


@pytest.fixture
def ctx() -> Any:
    return FileContext()
