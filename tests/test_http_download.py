"""download_file against a real local HTTP server: resuming, retries, checksum failures, no leaked tokens."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import random
import socket
import time
from pathlib import Path

import pytest
from http_server import Fault, FileServer

from medprobe.io import http
from medprobe.io.http import ChecksumError, DownloadError, download_file, file_digest

PAYLOAD = random.Random(0).randbytes(300_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
PATH = "/data/blob.bin"
FAST = {"retries": 3, "backoff": 0.01, "progress": False}


@pytest.fixture
def server(tmp_path: Path):
    with FileServer(tmp_path / "www") as server:
        (server.root / "data").mkdir()
        (server.root / "data" / "blob.bin").write_bytes(PAYLOAD)
        yield server


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads" / "blob.bin"


def siblings(dest: Path) -> list[str]:
    """Everything in the download folder: the file, and the lock that makes concurrent fetches take turns."""
    return sorted(path.name for path in dest.parent.iterdir())


@pytest.mark.parametrize("sums", [{"sha256": SHA256}, {"md5": MD5}, {"sha256": SHA256.upper(), "md5": MD5}],
                         ids=["sha256", "md5", "both"])
def test_download_verifies_and_a_verified_file_is_not_fetched_again(server, dest, sums):
    assert download_file(server.url(PATH), dest, **sums, **FAST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert siblings(dest) == ["blob.bin", "blob.bin.lock"]
    [hit] = server.hits(PATH)
    assert hit.status == 200 and "range" not in hit.headers
    download_file(server.url(PATH), dest, **sums, **FAST)
    assert server.count(PATH) == 1


def test_progress_bar_and_no_checksum(server, dest):
    download_file(server.url(PATH), dest, progress=True)
    assert dest.read_bytes() == PAYLOAD


def test_file_digest_matches_hashlib(tmp_path: Path):
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)
    assert file_digest(path, "sha256") == SHA256
    assert file_digest(path, "md5") == MD5
    assert file_digest(path, "sha1") == hashlib.sha1(PAYLOAD).hexdigest()


def test_connection_cut_mid_file_resumes_with_range(server, dest):
    server.faults[PATH] = Fault(cut_after=100_000)
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    first, second = server.hits(PATH)
    assert (first.status, second.status) == (200, 206)
    assert second.headers["range"] == "bytes=100000-"
    assert dest.read_bytes() == PAYLOAD
    assert siblings(dest) == ["blob.bin", "blob.bin.lock"]


def test_every_retry_resumes_from_the_bytes_on_disk(server, dest):
    server.faults[PATH] = Fault(cut_after=1000, times=3)
    download_file(server.url(PATH), dest, sha256=SHA256, retries=4, backoff=0.01, progress=False)
    assert [hit.headers.get("range") for hit in server.hits(PATH)] == [None, "bytes=1000-", "bytes=2000-",
                                                                       "bytes=3000-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, dest):
    server.faults[PATH] = Fault(cut_after=100_000, ignore_range=True)
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    first, second = server.hits(PATH)
    assert second.headers["range"] == "bytes=100000-" and second.status == 200
    assert dest.read_bytes() == PAYLOAD  # truncated, not appended


def test_leftover_part_from_an_earlier_run_is_resumed(server, dest):
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD[:1234])
    download_file(server.url(PATH), dest, md5=MD5, **FAST)
    [hit] = server.hits(PATH)
    assert hit.headers["range"] == "bytes=1234-" and hit.status == 206
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_is_verified_without_a_body(server, dest):
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD)
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert [hit.status for hit in server.hits(PATH)] == [416]
    assert dest.read_bytes() == PAYLOAD


def test_part_longer_than_the_file_starts_over(server, dest):
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").write_bytes(PAYLOAD + b"stale tail")
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert [hit.status for hit in server.hits(PATH)] == [416, 200]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_moves_the_file_aside(server, dest):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        download_file(server.url(PATH), dest, sha256=wrong, **FAST)
    corrupt = dest.with_name("blob.bin.corrupt")
    message = str(caught.value)
    for expected in (server.url(PATH), wrong, SHA256, str(corrupt), "delete it and retry", "pinned checksum"):
        assert expected in message
    assert siblings(dest) == ["blob.bin.corrupt", "blob.bin.lock"]
    assert corrupt.read_bytes() == PAYLOAD


def test_existing_file_that_fails_verification_is_fetched_again(server, dest):
    dest.parent.mkdir()
    dest.write_bytes(b"truncated garbage")
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert dest.with_name("blob.bin.corrupt").read_bytes() == b"truncated garbage"
    assert server.count(PATH) == 1


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_transient_status_is_retried_then_gives_up(server, dest, status):
    server.faults[PATH] = Fault(status=status, times=99)
    with pytest.raises(DownloadError) as caught:
        download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert server.count(PATH) == 3
    message = str(caught.value)
    assert server.url(PATH) in message and f"HTTP {status}" in message and "3 attempts" in message
    assert not dest.exists()


def test_transient_status_then_success(server, dest):
    server.faults[PATH] = Fault(status=500, times=2)
    download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert [hit.status for hit in server.hits(PATH)] == [500, 500, 200]


@pytest.mark.parametrize("status", [404, 403, 401])
def test_client_error_fails_at_once(server, dest, status):
    server.faults[PATH] = Fault(status=status)
    with pytest.raises(DownloadError, match=f"HTTP {status}.*1 attempt\\)"):
        download_file(server.url(PATH), dest, sha256=SHA256, **FAST)
    assert server.count(PATH) == 1
    assert siblings(dest) == ["blob.bin.lock"]  # no half file left


def test_backoff_doubles(server, dest, monkeypatch):
    delays = []
    monkeypatch.setattr(http.time, "sleep", delays.append)
    server.faults[PATH] = Fault(status=500, times=99)
    with pytest.raises(DownloadError):
        download_file(server.url(PATH), dest, retries=4, backoff=1.5, progress=False)
    assert delays == [1.5, 3.0, 6.0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fault", ["404", "500", "refused"])
def test_tokens_never_reach_messages_or_logs(server, dest, caplog, fault):
    caplog.set_level(logging.DEBUG, logger="medprobe")
    base = f"http://127.0.0.1:{free_port()}" if fault == "refused" else server.base_url
    if fault != "refused":
        server.faults[PATH] = Fault(status=int(fault), times=99)
    url = f"{base}{PATH}?token=QUERYSECRET&x=1"
    with pytest.raises(DownloadError) as caught:
        download_file(url, dest, retries=2, backoff=0.01, progress=False,
                      headers={"Authorization": "Bearer HEADERSECRET"})
    text = str(caught.value) + caplog.text
    assert "SECRET" not in text
    assert f"{base}{PATH}?token=REDACTED&x=REDACTED" in str(caught.value)
    if fault != "refused":
        assert server.hits(PATH)[0].headers["authorization"] == "Bearer HEADERSECRET"  # it was sent, though


def _opened(pid: int, path: Path) -> bool:
    """Whether process pid holds path open (Linux /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(Path(os.readlink(fd)) == path for fd in fds.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_second_process_waits_for_the_first_and_takes_its_verified_file(server, dest):
    """Two jobs fetching one file (AMOS22's CT and MRI entries share a zip): the second waits on the lock, then
    finds the file the first verified, and never touches the network or the first's `.part`."""
    context = multiprocessing.get_context("fork")
    dest.parent.mkdir(parents=True)
    with http._exclusive(dest):  # this process plays the first job, mid-download
        second = context.Process(target=download_file, args=(server.url(PATH), dest), kwargs={"sha256": SHA256})
        second.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _opened(second.pid, dest.with_name("blob.bin.lock")) \
                and not server.count(PATH):
            time.sleep(0.05)
        time.sleep(0.2)
        assert server.count(PATH) == 0 and second.is_alive()  # blocked on the lock, not downloading
        dest.write_bytes(PAYLOAD)  # the first job's verified file lands
    second.join(20)
    assert second.exitcode == 0 and server.count(PATH) == 0
    assert siblings(dest) == ["blob.bin", "blob.bin.lock"]
