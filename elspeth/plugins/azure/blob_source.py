"""The `azure_blob` source: rows of one blob in Azure Blob Storage, as CSV, JSON Lines or a JSON array.

The blob is streamed, one ranged GET of `chunk_bytes` at a time, and parsed by the very code of the csv
and jsonl sources: bad records are quarantined with the same reasons. Every GET is a recorded call holding
the bytes it returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from attrs import field, frozen

from elspeth.api import Capability, Context, Location, Quarantine, Row, Source
from elspeth.errors import ConfigError
from elspeth.formats import DEFAULT_MAX_FIELD_SIZE, Origin, read_csv, read_json_array, read_jsonl, text_stream
from elspeth.options import known_encoding, positive, single_character, values_one_of
from elspeth.plugins.azure.blob_auth import BlobAccessConfig, blob_client, blob_location, blob_name_problem
from elspeth.plugins.azure.blob_calls import BlobCalls

_FORMATS = ("csv", "json", "jsonl")
_BY_EXTENSION = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_of(blob_path: str, given: str | None, formats: tuple[str, ...]) -> str:
    """The `format` option, or the one the blob's extension names."""
    if given is not None:
        if given not in formats:
            raise ConfigError(f"option `format` is {given!r}; use one of: {', '.join(formats)}")
        return given
    extension = "." + blob_path.rpartition(".")[2].lower() if "." in blob_path.rpartition("/")[2] else ""
    found = _BY_EXTENSION.get(extension)
    if found is None or found not in formats:
        raise ConfigError(
            f"option `format` is not set and {blob_path!r} does not end in {', '.join(f'.{f}' for f in formats)}; "
            f"set `format` to one of: {', '.join(formats)}"
        )
    return found


@frozen
class AzureBlobSourceConfig(BlobAccessConfig):
    format: str | None = None
    """csv, json (a top-level array of objects) or jsonl; default: from the blob's extension."""
    delimiter: str = field(default=",", validator=single_character)
    encoding: str = field(default="utf-8", validator=known_encoding)
    types: dict[str, str] = field(factory=dict, validator=values_one_of("int", "float", "bool", "str"))
    """csv only: column -> int, float, bool or str (the default). An empty value becomes None."""
    max_field_size: int = field(default=DEFAULT_MAX_FIELD_SIZE, validator=positive)
    """csv only: characters one field may hold; a record with a longer one is quarantined."""

    def __attrs_post_init__(self) -> None:
        problem = blob_name_problem(self.blob_path)
        if problem:
            raise ConfigError(f"option `blob_path` is {self.blob_path!r}, which cannot be read: {problem}")
        super().__attrs_post_init__()
        if self.resolved_format != "csv":
            if self.types:
                raise ConfigError("option `types` applies to format csv only; JSON values keep their own types")
            if self.delimiter != ",":
                raise ConfigError("option `delimiter` applies to format csv only; drop it")

    @property
    def resolved_format(self) -> str:
        return format_of(self.blob_path, self.format, _FORMATS)


class AzureBlobSource(Source):
    """Rows of one blob: CSV with a header line, JSON Lines, or a JSON array of objects."""

    name = "azure_blob"
    config_class = AzureBlobSourceConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXTERNAL_CALLS, Capability.DETERMINISTIC})
    config: AzureBlobSourceConfig

    @classmethod
    def locations(cls, config: AzureBlobSourceConfig) -> list[Location]:
        return blob_location(config, writes=False)

    def __init__(self, config: AzureBlobSourceConfig) -> None:
        super().__init__(config)
        self._calls: BlobCalls | None = None

    def load(self, ctx: Context) -> Iterator[Row | Quarantine]:
        cfg = self.config
        if self._calls is None:
            self._calls = BlobCalls(cfg, blob_client(cfg, cfg.blob_path), kind="azure_blob source")
        calls = self._calls
        fmt = cfg.resolved_format
        origin = Origin("azure_blob source", calls.where, "blob")
        try:
            with text_stream(calls.download(ctx), cfg.encoding, newline="" if fmt == "csv" else "\n") as f:
                if fmt == "csv":
                    yield from read_csv(f, cfg, origin)
                elif fmt == "json":
                    yield from read_json_array(f, cfg.encoding, origin)
                else:
                    yield from read_jsonl(f, cfg.encoding, origin)
        except ConfigError:
            raise
        except Exception as exc:
            if _is_sdk_error(exc):
                raise calls.explain(exc, "reading", permission="read (r)") from exc
            raise

    def close(self) -> None:
        if self._calls is not None:
            self._calls.client.close()
            self._calls = None


def _is_sdk_error(exc: BaseException) -> bool:
    from azure.core.exceptions import AzureError

    from elspeth.plugins.azure.blob_calls import BodyMismatch

    return isinstance(exc, AzureError | BodyMismatch)
