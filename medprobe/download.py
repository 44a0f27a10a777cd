"""Download stage: obtain a dataset's raw files and write a manifest of every file's sha256.

The manifest is written last and atomically, so its presence means the folder is complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from medprobe.atomic import write_text
from medprobe.datasets.registry import get_dataset
from medprobe.hashing import sha256_file
from medprobe.registry import resolve

MANIFEST = "manifest.tsv"


def write_manifest(root: str | Path) -> Path:
    root = Path(root)
    rows = ["path\tbytes\tsha256"]
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        rows.append(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\t{sha256_file(path)}")
    manifest = root / MANIFEST
    write_text(manifest, "\n".join(rows) + "\n")
    return manifest


def read_manifest(path: str | Path) -> dict[str, str]:
    """Relative path -> sha256."""
    lines = Path(path).read_text().splitlines()[1:]
    return {rel: digest for rel, _, digest in (line.split("\t") for line in lines)}


def fetch_dataset(name: str, raw_dir: str | Path, options: dict) -> Path:
    entry = get_dataset(name)
    raw_dir = Path(raw_dir)
    source = entry["source"]
    if source["kind"] != "generator":
        raise NotImplementedError(f"dataset '{name}': source kind '{source['kind']}' is not supported yet")
    # A folder without a manifest is an interrupted earlier attempt: start it over.
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    raw_dir.mkdir(parents=True)
    resolve(source["function"])(raw_dir, **options)
    return write_manifest(raw_dir)
