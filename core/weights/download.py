"""Resumable HTTP(S) downloads into ``<file>.part``, verified before they take the final name.

A download that stops (network loss, Ctrl-C) leaves the ``.part`` file; the next attempt asks the
server for the remaining bytes with a ``Range`` header and starts over only when the server ignores
it. Only a complete file whose size and sha256 match the catalog is renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)

BLOCK = 1 << 20
TIMEOUT_S = 30


class DownloadError(TalkbridgeError):
    """A file could not be fetched from any of its sources; the message says why."""


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def _describe(error: Exception, url: str) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"{url}: HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.gaierror):
        return f"{url}: cannot resolve the host (no network connection?)"
    if isinstance(reason, (ConnectionRefusedError, TimeoutError, socket.timeout)):
        return f"{url}: {reason.__class__.__name__} (no network connection, or the server is down)"
    return f"{url}: {reason}"


def fetch(
    url: str,
    part: Path,
    expected_size: int | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Append the rest of ``url`` to ``part`` (created if missing). Raises on network errors."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have > expected_size:
            part.unlink()
            have = 0
        else:
            return
    request = urllib.request.Request(url, headers={"User-Agent": "talkbridge-models"})
    token = os.environ.get("HF_TOKEN", "").strip()
    if token and urllib.parse.urlsplit(url).hostname == "huggingface.co":
        # Gated NVIDIA repositories need the user's token; unredirected, so it never reaches the CDN a redirect names.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("server ignored the resume request for %s; starting over", url)
            have = 0
        total = expected_size
        length = response.headers.get("Content-Length")
        if total is None and length is not None:
            total = have + int(length)
        if progress:
            progress(have, total)
        with open(part, "ab" if resumed else "wb") as handle:
            while block := response.read(BLOCK):
                handle.write(block)
                if progress:
                    progress(len(block), None)
            handle.flush()
            os.fsync(handle.fileno())


def download_verified(
    urls: tuple[str, ...],
    target: Path,
    size: int | None,
    sha256: str | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch ``target`` from the first source that works, verify it, then rename it into place."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in urls:
        try:
            fetch(url, part, size, progress)
        except (urllib.error.URLError, OSError) as error:
            problems.append(_describe(error, url))
            continue
        got = part.stat().st_size
        if size is not None and got != size:
            problems.append(f"{url}: got {got} bytes, expected {size} (kept {part.name} to resume)")
            continue
        if sha256 is not None and sha256_of(part) != sha256:
            part.unlink()
            problems.append(f"{url}: sha256 mismatch, the download is corrupt (deleted)")
            continue
        os.replace(part, target)
        return target
    raise DownloadError(f"could not download {target.name}:\n  " + "\n  ".join(problems))
