"""What the file sources share: opening the input, and spotting and showing bytes the encoding rejects."""

from __future__ import annotations

import codecs
import re
from typing import TextIO

from elspeth.errors import ConfigError

# Undecodable bytes come through `surrogateescape` as lone surrogates, which a strict decode never yields.
UNDECODABLE = re.compile("[\ud800-\udfff]")


def open_text(path: str, encoding: str, *, kind: str, newline: str) -> TextIO:
    """Open `path` for streaming; bad bytes are kept (as surrogates) so one bad record cannot stop the read.
    A UTF-8 byte-order mark is dropped: it is never data."""
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        return open(path, encoding=encoding, errors="surrogateescape", newline=newline)
    except FileNotFoundError:
        raise ConfigError(f"{kind}: {path} does not exist; set the `path` option to an existing file") from None
    except IsADirectoryError:
        raise ConfigError(f"{kind}: {path} is a directory; set the `path` option to a file") from None


def show_undecodable(text: str, encoding: str) -> str:
    """`text` with each byte the encoding rejected written as \\xNN, so it can be stored as JSON."""
    return text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")
