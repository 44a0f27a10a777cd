"""Download stage: obtain a dataset's raw files and write a manifest of every file's sha256.

Three source kinds, picked by the registry entry: "generator" (offline demo data written by a
function), "http" (files with pinned checksums, downloaded resumably into a shared cache under
`downloads_dir`, then placed or safely extracted into the dataset folder) and "local" (a folder
the user points to with the dataset option `path`; its layout is checked by the adapter and its
files are hashed in place, never copied). The manifest is written last and atomically, so its
presence means the folder is complete.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
from pathlib import Path

from tqdm import tqdm

from medprobe.atomic import write_json, write_text
from medprobe.datasets.registry import dataset_entry, resolve_options
from medprobe.hashing import sha256_file
from medprobe.registry import resolve

MANIFEST = "manifest.tsv"
SOURCE = "source.json"
log = logging.getLogger(__name__)


def write_manifest(root: str | Path, manifest: str | Path | None = None,
                   exclude: tuple[str, ...] = (MANIFEST, SOURCE)) -> Path:
    """sha256 of every file under `root`, in path order; written to `manifest` (default root/MANIFEST)."""
    root = Path(root)
    manifest = Path(manifest) if manifest else root / MANIFEST
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in exclude)
    rows = ["path\tbytes\tsha256"]
    for path in tqdm(files, desc=f"hashing {root.name}", unit="file", disable=len(files) < 1000):
        rows.append(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\t{sha256_file(path)}")
    write_text(manifest, "\n".join(rows) + "\n")
    return manifest


def read_manifest(path: str | Path) -> dict[str, str]:
    """Relative path -> sha256."""
    lines = Path(path).read_text().splitlines()[1:]
    return {rel: digest for rel, _, digest in (line.split("\t") for line in lines)}


def dataset_root(raw_dir: str | Path) -> Path:
    """Where a dataset's raw files are: its raw folder, or the local folder it points to."""
    raw_dir = Path(raw_dir)
    source = raw_dir / SOURCE
    if source.exists():
        return Path(json.loads(source.read_text())["root"])
    return raw_dir


def _fresh(raw_dir: Path) -> None:
    # A folder without a manifest is an interrupted earlier attempt: start it over.
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)


def selected_files(entry: dict, options: dict) -> list[dict]:
    """The entry's files whose `when` conditions match the dataset options (e.g. MedMNIST's size)."""
    return [f for f in entry["source"]["files"]
            if all(options.get(key) == value for key, value in f.get("when", {}).items())]


def file_url(file: dict, options: dict) -> str:
    """The pinned URL, or the same file name under the dataset option `mirror` (tests, local mirrors)."""
    mirror = options.get("mirror")
    return f"{mirror.rstrip('/')}/{file['name']}" if mirror else file["url"]


def fetch_generated(entry: dict, raw_dir: Path, options: dict, downloads_dir: Path) -> dict:
    _fresh(raw_dir)
    generator_options = {k: options[k] for k in entry["source"].get("options", ()) if k in options}
    resolve(entry["source"]["function"])(raw_dir, **generator_options)
    write_manifest(raw_dir)
    return {"kind": "generator", "function": entry["source"]["function"]}


def files_to_fetch(entry: dict, raw_dir: Path, options: dict, files: list[dict]) -> list[dict]:
    """The non-index files a run needs: those the adapter's select_files names from the index files already in
    raw_dir (e.g. a capped CAMELYON run), or all of them when the adapter has no select_files."""
    rest = [f for f in files if not f.get("index")]
    adapter = importlib.import_module(entry["adapter"])
    if not hasattr(adapter, "select_files"):
        return rest
    wanted = set(adapter.select_files(raw_dir, entry, options))
    unknown = sorted(wanted - {f["name"] for f in rest})
    if unknown:
        raise ValueError(f"{entry['adapter']}.select_files named files the entry does not list: {unknown[:5]}")
    return [f for f in rest if f["name"] in wanted]


def fetch_http(entry: dict, raw_dir: Path, options: dict, downloads_dir: Path) -> dict:
    files = selected_files(entry, options)
    unpinned = [f["name"] for f in files if not (f.get("sha256") or f.get("md5"))]
    if unpinned and not options.get("allow_unpinned"):
        listed = ", ".join(unpinned[:5]) + (f" and {len(unpinned) - 5} more" if len(unpinned) > 5 else "")
        raise ValueError(
            f"the publisher gives no checksum for {listed}, so medprobe cannot verify them. To download them "
            "anyway, set the dataset option `allow_unpinned: true`: their sha256 is then recorded in the "
            "download's provenance record, and you can pin it in the registry entry"
        )
    _fresh(raw_dir)
    downloads_dir.mkdir(parents=True, exist_ok=True)
    # Index files (label tables) come first: an adapter's select_files may read them to choose the other files.
    fetched = [_fetch_file(f, raw_dir, options, downloads_dir) for f in files if f.get("index")]
    fetched += [_fetch_file(f, raw_dir, options, downloads_dir)
                for f in files_to_fetch(entry, raw_dir, options, files)]
    write_manifest(raw_dir)
    return {"kind": "http", "files": fetched}


def _fetch_file(file: dict, raw_dir: Path, options: dict, downloads_dir: Path) -> dict:
    from medprobe.io.archives import extract_archive
    from medprobe.io.http import download_file

    url = file_url(file, options)
    archive = download_file(url, downloads_dir / file["name"], sha256=file.get("sha256"), md5=file.get("md5"))
    if file.get("extract"):
        target = raw_dir / file.get("into", ".")
        target.mkdir(parents=True, exist_ok=True)
        extract_archive(archive, target)
    else:
        placed = raw_dir / file.get("into", ".") / file["name"]
        placed.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(archive, placed)
    return {"name": file["name"], "url": url, "sha256": sha256_file(archive),
            **({"md5": file["md5"]} if file.get("md5") else {})}


def fetch_local(entry: dict, raw_dir: Path, options: dict, downloads_dir: Path) -> dict:
    adapter = importlib.import_module(entry["adapter"])
    if not options.get("path"):
        raise ValueError(f"{entry['title']} is not openly downloadable (access: {entry['access']}): set the "
                         f"dataset option `path` to your local copy. Expected layout:\n{entry['source']['layout']}")
    root = Path(options["path"]).expanduser().resolve()
    checked = adapter.check_layout(root, entry, options)  # a user table's validation summary, for provenance
    _fresh(raw_dir)
    write_json(raw_dir / SOURCE, {"kind": "local", "root": str(root)})
    write_manifest(root, raw_dir / MANIFEST)
    return {"kind": "local", "root": str(root), **({"validation": checked} if checked else {})}


FETCHERS = {"generator": fetch_generated, "http": fetch_http, "local": fetch_local}


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link keeps one copy on disk when the download cache shares the file system."""
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def fetch_dataset(name: str, raw_dir: str | Path, options: dict, downloads_dir: str | Path) -> dict:
    """Fetch into raw_dir and write its manifest; returns what was fetched, for provenance."""
    entry = dataset_entry(name, options)
    options = resolve_options(name, options)
    # One cache folder per registry entry, so generic file names (test_list.txt) never collide; entries over one
    # download (AMOS22's CT and MRI) name a shared folder as `cache`, so it is fetched once.
    cache = Path(downloads_dir) / entry["source"].get("cache", name)
    return FETCHERS[entry["source"]["kind"]](entry, Path(raw_dir), options, cache)
