"""Ed25519 keys in PEM files, and the signature of an export.

An export is signed in one pass and in constant memory: the signature is Ed25519 (RFC 8032, from
`cryptography`) over the 32-byte SHA-256 digest of every byte before the signature line. `openssl pkeyutl
-verify -rawin` checks the same thing (docs/evidence.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from elspeth.errors import KeyFileError

PASSPHRASE_ENV = "ELSPETH_KEY_PASSPHRASE"
"""Where the passphrase of an encrypted private key is read from."""
_MAKE_ONE = "make a key pair with 'elspeth keygen KEY.pem' (or: openssl genpkey -algorithm ed25519 -out KEY.pem)"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{what} {path}: no such file; {_MAKE_ONE}") from None
    except OSError as exc:
        raise KeyFileError(f"{what} {path} cannot be read: {exc.strerror}; fix the path or its permissions") from None


def load_private_key(path: str) -> Ed25519PrivateKey:
    data = _read(path, "private key")
    if b"PUBLIC KEY" in data:
        raise KeyFileError(f"{path} is a public key; signing needs the private key it was made with")
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode() if passphrase else None)
    except TypeError:
        raise KeyFileError(f"private key {path} is encrypted; put its passphrase in ${PASSPHRASE_ENV}") from None
    except ValueError:
        why = "the passphrase in $" + PASSPHRASE_ENV + " is wrong, or " if passphrase else ""
        raise KeyFileError(f"private key {path}: {why}it is not a PEM private key; {_MAKE_ONE}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"private key {path} is {_kind(key)}, not Ed25519; {_MAKE_ONE}")
    return key


def load_public_key(path: str) -> Ed25519PublicKey:
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{path} is a private key; verify with the public key (elspeth keygen wrote it beside the private one, "
            "as .pub.pem; or: openssl pkey -in KEY.pem -pubout -out KEY.pub.pem)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"public key {path} is not a PEM public key; {_MAKE_ONE}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key {path} is {_kind(key)}, not Ed25519; exports are signed with Ed25519 keys")
    return key


def _kind(key: object) -> str:
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")
    return f"an {name} key" if name[:1] in "AEIOR" else f"a {name} key"


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: names the key in messages and in the signature line."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(key: Ed25519PrivateKey, digest: bytes) -> str:
    """Base64 of the Ed25519 signature of `digest` (the SHA-256 of the signed bytes)."""
    return base64.b64encode(key.sign(digest)).decode("ascii")


def signature_holds(key: Ed25519PublicKey, digest: bytes, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def write_key_pair(private_path: Path) -> Path:
    """A new Ed25519 key: the private key at `private_path` (PKCS#8 PEM, mode 0600, refused if it exists) and
    the public key beside it as NAME.pub.pem. Returns the public key's path."""
    public_path = private_path.with_name(private_path.name.removesuffix(".pem") + ".pub.pem")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; choose another name, or move it away first")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        public_path.write_bytes(public)
    except OSError as exc:
        raise KeyFileError(f"cannot write the key to {private_path}: {exc.strerror}") from None
    return public_path
