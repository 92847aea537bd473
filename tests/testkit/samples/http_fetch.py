"""A correct transform that fetches with urllib: GETs `url`/items/<id> for each row, records every attempt
with `ctx.call` (a failure as an ERROR call, kept by the context manager), then answers a failure with a
retryable Error. Proxies from the environment are ignored: it talks to its server directly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from attrs import frozen

from elspeth.api import Capability, Context, Error, Register, Row, Success, Transform, TransformResult
from elspeth.hookspecs import hookimpl

from .http_client import HttpStatusError

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@frozen
class HttpFetchConfig:
    url: str
    timeout: float = 1.0


def fetch(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class SampleHttpFetch(Transform):
    name = "sample_http_fetch"
    config_class = HttpFetchConfig
    capabilities = frozenset({Capability.EXTERNAL_CALLS, Capability.DETERMINISTIC})
    config: HttpFetchConfig

    def url_for(self, row: Row) -> str:
        return f"{self.config.url.rstrip('/')}/items/{row['id']}"

    def process(self, row: Row, ctx: Context) -> TransformResult:
        url = self.url_for(row)
        try:
            with ctx.call("http", "sample_fetch", {"method": "GET", "url": url}) as call:
                status, data = fetch(url, self.config.timeout)
                call.response = {"status": status, "text": data.decode("utf-8", "replace")}
                if status >= 400:
                    raise HttpStatusError(status, data)
                document = json.loads(data)
                call.response = {"status": status, "json": document}
        except HttpStatusError as exc:
            return Error(str(exc), retryable=exc.status == 429 or exc.status >= 500)
        except (OSError, ValueError) as exc:  # a timeout, a reset connection, a body that is not JSON
            return Error(f"{type(exc).__name__}: {exc}", retryable=True)
        return Success({**row, "fetched": document["path"]})


@hookimpl
def register_transforms(register: Register) -> None:
    register(SampleHttpFetch)
