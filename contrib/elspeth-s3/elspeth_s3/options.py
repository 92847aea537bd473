"""The options the S3 source and sink share: where the object is and how to reach it."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import field, frozen

from elspeth.errors import ConfigError
from elspeth.options import at_least, one_of


def non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ConfigError(f"option `{attribute.name}` is empty; name the S3 {attribute.name}")


def object_path(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ConfigError(f"option `{attribute.name}` is empty; give the object's key, e.g. exports/rows.jsonl")
    if value.startswith("s3://"):
        raise ConfigError(
            f"option `{attribute.name}` is {value!r}; give the key inside the bucket (e.g. exports/rows.jsonl) and "
            "the bucket in `bucket`, not an s3:// URI"
        )


def optional_url(_instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ConfigError(
            f"option `{attribute.name}` is {value!r}; give an http:// or https:// URL, or leave it out for AWS"
        )


FORMATS = ("csv", "jsonl")


@frozen
class S3ObjectConfig:
    bucket: str = field(validator=non_empty)
    path: str = field(validator=object_path)
    """The object's key in the bucket, e.g. `exports/2026/rows.jsonl`. Not named `key`: elspeth treats the
    value of any option whose name contains "key" as a credential and blanks it out of the audit trail."""
    format: str = field(default="jsonl", validator=one_of(*FORMATS))
    region: str | None = None
    """AWS region; default: the usual AWS configuration (AWS_DEFAULT_REGION, ~/.aws/config)."""
    endpoint_url: str | None = field(default=None, validator=optional_url)
    """An S3-compatible endpoint (MinIO, moto, a proxy); default: AWS."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    """Credentials; when left out, boto3's default chain (environment, profile, instance role)."""
    max_attempts: int = field(default=3, validator=at_least(1, maximum=20))
    """Attempts per S3 request on throttling, 5xx, timeouts and dropped connections; each one is recorded."""
    timeout_seconds: float = field(default=60.0, validator=at_least(0.1, unit=" seconds"))

    def __attrs_post_init__(self) -> None:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ConfigError(
                "options `aws_access_key_id` and `aws_secret_access_key` go together: give both, or neither to use "
                "the default AWS credential chain"
            )

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.path}"
