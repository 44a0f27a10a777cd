"""extract_archive: good archives come out byte-identical; malicious ones are refused before anything is written."""

from __future__ import annotations

import hashlib
import io
import random
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from http_server import FileServer

from medprobe.io.archives import UnsafeArchiveError, extract_archive
from medprobe.io.http import download_file

rng = random.Random(0)
FILES = {"README.txt": b"fake dataset\n", "images/case-001.dcm": rng.randbytes(70_000),
         "images/nested/case-002.dcm": rng.randbytes(5_000), "labels.csv": b"id,label\ncase-001,1\n"}


def tar_member(name: str, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def zip_member(name: str, data: bytes = b"", mode: int | None = None) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.create_system, info.external_attr = 3, mode << 16
    return info, data


def write_zip(path: Path, members: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def good_archive(path: Path, kind: str) -> Path:
    if kind == "zip":
        return write_zip(path, [zip_member("images/"), *(zip_member(name, data) for name, data in FILES.items())])
    members = [tar_member("./images", type=tarfile.DIRTYPE, mode=0o755),
               *(tar_member(f"./{name}", data, mode=0o644) for name, data in FILES.items())]
    return write_tar(path, members, {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind])


def tree(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_good_archive_extracts_byte_identically(tmp_path: Path, kind: str):
    archive = good_archive(tmp_path / "dataset.download", kind)  # no telling suffix: detected by content
    dest = tmp_path / "out"
    files = extract_archive(archive, dest)
    assert files == sorted(dest / name for name in FILES)
    assert {path.relative_to(dest).as_posix(): path.read_bytes() for path in files} == FILES
    assert tree(dest) == ["README.txt", "images", "images/case-001.dcm", "images/nested",
                          "images/nested/case-002.dcm", "labels.csv"]  # no staging folder left behind


def test_extracting_again_overwrites_in_place(tmp_path: Path):
    archive = good_archive(tmp_path / "dataset.zip", "zip")
    dest = tmp_path / "out"
    extract_archive(archive, dest)
    (dest / "labels.csv").write_bytes(b"edited")
    extract_archive(archive, dest)
    assert (dest / "labels.csv").read_bytes() == FILES["labels.csv"]


def test_links_inside_the_destination_are_kept(tmp_path: Path):
    archive = write_tar(tmp_path / "links.tar.gz", [
        tar_member("data/a.bin", b"payload", mode=0o644),
        tar_member("data/alias.bin", type=tarfile.SYMTYPE, linkname="a.bin"),
        tar_member("latest", type=tarfile.SYMTYPE, linkname="data"),
        tar_member("copy.bin", type=tarfile.LNKTYPE, linkname="data/a.bin"),
    ])
    dest = tmp_path / "out"
    assert extract_archive(archive, dest) == [dest / "copy.bin", dest / "data" / "a.bin"]
    assert (dest / "data" / "alias.bin").is_symlink() and (dest / "latest").is_symlink()
    assert (dest / "latest" / "alias.bin").read_bytes() == (dest / "copy.bin").read_bytes() == b"payload"


def test_not_an_archive(tmp_path: Path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(rng.randbytes(4096))
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract_archive(junk, tmp_path / "out")


def test_downloaded_archive_end_to_end(tmp_path: Path):
    with FileServer(tmp_path / "www") as server:
        archive = good_archive(server.root / "dataset.tgz", "tar.gz")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        local = download_file(server.url("dataset.tgz"), tmp_path / "raw" / "dataset.tgz", sha256=digest,
                              progress=False)
    files = extract_archive(local, tmp_path / "raw" / "dataset")
    assert {path.name for path in files} == {Path(name).name for name in FILES}


OK = ("ok.txt", b"harmless")  # precedes the bad member in every archive: it must not be written either
MALICIOUS_ZIP = {
    "dotdot": ("../evil", "'..' component"),
    "nested-dotdot": ("a/../../evil", "'..' component"),
    "absolute": ("{abs}", "absolute path"),
    "drive": ("C:/evil", "Windows drive"),
    "backslash": ("..\\evil", "backslash"),
}
MALICIOUS_TAR = {
    "dotdot": ([tar_member("../evil", b"x")], "'..' component"),
    "absolute": ([tar_member("{abs}", b"x")], "absolute path"),
    "symlink-out": ([tar_member("link", type=tarfile.SYMTYPE, linkname="../outside")], "outside the destination"),
    "symlink-absolute": ([tar_member("link", type=tarfile.SYMTYPE, linkname="/etc/passwd")], "absolute"),
    # `a` -> root, so `d/b` -> `../a/..` is the root's parent, though `../a/..` looks like `.` on paper.
    "symlink-chain": ([tar_member("a", type=tarfile.SYMTYPE, linkname="."),
                       tar_member("d/b", type=tarfile.SYMTYPE, linkname="../a/..")], "passes through a symlink"),
    "under-symlink": ([tar_member("sub", type=tarfile.DIRTYPE),
                       tar_member("link", type=tarfile.SYMTYPE, linkname="sub"),
                       tar_member("link/file", b"x")], "under a symlink"),
    "hardlink-out": ([tar_member("hard", type=tarfile.LNKTYPE, linkname="../outside")],
                     "hard link whose target contains a '..' component"),
    "hardlink-absolute": ([tar_member("hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")],
                          "hard link whose target is an absolute path"),
    "hardlink-missing": ([tar_member("hard", type=tarfile.LNKTYPE, linkname="nowhere")], "not an earlier regular file"),
    "char-device": ([tar_member("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)], "character device"),
    "block-device": ([tar_member("sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)], "block device"),
    "fifo": ([tar_member("pipe", type=tarfile.FIFOTYPE)], "FIFO"),
}


def assert_refused(tmp_path: Path, archive: Path, reason: str) -> None:
    """Refused, naming archive and reason; nothing written in dest, its parent, or at the absolute target."""
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError, match=re.escape(reason)) as caught:
        extract_archive(archive, work / "dest")
    assert str(archive) in str(caught.value)
    assert tree(work) == []
    assert not (tmp_path / "abs-evil").exists()


@pytest.mark.parametrize("case", MALICIOUS_ZIP)
def test_malicious_zip_is_refused(tmp_path: Path, case: str):
    name, reason = MALICIOUS_ZIP[case]
    name = name.format(abs=tmp_path / "abs-evil")
    archive = write_zip(tmp_path / "bad.zip", [zip_member(*OK), zip_member(name, b"x")])
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist()[1] == name  # the writer kept the hostile name
    assert_refused(tmp_path, archive, reason)


@pytest.mark.parametrize("kind", ["outside", "inside"])
def test_zip_symlink_is_refused(tmp_path: Path, kind: str):
    target = b"../../outside" if kind == "outside" else b"ok.txt"
    archive = write_zip(tmp_path / "bad.zip", [zip_member(*OK), zip_member("link", target, stat.S_IFLNK | 0o777)])
    assert_refused(tmp_path, archive, "symlink")


def test_zip_special_file_is_refused(tmp_path: Path):
    archive = write_zip(tmp_path / "bad.zip", [zip_member(*OK), zip_member("pipe", b"", stat.S_IFIFO | 0o644)])
    assert_refused(tmp_path, archive, "special file")


@pytest.mark.parametrize("case", MALICIOUS_TAR)
def test_malicious_tar_is_refused(tmp_path: Path, case: str):
    bad, reason = MALICIOUS_TAR[case]
    members = [tar_member(*OK), *((info.replace(name=info.name.format(abs=tmp_path / "abs-evil")), data)
                                  for info, data in bad)]
    archive = write_tar(tmp_path / "bad.tar.gz", members)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[-1] == members[-1][0].name  # the writer kept the hostile name
    assert_refused(tmp_path, archive, reason)
