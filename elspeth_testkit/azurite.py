"""Azurite, Microsoft's Blob Storage emulator, on 127.0.0.1 for tests: `Azurite` runs one, the session
fixture `azurite` shares one across a test session (skipping, with the reason, where it is not installed).

The emulator is the npm package pinned in the repository's package.json (`npm ci` installs it into
./node_modules). It is found at $ELSPETH_AZURITE_BIN, else in node_modules/.bin of the working directory,
its parents or the repository, else on PATH. It runs with `--skipApiVersionCheck` (the SDK may speak a newer
API version than the emulator knows) and keeps its data in memory.

    with Azurite() as azurite:
        BlobServiceClient.from_connection_string(azurite.connection_string)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The emulator's well-known account and key, published by Microsoft: not a secret."""

BINARY = "azurite-blob"
ENV_BINARY = "ELSPETH_AZURITE_BIN"
_REPO = Path(__file__).resolve().parent.parent
_INSTALL_HINT = (
    f"run `npm ci` in the repository root ({_REPO}) to install the azurite pinned in package.json (needs Node.js "
    f"20+), or set {ENV_BINARY} to an azurite-blob executable"
)


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed here, or would not start; the message says what to do."""


def find_binary() -> str:
    """The azurite-blob executable to run, or AzuriteUnavailable naming `npm ci`."""
    configured = os.environ.get(ENV_BINARY)
    if configured:
        if not Path(configured).is_file():
            raise AzuriteUnavailable(f"{ENV_BINARY}={configured} is not a file; {_INSTALL_HINT}")
        return configured
    for base in (Path.cwd(), *Path.cwd().parents, _REPO):
        candidate = base / "node_modules" / ".bin" / BINARY
        if candidate.is_file():
            return str(candidate)
    on_path = shutil.which(BINARY)
    if on_path:
        return on_path
    raise AzuriteUnavailable(f"the Azurite blob emulator ({BINARY}) is not installed; {_INSTALL_HINT}")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Azurite:
    """One Azurite blob service on `host` and a free port (or `port`). In memory unless `in_memory=False`,
    then in a temporary directory. `start()` returns once the port answers; `stop()` kills it and removes
    its directory. A context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        in_memory: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.binary = binary
        self.in_memory = in_memory
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    # ------------------------------------------------------------ what clients need

    @property
    def account_name(self) -> str:
        return ACCOUNT_NAME

    @property
    def account_key(self) -> str:
        return ACCOUNT_KEY

    @property
    def url(self) -> str:
        """http://HOST:PORT, without the account: the upstream to put a proxy in front of."""
        return f"http://{self.host}:{self.port}"

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint (path-style, as emulators are addressed)."""
        return f"{self.url}/{ACCOUNT_NAME}"

    @property
    def account_url(self) -> str:
        return self.blob_endpoint

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Azurite:
        if self.process is not None:
            raise RuntimeError("this Azurite is already started")
        binary = self.binary or find_binary()
        last_error = ""
        for _ in range(3):  # a free port can be taken between finding it and Azurite binding it
            self.port = self.requested_port or _free_port(self.host)
            self.workdir = Path(tempfile.mkdtemp(prefix="elspeth-azurite-"))
            command = [
                binary,
                "--blobHost",
                self.host,
                "--blobPort",
                str(self.port),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ]
            command += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.workdir / "data")]
            log = open(self.workdir / "azurite.log", "wb")  # noqa: SIM115 (the process owns it until stop())
            try:
                self.process = subprocess.Popen(
                    command,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._cleanup()
                raise AzuriteUnavailable(f"could not run {binary}: {exc}; {_INSTALL_HINT}") from exc
            finally:
                log.close()  # the process has its own copy
            if self._wait_ready():
                return self
            last_error = self._log_tail()
            self.stop()
            if self.requested_port or "EADDRINUSE" not in last_error:
                break
        raise AzuriteUnavailable(f"Azurite ({binary}) did not start on {self.host}: {last_error or 'no output'}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / "azurite.log").read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # Its own session: the group is this Azurite and whatever it started, nothing else.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite for the test session; the test is skipped, saying how to install it, where it cannot
    be started."""
    try:
        server = Azurite().start()
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite is not available: {exc}")
    try:
        yield server
    finally:
        server.stop()
