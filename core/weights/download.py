"""Resumable HTTP(S) downloads into ``<file>.part``, verified before they take the final name.

A download that stops (network loss, Ctrl-C) leaves the ``.part`` file; the next attempt asks the
server for the remaining bytes with a ``Range`` header and starts over only when the server ignores
it. Only a complete file whose size and sha256 match the catalog is renamed into place.

Where the catalog has no checksum (NVIDIA's Audio2Face-3D repositories publish none outside Hugging
Face), a Hugging Face ``/resolve/`` URL is asked for the hash Hugging Face itself keeps: the sha256
of an LFS file (``X-Linked-Etag``, with ``X-Linked-Size``, on the redirect to the CDN) or the git
blob sha1 of a small file kept in git (its ``ETag``). The download is checked against it, so a
corrupt or truncated copy never takes the final name, and the store remembers it for ``verify``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)

BLOCK = 1 << 20
TIMEOUT_S = 30


class DownloadError(TalkbridgeError):
    """A file could not be fetched from any of its sources; the message says why."""


def _hash_file(digest: "hashlib._Hash", path: Path, progress: Callable[[int], None] | None) -> str:
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    return _hash_file(hashlib.sha256(), path, progress)


SHA256 = "sha256"
GIT_BLOB_SHA1 = "git-blob-sha1"
_HEX = {SHA256: re.compile(r"[0-9a-f]{64}"), GIT_BLOB_SHA1: re.compile(r"[0-9a-f]{40}")}


@dataclass(frozen=True)
class PublishedDigest:
    """A hash the file's host publishes for it: ``algorithm`` is ``sha256`` (Hugging Face LFS files)
    or ``git-blob-sha1`` (files kept in the git repository itself); ``size`` when the host says."""

    algorithm: str
    value: str
    size: int | None = None

    def matches(self, path: Path) -> bool:
        return digest_of(path, self.algorithm) == self.value

    def to_json(self) -> list:
        return [self.algorithm, self.value, self.size]

    @classmethod
    def from_json(cls, data: object) -> "PublishedDigest | None":
        if (isinstance(data, list) and len(data) == 3 and data[0] in _HEX and isinstance(data[1], str)
                and _HEX[data[0]].fullmatch(data[1]) and (data[2] is None or isinstance(data[2], int))):
            return cls(data[0], data[1], data[2])
        return None


def digest_of(path: Path, algorithm: str, progress: Callable[[int], None] | None = None) -> str:
    """``sha256`` of the bytes, or git's blob id (sha1 of ``b"blob <size>\\0"`` and the bytes)."""
    if algorithm == SHA256:
        return sha256_of(path, progress)
    if algorithm != GIT_BLOB_SHA1:
        raise ValueError(f"unknown digest algorithm {algorithm!r}")
    return _hash_file(hashlib.sha1(f"blob {path.stat().st_size}\0".encode()), path, progress)


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a 3xx back as is: Hugging Face puts an LFS file's hash on the redirect, not on the CDN's reply."""

    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


def _clean_etag(value: str | None) -> str:
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def _authorised(url: str, method: str = "GET") -> urllib.request.Request:
    request = urllib.request.Request(url, headers={"User-Agent": "talkbridge-models"}, method=method)
    token = os.environ.get("HF_TOKEN", "").strip()
    if token and urllib.parse.urlsplit(url).hostname == "huggingface.co":
        # Gated NVIDIA repositories need the user's token; unredirected, so it never reaches the CDN a redirect names.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    return request


def published_digest(url: str) -> PublishedDigest | None:
    """The hash Hugging Face publishes for a ``.../resolve/<revision>/<file>`` URL (None for other
    URLs, or when the host gives none): one HEAD request, its redirect not followed."""
    if "/resolve/" not in urllib.parse.urlsplit(url).path:
        return None
    opener = urllib.request.build_opener(_KeepRedirects)
    try:
        response = opener.open(_authorised(url, "HEAD"), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if not 300 <= error.code < 400:
            log.debug("no published hash for %s: HTTP %s", url, error.code)
            return None
        response = error
    except (urllib.error.URLError, OSError) as error:
        log.debug("no published hash for %s: %s", url, error)
        return None
    with response:
        headers = response.headers
        linked, linked_size = _clean_etag(headers.get("X-Linked-Etag")), headers.get("X-Linked-Size")
        if _HEX[SHA256].fullmatch(linked):
            return PublishedDigest(SHA256, linked, int(linked_size) if (linked_size or "").isdigit() else None)
        etag, length = _clean_etag(headers.get("ETag")), headers.get("Content-Length")
        if response.status == 200 and _HEX[GIT_BLOB_SHA1].fullmatch(etag):
            return PublishedDigest(GIT_BLOB_SHA1, etag, int(length) if (length or "").isdigit() else None)
    log.debug("no published hash for %s", url)
    return None


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
    request = _authorised(url)
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
) -> PublishedDigest | None:
    """Fetch ``target`` from the first source that works, verify it, then rename it into place.

    Without a catalog ``sha256`` the host's published hash is used where it has one; that hash is
    returned (None when the catalog's was used, or none was published) so the caller can keep it."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in urls:
        published = published_digest(url) if sha256 is None else None
        expected_size = size if size is not None else (published.size if published else None)
        try:
            fetch(url, part, expected_size, progress)
        except (urllib.error.URLError, OSError) as error:
            problems.append(_describe(error, url))
            continue
        got = part.stat().st_size
        if expected_size is not None and got != expected_size:
            problems.append(f"{url}: got {got} bytes, expected {expected_size} (kept {part.name} to resume)")
            continue
        if sha256 is not None and sha256_of(part) != sha256:
            part.unlink()
            problems.append(f"{url}: sha256 mismatch, the download is corrupt (deleted)")
            continue
        if published is not None and not published.matches(part):
            part.unlink()
            problems.append(f"{url}: {published.algorithm} differs from the one the host publishes "
                            f"({published.value[:12]}...): the download is corrupt (deleted)")
            continue
        os.replace(part, target)
        return published
    raise DownloadError(f"could not download {target.name}:\n  " + "\n  ".join(problems))
