"""Wires the `s3` source and sink into Elspeth's conformance kit (`pytest --elspeth-conformance`), and gives
this package's own tests the same moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from elspeth_s3.conformance import moto_s3, s3_setups


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 and a free port, dummy credentials in the environment."""
    with moto_s3() as url:
        yield url


@pytest.fixture
def elspeth_conformance_setups(elspeth_conformance_setups: dict[str, Any], s3_endpoint: str) -> dict[str, Any]:
    return {**elspeth_conformance_setups, **s3_setups(s3_endpoint)}


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> str:
    """The endpoint, with the bucket of this package's tests in place."""
    from elspeth_s3.conformance import ensure_bucket

    ensure_bucket(s3_endpoint, "elspeth-s3-tests")
    return s3_endpoint
