"""Safe extraction of downloaded zip and tar archives.

Archives are untrusted input: a member named `../x`, `/etc/x` or `C:\\x`, a link pointing out of the destination,
or a device node would reach outside the dataset folder. So every member is checked before anything is written,
and one bad member refuses the whole archive. Members are extracted into a hidden staging folder inside
`dest_dir` and moved into place only once all of them are out, so an interrupted run never leaves a partial tree
that looks complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PureWindowsPath


class UnsafeArchiveError(ValueError):
    """A member would escape the destination, or is a kind of file a dataset has no business shipping."""

    def __init__(self, archive: str | Path, member: str, reason: str):
        super().__init__(f"refusing to extract {archive}: member {member!r} {reason}")
        self.archive, self.member, self.reason = Path(archive), member, reason


def extract_archive(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Extract a zip or (compressed) tar archive into `dest_dir`; return the regular files written, sorted.

    The format is detected from the content, not the suffix. Tar is tried first: a zip is recognised by a
    trailer that an uncompressed tar ending in a zip member also has.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            _check_tar(archive, tar.getmembers())
            return _extract(dest_dir, lambda staging: _extract_tar(archive, tar, staging))
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf.infolist())
            return _extract(dest_dir, zf.extractall)
    raise ValueError(f"{archive} is neither a zip nor a tar archive")


def _check_zip(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        _check_name(archive, info.filename, is_dir=info.is_dir())
        mode = info.external_attr >> 16 if info.create_system == 3 else 0  # Unix mode bits, if made on Unix
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(archive, info.filename, "is a symlink, which is not supported in zip archives")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(archive, info.filename, f"is a special file (mode {oct(mode)})")


def _check_tar(archive: Path, members: list[tarfile.TarInfo]) -> None:
    symlinks = {_parts(m.name) for m in members if m.issym()}
    files: set[tuple[str, ...]] = set()
    for member in members:
        parts = _check_name(archive, member.name, is_dir=member.isdir())
        if any(parts[:i] in symlinks for i in range(1, len(parts))):
            raise UnsafeArchiveError(archive, member.name, "lies under a symlink member")
        if member.issym():
            _check_symlink(archive, member.name, parts, member.linkname, symlinks)
        elif member.islnk():
            # Hard link targets are relative to the archive root and must name a regular file seen before.
            try:
                target = _check_name(archive, member.linkname, is_dir=False)
            except UnsafeArchiveError as exc:
                raise UnsafeArchiveError(archive, member.name, f"is a hard link whose target {exc.reason}") from None
            if target not in files:
                raise UnsafeArchiveError(archive, member.name,
                                         f"is a hard link to {member.linkname!r}, not an earlier regular file")
        elif member.isreg():
            files.add(parts)
        elif not member.isdir():
            kind = ("a character device" if member.ischr() else "a block device" if member.isblk()
                    else "a FIFO" if member.isfifo() else f"of unsupported tar type {member.type!r}")
            raise UnsafeArchiveError(archive, member.name, f"is {kind}")


def _check_name(archive: Path, name: str, *, is_dir: bool) -> tuple[str, ...]:
    """The member's path components, refusing anything that could land outside the destination."""
    if "\\" in name or "\0" in name:
        raise UnsafeArchiveError(archive, name, "contains a backslash or NUL byte")
    if name.startswith("/"):
        raise UnsafeArchiveError(archive, name, "is an absolute path")
    if PureWindowsPath(name).drive:
        raise UnsafeArchiveError(archive, name, "starts with a Windows drive")
    parts = _parts(name)
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "contains a '..' component")
    if not parts and not is_dir:
        raise UnsafeArchiveError(archive, name, "has an empty path")
    return parts


def _check_symlink(archive: Path, name: str, parts: tuple[str, ...], target: str,
                   symlinks: set[tuple[str, ...]]) -> None:
    """Resolve `target` within the archive; it may not leave the root nor pass through another symlink.

    Without the second rule, `a -> .` plus `d/b -> ../a/..` resolves outside although it looks inside on paper.
    """
    if not target or target.startswith("/") or "\\" in target or PureWindowsPath(target).drive:
        raise UnsafeArchiveError(archive, name, f"is a symlink to the absolute or empty path {target!r}")
    path = list(parts[:-1])
    for component in target.split("/"):
        if tuple(path) in symlinks:
            raise UnsafeArchiveError(archive, name, f"is a symlink to {target!r}, which passes through a symlink")
        if component == "..":
            if not path:
                raise UnsafeArchiveError(archive, name, f"is a symlink to {target!r}, outside the destination")
            path.pop()
        elif component not in ("", "."):
            path.append(component)


def _parts(name: str) -> tuple[str, ...]:
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _extract_tar(archive: Path, tar: tarfile.TarFile, staging: Path) -> None:
    """The "data" filter is a second line of defence behind our own checks."""
    try:
        tar.extractall(staging, filter="data")
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(archive, exc.tarinfo.name, str(exc)) from exc


def _extract(dest_dir: Path, extract) -> list[Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=dest_dir))
    try:
        extract(staging)
        return sorted(_move_tree(staging, dest_dir))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_tree(src: Path, dst: Path) -> list[Path]:
    """Move `src`'s content into `dst`, merging folders; return the regular files moved."""
    files = []
    with os.scandir(src) as entries:
        for entry in entries:
            target = dst / entry.name
            if entry.is_dir(follow_symlinks=False):
                target.mkdir(exist_ok=True)
                files += _move_tree(Path(entry.path), target)
            else:
                if entry.is_file(follow_symlinks=False):
                    files.append(target)
                os.replace(entry.path, target)
    return files
