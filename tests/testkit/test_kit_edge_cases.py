"""Edge cases the kit once got wrong, kept as the tests that proved them fixed: secrets the service echoes
back, setups that build their endpoint as documented, encoded secrets, and a non-durable flush whose resume
the sink itself refuses."""

from __future__ import annotations

import base64
import sqlite3

import pytest

from .conformance_runs import install, run_kit, write_setups
from .samples.setups import API_KEY

pytest_plugins = ("pytester",)

TRANSFORM_SCENARIOS = {
    "test_transform_contract",
    "test_transform_empty_input",
    "test_transform_deterministic",
    "test_transform_call_linkage",
    "test_transform_sdk_failure",
    "test_transform_audit_refused",
    "test_transform_recovery",
    "test_transform_secrets",
}


def test_secret_echoed_by_the_service_is_no_metadata_only_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, upstream: str
) -> None:
    """The correct transform against a service that sends the `api-key` header back in its response (as an
    echo service does, or a token endpoint its `access_token`): the recorder rightly stores that value as
    `***`, and the wire check then reports the correct plugin's calls as `call-metadata-only`."""
    install(pytester, monkeypatch, "http_transform")
    write_setups(pytester, {"transform:sample_http": f"setups.http_transform({upstream!r})"})
    run = run_kit(pytester, "transform:sample_http")
    run.assert_clean({"sample_http": TRANSFORM_SCENARIOS | run.concurrency_if_run("sample_http")})


def test_setup_as_documented_needs_no_fallback_endpoint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    """The correct transform with its options built as docs/conformance.md shows (`"url": endpoint`): the
    empty-input, deterministic, recovery and secrets scenarios hand `endpoint=None`, so the plugin gets no
    URL (a ConfigError here; a plugin with a default URL would talk to the real service, unproxied)."""
    install(pytester, monkeypatch, "http_transform")
    write_setups(pytester, {"transform:sample_http": f"setups.http_transform({quiet_upstream!r}, fallback=False)"})
    run = run_kit(pytester, "transform:sample_http")
    run.assert_clean({"sample_http": TRANSFORM_SCENARIOS | run.concurrency_if_run("sample_http")})


def test_base64_encoded_secret_in_a_plain_header_is_a_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_upstream: str
) -> None:
    """Class 19, disguised: the api key base64-encoded under `X-Client`, and logged so. The recorder stores
    the encoded key as `***`, as it does the key itself (checked first: a precondition); the log line is beyond
    its reach, and the secrets scenario catches it there."""
    install(pytester, monkeypatch, "http_key_in_header")
    write_setups(pytester, {"transform:sample_http_key_in_header": f"setups.http_transform({quiet_upstream!r})"})
    run = run_kit(pytester, "transform:sample_http_key_in_header", only="test_transform_secrets")
    encoded = base64.b64encode(API_KEY.encode()).decode()
    with sqlite3.connect(run.landscape("test_transform_secrets")) as conn:
        requests = [r for (r,) in conn.execute("SELECT request_json FROM calls")]
    if not requests or any(encoded in r for r in requests):
        pytest.fail("precondition: the sample's calls should be recorded, its base64-encoded key redacted")
    run.assert_caught("test_transform_secrets", "sample_http_key_in_header", "secret-leak")


def test_flush_that_is_not_durable_is_named_even_when_resume_refuses(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Class 11 with a careful resume: the sink's artifacts claimed bytes its file never got, so its resume
    refuses. The kit fails it, but with the sink's bare ResumeError: no invariant, no Landscape rows. A sweep
    of the killed run before resuming names it: `artifact-bytes` (the first `size` bytes do not hash to the
    recorded content_hash)."""
    install(pytester, monkeypatch, "sink_flush_not_durable_strict")
    write_setups(pytester, {"sink:sample_flush_not_durable_strict": "setups.append_sink()"})
    run = run_kit(pytester, "sink:sample_flush_not_durable_strict", only="test_sink_recovery_mid_write")
    run.assert_caught("test_sink_recovery_mid_write", "sample_flush_not_durable_strict", "artifact-bytes")
