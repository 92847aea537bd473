"""What the Blob Storage source and sink share: where the blob is, how to authenticate, and the SDK client
built from that (no SDK retries, bounded ranged GETs), plus the checks that keep a blob name inside its
container.

Authentication is exactly one of: `connection_string`; `account_url` with `sas_token`; `account_url` with
`account_key`; `account_url` with `use_default_credential: true` (azure-identity's DefaultAzureCredential).
`endpoint` overrides the URL requests go to (an emulator, a proxy), whatever the authentication.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from attrs import field, frozen

from elspeth.api import Location
from elspeth.errors import ConfigError
from elspeth.options import not_negative, positive

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The storage emulator's well-known account (public, documented by Microsoft): `UseDevelopmentStorage=true`."""

DEFAULT_CHUNK_BYTES = 4 << 20
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_CONNECTION_KEYS = frozenset(
    {
        "defaultendpointsprotocol",
        "accountname",
        "accountkey",
        "sharedaccesssignature",
        "blobendpoint",
        "endpointsuffix",
        "usedevelopmentstorage",
        "developmentstorageproxyuri",
        "queueendpoint",
        "tableendpoint",
        "fileendpoint",
    }
)
_AUTH_HELP = (
    "give exactly one of: `connection_string`; `account_url` with `sas_token`; `account_url` with "
    "`account_key`; `account_url` with `use_default_credential: true`"
)


def _container_name(_instance: Any, _attribute: Any, value: str) -> None:
    if value in ("$root", "$web", "$logs") or _CONTAINER.fullmatch(value):
        return
    raise ConfigError(
        f"option `container` is {value!r}, which is not a container name: 3-63 lowercase letters, digits and "
        "single hyphens, starting and ending with a letter or digit"
    )


def _http_url(_instance: Any, attribute: Any, value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"option `{attribute.name}` must be an http(s) URL, e.g. https://ACCOUNT.blob.core.windows.net"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"option `{attribute.name}` has a query string; give the URL without it (a SAS goes in `sas_token`)"
        )


def blob_name_problem(name: str) -> str | None:
    """Why `name` cannot be a blob name that stays inside its container, or None if it can."""
    if not name:
        return "it is empty"
    if len(name) > 1024:
        return "it is longer than 1024 characters"
    if "\\" in name:
        return "it contains a backslash; separate folders with /"
    if name.startswith("/"):
        return "it is absolute (starts with /); give a path inside the container"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character"
    for segment in name.split("/"):
        if segment in (".", ".."):
            return f"it has a {segment!r} segment, which could leave the container"
        if not segment:
            return "it has an empty segment (// or a trailing /)"
    return None


@frozen
class BlobAccessConfig:
    """Options of every Blob Storage plugin: the container, the blob, the credentials and the retry policy."""

    container: str = field(validator=_container_name)
    blob_path: str
    connection_string: str | None = None
    account_url: str | None = field(default=None, validator=_http_url)
    sas_token: str | None = None
    account_key: str | None = None
    account_name: str | None = None
    """With `account_key`: the storage account's name, when `account_url` does not show it."""
    use_default_credential: bool = False
    endpoint: str | None = field(default=None, validator=_http_url)
    """Send requests here instead (an emulator, a proxy): the blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1."""
    max_attempts: int = field(default=3, validator=positive)
    """Attempts per request on a transient failure (HTTP 408, 429, 5xx, a lost connection); each is recorded."""
    backoff_seconds: float = field(default=1.0, validator=not_negative)
    """Wait before the 2nd attempt, doubled for each later one (or the server's Retry-After, if longer)."""
    timeout_seconds: float = field(default=60.0, validator=positive)
    """How long to wait for the service to answer one request."""
    chunk_bytes: int = field(default=DEFAULT_CHUNK_BYTES, validator=positive)
    """Bytes per ranged GET when reading a blob: at most this much of it is in memory."""

    def __attrs_post_init__(self) -> None:
        chosen = [
            name
            for name, given in (
                ("connection_string", self.connection_string),
                ("sas_token", self.sas_token),
                ("account_key", self.account_key),
                ("use_default_credential", self.use_default_credential),
            )
            if given
        ]
        if not chosen:
            raise ConfigError(f"no credentials for container {self.container!r}: {_AUTH_HELP}")
        if len(chosen) > 1:
            raise ConfigError(f"options {' and '.join(f'`{c}`' for c in chosen)} are both given; {_AUTH_HELP}")
        if self.connection_string:
            if self.account_url:
                raise ConfigError(
                    "options `connection_string` and `account_url` are both given; the connection string names "
                    "the account: drop `account_url` (use `endpoint` to send requests elsewhere)"
                )
            parse_connection_string(self.connection_string)
        elif not self.account_url:
            raise ConfigError(f"option `{chosen[0]}` needs `account_url` (https://ACCOUNT.blob.core.windows.net)")
        if self.account_name and not self.account_key:
            raise ConfigError("option `account_name` goes with `account_key` only; drop it")
        if self.account_key and not self.account_name and not _account_from_url(self.account_url or ""):
            raise ConfigError(
                f"`account_url` {self.account_url} does not show the storage account's name; set `account_name`"
            )

    @property
    def uri(self) -> str:
        """The blob as one string naming its account, container and name: what `validate` compares to find
        two plugins on one blob. Never holds a credential."""
        account: str | None
        if self.connection_string:
            settings = parse_connection_string(self.connection_string)
            if settings.get("usedevelopmentstorage", "").lower() == "true":
                account = AZURITE_ACCOUNT
            else:
                account = settings.get("accountname") or _account_from_url(settings.get("blobendpoint", ""))
        else:
            account = self.account_name or _account_from_url(self.account_url or "")
        endpoint = f"@{self.endpoint.rstrip('/')}" if self.endpoint else ""
        return f"azure-blob://{account or '-'}{endpoint}/{self.container}/{self.blob_path}"

    @property
    def auth_mode(self) -> str:
        """How this config authenticates, for messages (never the secret itself)."""
        if self.connection_string:
            return "the connection string"
        if self.sas_token:
            return "the SAS token"
        if self.account_key:
            return "the account key"
        return "DefaultAzureCredential"


