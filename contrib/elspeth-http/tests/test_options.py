"""Options of `http_enrich`: the sandboxed URL template and every option's clear error."""

from __future__ import annotations

import pytest
from elspeth_http.enrich import HttpEnrichConfig
from elspeth_http.template import MissingField, UnusableValue, UrlTemplate

from elspeth.errors import ConfigError
from elspeth.settings import structure


def config(**options: object) -> HttpEnrichConfig:
    return structure(options, HttpEnrichConfig, where="transforms[0].options")


def test_defaults() -> None:
    c = config(url="https://api.example.com/items/{id}")
    assert (c.method, c.body_fields, c.headers, c.output_field) == ("GET", None, {}, "response")
    assert (c.timeout_seconds, c.max_attempts, c.backoff_seconds) == (30.0, 3, 1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "transforms[0].options.url: required field missing"),
        ({"url": "ftp://x/{id}"}, "give an http:// or https:// URL"),
        ({"url": "{base}/items"}, "give an http:// or https:// URL"),
        ({"url": "https://{host}/items"}, "write out the host"),
        ({"url": "https://api.example.com{path}"}, "write out the host"),
        ({"url": "https://x/{row.__class__}"}, "placeholder {row.__class__} in 'https://x/{row.__class__}' is not"),
        ({"url": "https://x/{a[0]}"}, "placeholder {a[0]}"),
        ({"url": "https://x/{a!r}"}, "placeholder {a!r}"),
        ({"url": "https://x/{a:>9}"}, "placeholder {a:>9}"),
        ({"url": "https://x/{}"}, "an empty placeholder {}"),
        ({"url": "https://x/{id"}, "write a literal brace as {{ or }}"),
        ({"url": "https://x", "method": "PUT"}, "option `method` is 'PUT'; use one of: GET, POST"),
        ({"url": "https://x", "body_fields": ["a"]}, "option `body_fields` applies to POST only"),
        ({"url": "https://x", "method": "POST", "body_fields": ["a", "a"]}, "lists 'a' twice"),
        ({"url": "https://x", "timeout_seconds": 0}, "option `timeout_seconds` must be a number greater than 0"),
        ({"url": "https://x", "max_attempts": 0}, "option `max_attempts` is 0; it must be at least 1"),
        ({"url": "https://x", "backoff_seconds": -1}, "option `backoff_seconds` must be a number of 0 or more"),
        ({"url": "https://x", "output_field": ""}, "option `output_field` is empty"),
        ({"url": "https://x", "header": {}}, "transforms[0].options.header: unknown key; did you mean 'headers'?"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**options)
    assert message in str(caught.value)


def test_the_template_quotes_every_value_and_keeps_the_literal_text() -> None:
    template = UrlTemplate.parse("https://x/a/{k}/b?q={q}&flag={f}&n={n}&{{literal}}")
    row = {"k": "a/b?c#d", "q": "x y&z=1", "f": True, "n": 1.5}
    assert template.render(row) == "https://x/a/a%2Fb%3Fc%23d/b?q=x%20y%26z%3D1&flag=true&n=1.5&{literal}"


def test_the_template_reaches_row_fields_only() -> None:
    template = UrlTemplate.parse("https://x/{missing}")
    with pytest.raises(MissingField):
        template.render({"other": 1})
    for value in (None, [1], {"a": 1}):
        with pytest.raises(UnusableValue):
            UrlTemplate.parse("https://x/{v}").render({"v": value})
