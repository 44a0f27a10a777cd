"""Which medprobe source files a stage runs, so Snakemake reruns a rule when one of them changes.

Snakemake tracks a rule's script but not the modules the script imports. Each stage module's
import closure within medprobe (function-level imports included, found by parsing, not by
importing) is hashed; the hash is a param of the rule, and provenance records it.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGE = PACKAGE_ROOT.name


def module_file(name: str) -> Path | None:
    """medprobe.a.b -> medprobe/a/b.py or medprobe/a/b/__init__.py (None if neither exists)."""
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    for candidate in (PACKAGE_ROOT.joinpath(*parts[:-1], parts[-1] + ".py"),
                      PACKAGE_ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """medprobe modules named by any import statement in `path`, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


@lru_cache(maxsize=None)
def import_closure(*modules: str) -> tuple[Path, ...]:
    """Source files of `modules`, of every medprobe module they import transitively, and of the
    packages' __init__ files that importing them executes; sorted. Modules a stage loads by name
    at run time (a dataset's adapter) are passed in beside the stage module."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # parent packages run their __init__
            path = module_file(".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(imported_modules(path))
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def code_sha256(*modules: str) -> str:
    """One hash over the closure's files (relative paths and contents)."""
    from medprobe.hashing import sha256_file, sha256_json

    return sha256_json({str(p.relative_to(PACKAGE_ROOT)): sha256_file(p) for p in import_closure(*modules)})
