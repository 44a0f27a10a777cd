"""The private SLURM cluster that executor tests run against: jobs reach sacct, daemons do not leak."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from slurm_cluster import SlurmUnavailable, slurm_cluster


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_sbatch_job_reaches_sacct_and_daemons_stop(tmp_path: Path):
    try:
        with slurm_cluster(tmp_path / "cluster", partitions=("cpu", "gpu"), gpus=1) as cluster:
            env, pids = cluster["env"], cluster["pids"]
            assert set(pids) == {"munged", "mariadb", "slurmdbd", "slurmctld", "slurmd"}
            # Each daemon runs in the foreground, so the pid it writes is the one we will stop.
            for name in ("slurmdbd", "slurmctld", "slurmd"):
                assert int((tmp_path / "cluster" / "run" / f"{name}.pid").read_text()) == pids[name]

            submit = subprocess.run(
                ["sbatch", "--parsable", "--partition=gpu", "--gpus=1", "--job-name=probe", "--mem=100",
                 f"--output={tmp_path / 'probe.out'}",
                 # The Snakemake jobstep executor strips SLURM_CONF before its srun in the job.
                 "--wrap", "echo hello from slurm; env -u SLURM_CONF srun echo hello from srun"],
                env=env, capture_output=True, text=True, check=True)
            job_id = submit.stdout.strip()
            row = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # As the Snakemake executor polls: by name, all clusters, within a time window.
                row = subprocess.run(
                    ["sacct", "-X", "--parsable2", "--clusters", "all", "--noheader",
                     "--format=JobIdRaw,State,Partition", "--starttime", "now-1hour",
                     "--endtime", "now", "--name", "probe"],
                    env=env, capture_output=True, text=True, check=True).stdout.strip()
                if row.endswith("|COMPLETED|gpu"):
                    break
                time.sleep(0.5)
            assert row == f"{job_id}|COMPLETED|gpu"
            assert (tmp_path / "probe.out").read_text() == "hello from slurm\nhello from srun\n"
            # A job still queued at exit must not keep anything alive.
            subprocess.run(["sbatch", "--wrap", "sleep 300", f"--output={tmp_path / 'sleep.out'}"],
                           env=env, capture_output=True, check=True)
    except SlurmUnavailable as err:
        pytest.skip(str(err))
    assert "SLURM_CONF" not in os.environ
    assert [name for name, pid in pids.items() if alive(pid)] == []