def parse_connection_string(text: str) -> dict[str, str]:
    """The settings of a storage connection string, keys lower-cased. Messages never quote the value."""
    settings: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        name, sep, value = part.partition("=")
        key = name.strip().lower()
        if not sep or key not in _CONNECTION_KEYS:
            what = f"a setting {name.strip()!r}" if sep else "a part without '='"
            raise ConfigError(
                f"option `connection_string` has {what}; copy it whole from the storage account's "
                "'Access keys' page (AccountName=...;AccountKey=...;...)"
            )
        settings[key] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        return {
            "accountname": AZURITE_ACCOUNT,
            "accountkey": AZURITE_KEY,
            "blobendpoint": f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}",
        }
    if not (settings.get("accountkey") or settings.get("sharedaccesssignature")):
        raise ConfigError("option `connection_string` has neither AccountKey nor SharedAccessSignature")
    if settings.get("accountkey") and not settings.get("accountname"):
        raise ConfigError("option `connection_string` has an AccountKey but no AccountName")
    if not (settings.get("blobendpoint") or settings.get("accountname")):
        raise ConfigError("option `connection_string` names neither BlobEndpoint nor AccountName")
    return settings


def _account_from_url(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host and not host.replace(".", "").isdigit() and host != "localhost" and "." in host:
        return host.split(".", 1)[0]
    segments = [s for s in parts.path.split("/") if s]
    # Path-style URLs (emulators, IP addresses): the account is the first path segment.
    return segments[0] if segments else None


def account_and_credential(config: BlobAccessConfig) -> tuple[str, Any]:
    """The account URL requests go to and the SDK credential to send with them."""
    from azure.core.credentials import AzureSasCredential

    if config.connection_string:
        settings = parse_connection_string(config.connection_string)
        name = settings.get("accountname")
        url = settings.get("blobendpoint") or (
            f"{settings.get('defaultendpointsprotocol', 'https')}://{name}.blob."
            f"{settings.get('endpointsuffix', 'core.windows.net')}"
        )
        if settings.get("accountkey"):
            credential: Any = {"account_name": name, "account_key": settings["accountkey"]}
        else:
            credential = AzureSasCredential(settings["sharedaccesssignature"].lstrip("?"))
    else:
        url = config.account_url or ""
        if config.sas_token:
            credential = AzureSasCredential(config.sas_token.lstrip("?"))
        elif config.account_key:
            credential = {
                "account_name": config.account_name or _account_from_url(url),
                "account_key": config.account_key,
            }
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
    url = (config.endpoint or url).rstrip("/")
    if config.use_default_credential and not url.startswith("https://"):
        raise ConfigError(
            f"`use_default_credential` sends a bearer token, which the SDK sends over https only; {url} is not "
            "https: use an https `account_url` (or `endpoint`), or another credential"
        )
    return url, credential


def blob_client(config: BlobAccessConfig, blob: str) -> BlobClient:
    """An SDK client of one blob that makes exactly one HTTP request per operation it is asked for: no SDK
    retries (the plugins retry, recording each attempt), and a download that reads `chunk_bytes` per GET."""
    from azure.storage.blob import BlobClient

    url, credential = account_and_credential(config)
    return BlobClient(
        url,
        config.container,
        blob,
        credential=credential,
        retry_total=0,
        retry_to_secondary=False,
        connection_timeout=min(config.timeout_seconds, 20.0),
        read_timeout=config.timeout_seconds,
        max_single_get_size=config.chunk_bytes,
        max_chunk_get_size=config.chunk_bytes,
    )


def blob_url(client: BlobClient) -> str:
    """The blob's URL without any query string (a SAS never leaves this module in a URL)."""
    return str(client.url).split("?", 1)[0]


def blob_location(config: BlobAccessConfig, *, writes: bool) -> list[Location]:
    """The blob plugins' `locations`: the blob, named by option `blob_path`."""
    return [Location(config.uri, writes, "blob_path")]
