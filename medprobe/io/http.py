"""Resumable, verified HTTP(S) downloads.

We use our own code rather than pooch because pooch cannot resume an interrupted download with a Range request,
and datasets here run to tens of gigabytes. Bytes stream into `<dest>.part`, which every retry (and every later
run) resumes from; only once the checksum matches is it renamed to `dest`, so a file at `dest` is always verified.
Header values (they may carry tokens) never appear in messages or logs, and URL query values and passwords are
redacted.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from medprobe.hashing import CHUNK, sha256_file

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
RETRY_STATUS = frozenset({408, 429})
# Refused or reset connections and timeouts (requests), and a body cut short while streaming (urllib3).
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
             urllib3.exceptions.HTTPError)
CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)")


class DownloadError(RuntimeError):
    """The file could not be fetched; the message names the URL (redacted), last status and attempts."""


class ChecksumError(DownloadError):
    """The fetched bytes do not match the pinned checksum; the file was moved to `<dest>.corrupt`."""


class _Retry(Exception):
    """A failure worth another attempt; the message is the reason to report."""


class _Fatal(Exception):
    """A failure that retrying cannot fix (e.g. 404); the message is the reason to report."""


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file by any hashlib algorithm, read in chunks so large archives never sit in memory."""
    if algorithm == "sha256":
        return sha256_file(path)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, *, sha256: str | None = None, md5: str | None = None,
                  retries: int = 5, backoff: float = 1.0, timeout: float = 30.0,
                  headers: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Fetch `url` to `dest`, verify it against the given checksums, and return `dest`.

    An existing `dest` that verifies is returned without touching the network; one that does not is moved to
    `<dest>.corrupt` and fetched again. `retries` is the total number of attempts: connection errors, bodies cut
    short, 5xx, 408 and 429 are retried after `backoff * 2**attempt` seconds (capped), other 4xx fail at once.
    Without checksums the file is accepted as delivered; the caller records its hash.
    """
    dest = Path(dest)
    expected = {name: value.lower() for name, value in (("sha256", sha256), ("md5", md5)) if value}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):
        if dest.exists():
            if not _mismatches(dest, expected):
                return dest
            log.warning("%s does not match its checksum; moved to %s, downloading again", dest,
                        _set_aside(dest, dest))
        part = dest.with_name(dest.name + ".part")
        _fetch(url, part, retries=retries, backoff=backoff, timeout=timeout, headers=headers or {},
               progress=progress)
        if bad := _mismatches(part, expected):
            corrupt = _set_aside(part, dest)
            found = "; ".join(f"expected {name} {want}, got {got}" for name, want, got in bad)
            raise ChecksumError(f"checksum mismatch for {_redact(url)}: {found}. The corrupt file was moved to "
                                f"{corrupt}; delete it and retry, or check the pinned checksum.")
        os.replace(part, dest)
    return dest


@contextmanager
def _exclusive(dest: Path):
    """Hold `<dest>.lock`: two jobs fetching one file (two entries over one archive) take turns, and the second
    finds the first's verified file instead of appending to the same `.part`."""
    with open(dest.with_name(dest.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process downloading %s", dest)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fetch(url: str, part: Path, *, retries: int, backoff: float, timeout: float, headers: dict[str, str],
           progress: bool) -> None:
    last, attempt = "no attempt made", 0
    with requests.Session() as session:
        for attempt in range(1, retries + 1):
            try:
                _attempt(session, url, part, timeout=timeout, headers=headers, progress=progress)
                return
            except _Fatal as exc:
                last = str(exc)
                break
            except _Retry as exc:
                last = str(exc)
            except TRANSIENT as exc:
                last = f"{type(exc).__name__}: {exc}"
            log.warning("download of %s failed (attempt %d of %d): %s", _redact(url), attempt, retries, _redact(last))
            if attempt < retries:
                time.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF))
    # No `from`: a chained requests exception would print the unredacted URL.
    raise DownloadError(f"could not download {_redact(url)}: {_redact(last)} "
                        f"(gave up after {attempt} attempt{'s' if attempt != 1 else ''})") from None


def _attempt(session: requests.Session, url: str, part: Path, *, timeout: float, headers: dict[str, str],
             progress: bool) -> None:
    """One request, appending to `part` from where it ends; raises _Retry or _Fatal unless `part` is complete."""
    offset = part.stat().st_size if part.exists() else 0
    # Identity encoding: the checksum and the Range offsets are both about the bytes as stored on the server.
    request_headers = {**headers, "Accept-Encoding": "identity"}
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=request_headers, stream=True, timeout=timeout) as response:
        code = response.status_code
        status = f"HTTP {code} {response.reason}"
        if code >= 500 or code in RETRY_STATUS:
            raise _Retry(status)
        if code == 416 and offset:
            _, total = _content_range(response)
            if total == offset:  # the .part already holds the whole file
                return
            part.unlink()
            raise _Retry(f"{status} resuming from byte {offset} of {total}; restarting from zero")
        if code == 206:
            start, total = _content_range(response)
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"{status} starts at byte {start}, not {offset}; restarting from zero")
            if total is None and "Content-Length" in response.headers:
                total = offset + int(response.headers["Content-Length"])
            mode = "ab"
        elif code == 200:  # a full body, also when the server ignored our Range: start over
            offset, mode = 0, "wb"
            total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
        else:
            raise _Fatal(status)
        with open(part, mode) as handle, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=part.name.removesuffix(".part"),
                                              disable=not progress) as bar:
            for block in response.raw.stream(CHUNK, decode_content=False):
                handle.write(block)
                bar.update(len(block))
            handle.flush()
            os.fsync(handle.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"incomplete read: {size} of {total} bytes")


def _content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) from Content-Range; None where absent or `*`."""
    match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (None if total == "*" else int(total))


def _mismatches(path: Path, expected: dict[str, str]) -> list[tuple[str, str, str]]:
    """(algorithm, expected, actual) for each checksum that does not match."""
    actual = {name: file_digest(path, name) for name in expected}
    return [(name, want, actual[name]) for name, want in expected.items() if actual[name] != want]


def _set_aside(path: Path, dest: Path) -> Path:
    corrupt = dest.with_name(dest.name + ".corrupt")
    os.replace(path, corrupt)
    return corrupt


def _redact(text: str) -> str:
    """Blank out URL query values and passwords, which often carry access tokens."""
    text = re.sub(r"([?&][^=&#\s]*=)[^&#\s'\"]*", r"\1REDACTED", text)
    return re.sub(r"(//[^/@\s:]*:)[^/@\s]*@", r"\1REDACTED@", text)
