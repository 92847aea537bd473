"""Headless Chromium from the system's packages, driven by its command line (no driver): the DOM after the
page's script ran (`--dump-dom`), and a screenshot; and a PNG reader for the screenshot's pixels."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    """The browser's path; skips the test where there is none (CI installs it: .ci/run)."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser here ({', '.join(_NAMES)}); install one: apt-get install -y chromium")


def _run(home: Path, url: str, *args: str) -> str:
    """Chromium on `url` with its profile, cache and crash dumps under `home` (the test's tmp dir)."""
    home.mkdir(parents=True, exist_ok=True)
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # containers (and root) have no user namespaces; the page is our own file
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={home / 'profile'}",
        f"--crash-dumps-dir={home / 'crashes'}",
        "--virtual-time-budget=5000",
        *args,
        url,
    ]
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=home)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(home: Path, url: str) -> str:
    return _run(home, url, "--dump-dom")


def screenshot(home: Path, url: str, target: Path, width: int, height: int) -> None:
    _run(home, url, f"--screenshot={target}", f"--window-size={width},{height}", "--hide-scrollbars")


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered scanlines of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {depth=} {colour=}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        _unfilter(kind, line, previous, bpp)
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 0xFF
        else:
            corner = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            predictor = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            line[i] = (line[i] + predictor) & 0xFF
