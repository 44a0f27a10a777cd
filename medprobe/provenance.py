"""Provenance records written by every stage as it runs.

Each stage writes one JSON record next to its outputs. A record has two parts:
- ``identity``: everything that determines the outputs' bytes (input hashes, parameters, upstream
  record ids, a hash of the medprobe source files the stage runs, package versions). Its hash is
  the record ``id``, so two runs that should give the same numbers get the same id, and any
  upstream change gives a new one.
- ``run``: how this particular execution went (host, hardware, times, job id, log, git commit). It is kept
  for auditing but never enters the id, so re-running on another day does not change ids.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from medprobe import __version__
from medprobe.atomic import write_json
from medprobe.codedeps import PACKAGE_ROOT, code_sha256, import_closure
from medprobe.hashing import sha256_file, sha256_json

ID_LENGTH = 16
PACKAGES = (
    "numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "torch", "torchvision", "timm",
    "pydicom", "nibabel", "openslide-python", "monai", "snakemake", "matplotlib",
)
SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "credential", "api_key", "apikey")
REDACTED = "<redacted>"


def redact(value):
    """Copy of a params structure with every secret-looking key's value replaced: credentials
    (an HF_TOKEN placed in a config, say) must never reach a record, a log or a crate."""
    if isinstance(value, dict):
        return {k: REDACTED if any(part in str(k).lower() for part in SECRET_KEY_PARTS) else redact(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=None)
def code_files(*modules: str) -> dict[str, str]:
    """sha256 of every medprobe source file the stage's modules run (see medprobe.codedeps)."""
    return {str(p.relative_to(PACKAGE_ROOT.parent)): sha256_file(p) for p in import_closure(*modules)}


@lru_cache(maxsize=1)
def git_version() -> dict[str, object]:
    """Commit and dirty flag of the checkout: recorded for auditing, not part of any identity,
    so a commit that leaves a stage's code alone leaves its provenance ids alone."""
    info: dict[str, object] = {"git_commit": "unknown", "git_dirty": None}
    repo = PACKAGE_ROOT.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout
        info["git_commit"], info["git_dirty"] = commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def hardware() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, object] = {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": None}
    torch = sys.modules.get("torch")  # only report the GPU when the stage actually used torch
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["gpu_count"] = torch.cuda.device_count()
    return info


def file_entry(path: str | Path) -> dict[str, object]:
    """Hash plus size and modification time, which let an audit skip rehashing untouched files."""
    path = Path(path)
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sha256": sha256_file(path)}


def load_record(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


class StageRecord:
    """Collects one stage's provenance; call ``write`` once the outputs exist."""

    def __init__(self, stage: str, module: str, params: dict, inputs: dict[str, str | Path] | None = None,
                 upstream: dict[str, str | Path] | None = None, rule: str | None = None,
                 log: str | None = None, runtime_modules: tuple[str, ...] = ()):
        self.stage = stage
        self.module = module
        self.modules = (module, *runtime_modules)  # runtime: loaded by name, e.g. a dataset's adapter
        self.params = redact(params)
        self.inputs = {name: file_entry(p) for name, p in (inputs or {}).items()}
        self.upstream = {name: load_record(p) for name, p in (upstream or {}).items()}
        self.upstream_paths = {name: str(p) for name, p in (upstream or {}).items()}
        self.rule = rule
        self.log = log
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()

    def identity(self) -> dict:
        return {
            "stage": self.stage,
            "params": self.params,
            "inputs": {k: v["sha256"] for k, v in self.inputs.items()},
            "upstream": {k: rec["id"] for k, rec in self.upstream.items()},
            "code": {"package_version": __version__, "module": self.module,
                     **({"runtime_modules": list(self.modules[1:])} if self.modules[1:] else {}),
                     "sources_sha256": code_sha256(*self.modules)},
            "packages": package_versions(),
        }

    def identity_id(self) -> str:
        return sha256_json(self.identity())[:ID_LENGTH]

    def write(self, path: str | Path, outputs: dict[str, str | Path], extra: dict | None = None) -> dict:
        identity = self.identity()
        record = {
            "id": sha256_json(identity)[:ID_LENGTH],
            "identity": identity,
            "inputs": self.inputs,
            "upstream_records": self.upstream_paths,
            "outputs": {name: file_entry(p) for name, p in outputs.items()},
            "extra": extra or {},
            "code_files": code_files(*self.modules),
            "run": {
                "rule": self.rule,
                "log": self.log,
                "host": socket.gethostname(),
                "hardware": hardware(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                "conda_prefix": os.environ.get("CONDA_PREFIX"),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                # On CPU, torch's thread count changes the last bits of features and of trained heads.
                "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
                **git_version(),
                "started": self.started,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - self._t0, 3),
            },
        }
        write_json(path, record)
        return record


def chain(record: dict) -> list[dict]:
    """All records from ``record`` back to the raw data, nearest first, each once."""
    ordered, seen, todo = [], set(), [record]
    while todo:
        current = todo.pop(0)
        if current["id"] in seen:
            continue
        seen.add(current["id"])
        ordered.append(current)
        todo.extend(load_record(p) for p in current.get("upstream_records", {}).values())
    return ordered
