"""Shared fixtures: a copy of the workflow in a temporary folder, and a Snakemake runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from http_server import file_server  # noqa: F401  (a real HTTP server on 127.0.0.1 for download tests)

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles", "envs", "medprobe")
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    shutil.copy2(REPO / "tests" / "configs" / "tiny.yaml", dest / "config" / "tiny.yaml")
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    result = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The real DAG run once on the tiny config; tests that only read its outputs share it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    snakemake(workdir, "--configfile", "config/tiny.yaml")
    return workdir
