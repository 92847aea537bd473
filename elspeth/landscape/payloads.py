"""The content-addressed payload store: large call bodies live here, the Landscape holds their hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from elspeth.errors import LandscapeError


class FilePayloadStore:
    """Files named by the sha256 of their bytes, two-level fan-out. Writes are atomic (temp file, fsync,
    rename), so a crash never leaves a half-written payload under a valid name; reads verify the hash."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, ref: str) -> Path:
        if len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
            raise LandscapeError(f"{ref!r} is not a payload reference (a sha256 hex digest)")
        return self.root / ref[:2] / ref[2:]

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LandscapeError(f"payload {ref} is missing from {self.root}") from None
        if hashlib.sha256(data).hexdigest() != ref:
            raise LandscapeError(f"payload {ref} in {self.root} is corrupt: its bytes no longer hash to its name")
        return data

    def exists(self, ref: str) -> bool:
        return self._path(ref).exists()

    def remove(self, ref: str) -> None:
        """Delete a payload (retention purges bodies no unpurged run refers to); gone already is fine."""
        self._path(ref).unlink(missing_ok=True)


def payload_store(url: str, configured: str | Path | None) -> FilePayloadStore:
    """The payload store of the Landscape at `url`, in `payload_dir(url, configured)`."""
    return FilePayloadStore(payload_dir(url, configured))


def payload_dir(url: str, configured: str | Path | None) -> Path:
    """Where a Landscape's payload files live: the configured directory, else `payloads` beside a SQLite
    file, else .elspeth/payloads in the current directory."""
    if configured:
        return Path(configured)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).resolve().parent / "payloads"
    return Path.cwd() / ".elspeth" / "payloads"
