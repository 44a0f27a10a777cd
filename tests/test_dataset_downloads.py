"""A real dataset's download through faults: NIH ChestX-ray14's layout (12 tar.gz archives, a label CSV,
split lists) served from 127.0.0.1, fetched by the registry entry's own file list (only checksums swapped
for the fake's), with connections cut, servers failing, checksums wrong and archives malicious."""

from __future__ import annotations

import copy
import hashlib
import io
import tarfile

import pytest
from fake_datasets import make_nih
from http_server import Fault, FileServer

from medprobe.datasets import registry
from medprobe.download import MANIFEST, fetch_dataset, read_manifest
from medprobe.io.archives import UnsafeArchiveError
from medprobe.io.http import ChecksumError, DownloadError
from medprobe.preprocess import preprocess_dataset

DATASET = "nih_chestxray14"
SETTINGS = {"size": 16, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
            "on_error": "fail"}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The fake NIH release on a local server, and the registry entry pinned to the fake's checksums."""
    www = tmp_path / "www"
    fake = make_nih(www)
    entry = copy.deepcopy(registry.get_dataset(DATASET))
    for file in entry["source"]["files"]:
        for algorithm in ("sha256", "md5"):
            if algorithm in file:
                file[algorithm] = fake["files"][file["name"]][algorithm]
    monkeypatch.setitem(registry.DATASETS, DATASET, entry)
    with FileServer(www) as server:
        yield server, fake, tmp_path


def fetch(server, tmp_path, **options):
    return fetch_dataset(DATASET, tmp_path / "raw", {"mirror": server.base_url, "allow_unpinned": True, **options},
                         tmp_path / "downloads")


def test_cut_connections_and_server_errors_are_survived(served):
    server, fake, tmp_path = served
    server.faults["/images_003.tar.gz"] = Fault(cut_after=300, times=2)
    server.faults["/images_007.tar.gz"] = Fault(status=500, times=2)
    fetched = fetch(server, tmp_path)
    ranges = [hit for hit in server.hits("/images_003.tar.gz") if "range" in hit.headers]
    assert len(ranges) == 2 and all(hit.status == 206 for hit in ranges)  # resumed, not restarted
    assert server.count("/images_007.tar.gz") == 3
    manifest = read_manifest(tmp_path / "raw" / MANIFEST)
    assert {f"images/{name}" for name in fake["table"]["Image Index"]} <= set(manifest)
    assert {f["name"] for f in fetched["files"]} == set(fake["files"])
    spec = preprocess_dataset(DATASET, registry.get_dataset(DATASET), tmp_path / "raw", tmp_path / "raw" / MANIFEST,
                              tmp_path / "processed", SETTINGS, registry.resolve_options(DATASET, {}))
    assert sum(c["ok"] for c in spec["counts"].values()) == len(fake["table"])


def test_checksum_mismatch_fails_and_nothing_looks_complete(served):
    server, fake, tmp_path = served
    (server.root / "images_005.tar.gz").write_bytes(b"not what NIH published")
    with pytest.raises(ChecksumError, match="images_005.tar.gz"):
        fetch(server, tmp_path)
    assert not (tmp_path / "raw" / MANIFEST).exists()
    assert not (tmp_path / "downloads" / DATASET / "images_005.tar.gz").exists()
    assert (tmp_path / "downloads" / DATASET / "images_005.tar.gz.corrupt").exists()


def test_persistent_server_error_is_a_clear_failure(served, monkeypatch):
    server, fake, tmp_path = served
    monkeypatch.setattr("medprobe.io.http.time.sleep", lambda seconds: None)
    server.faults["/test_list.txt"] = Fault(status=500, times=99)
    with pytest.raises(DownloadError, match=r"test_list.txt.*500"):
        fetch(server, tmp_path)
    assert server.count("/test_list.txt") == 5
    assert not (tmp_path / "raw" / MANIFEST).exists()


def test_unpinned_files_need_consent(served):
    server, fake, tmp_path = served
    with pytest.raises(ValueError, match="allow_unpinned"):
        fetch(server, tmp_path, allow_unpinned=False)
    assert server.hits() == []  # refused before any request


def test_malicious_archive_writes_nothing_outside(served):
    server, fake, tmp_path = served
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = b"owned"
        member = tarfile.TarInfo("images/../../escaped.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    (server.root / "images_002.tar.gz").write_bytes(buffer.getvalue())
    entry = registry.get_dataset(DATASET)
    for file in entry["source"]["files"]:
        if file["name"] == "images_002.tar.gz":
            file.pop("md5", None)
            file["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    with pytest.raises(UnsafeArchiveError, match=r"images_002.tar.gz.*\.\."):
        fetch(server, tmp_path)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (tmp_path / "raw" / MANIFEST).exists()
