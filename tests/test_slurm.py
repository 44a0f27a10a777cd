"""The demo DAG through `--profile profiles/slurm` on a real one-node SLURM cluster (127.0.0.1).

The cluster (slurmctld, slurmd, munged, slurmdbd + MariaDB for sacct) is started by
tests/slurm_cluster.py and every daemon is stopped by its pid afterwards. Only the partition is
overridden on the command line. One extraction job is cancelled while it runs, as a preempted or
failed job would be: its processes are killed (as the OOM killer or a node problem would), and it
must be retried with more memory and then succeed. (Not `scancel`: sacct reports such a job as
"CANCELLED by <uid>", which snakemake-executor-plugin-slurm 2.8.0 does not take for a failure,
so Snakemake would wait on it forever.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from conftest import SNAKEMAKE, copy_workflow
from slurm_cluster import SlurmUnavailable, slurm_cluster

PARTITION = "debug"
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        # 8 CPUs declared (more than this machine has) because the profile gives extraction 8.
        with slurm_cluster(tmp_path_factory.mktemp("slurm"), cpus=8, mem_mb=24000, partitions=(PARTITION,),
                           gpus=1) as running:
            yield running
    except SlurmUnavailable as err:
        pytest.skip(f"no SLURM cluster can be started here: {err}")


def slurm(cluster, *command: str) -> str:
    return subprocess.run(command, env=cluster["env"], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_demo_dag_under_slurm_with_a_retry(cluster, tmp_path):
    workdir = copy_workflow(tmp_path)
    command = ["timeout", "-k", "20", str(RUN_TIMEOUT_S), SNAKEMAKE, "--profile", "profiles/slurm",
               "--configfile", "config/tiny.yaml",
               "--default-resources", f"slurm_partition={PARTITION}",
               "--set-resources", f"extract_features:slurm_partition={PARTITION}"]
    log = (tmp_path / "snakemake.log").open("w")
    process = subprocess.Popen(command, cwd=workdir, env=cluster["env"],
                               stdout=log, stderr=subprocess.STDOUT)
    killed = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        if killed is None:
            for line in slurm(cluster, "squeue", "-h", "-o", "%i|%k|%T").splitlines():
                job_id, comment, state = line.split("|")
                if comment.startswith("rule_extract_features") and state == "RUNNING":
                    if kill_job_processes(cluster, job_id):
                        killed = job_id
                    break
        time.sleep(0.5)
    returncode = process.wait()
    log.close()
    output = (tmp_path / "snakemake.log").read_text()
    assert returncode == 0, output[-6000:]
    assert killed is not None, "no extraction job was seen running"

    # Accounting: the killed job failed, then its retry, asking for more memory, completed.
    rows = [line.split("|") for line in slurm(
        cluster, "sacct", "-X", "-n", "-P", "-a", "-S", "now-3hours", "-o", "JobID,State,ReqMem,Comment%200"
    ).splitlines()]
    by_id = {r[0]: r for r in rows}
    assert by_id[killed][1] == "FAILED", by_id[killed]
    retried = [r for r in rows if r[3] == by_id[killed][3] and r[0] != killed]
    assert [r[1] for r in retried] == ["COMPLETED"]
    assert mem_mb(retried[0][2]) > mem_mb(by_id[killed][2])

    # Results, and SLURM job ids in every metric's provenance chain.
    table = pd.read_csv(workdir / "results" / "metrics.csv")
    assert len(table) > 0 and table["value"].notna().all()
    completed = {r[0] for r in rows if r[1] == "COMPLETED"}
    for prov_id in table["provenance_id"].unique():
        chain = json.loads((workdir / "results" / "provenance" / f"{prov_id}.json").read_text())["chain"]
        job_ids = {record["run"]["slurm_job_id"] for record in chain}
        assert None not in job_ids and job_ids <= completed, job_ids
    probe_jobs = {json.loads(p.read_text())["run"]["slurm_job_id"]
                  for p in (workdir / "results" / "probes").rglob("provenance.json")}
    assert len(probe_jobs) < len(list((workdir / "results" / "probes").rglob("provenance.json"))), \
        "probe jobs should be grouped into fewer SLURM submissions"


def kill_job_processes(cluster, job_id: str) -> bool:
    """SIGKILL every process of one SLURM job on this node (by pid, from `scontrol listpids`)."""
    try:
        listing = slurm(cluster, "scontrol", "listpids", job_id)
    except subprocess.CalledProcessError:
        return False  # the job has not started its processes yet
    pids = [int(line.split()[0]) for line in listing.splitlines()[1:] if line.split()[0].isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return bool(pids)


def mem_mb(req_mem: str) -> float:
    """sacct ReqMem such as '4000M', '4G' or '2000Mc' -> megabytes."""
    value = req_mem.rstrip("cn")
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)


def test_slurm_profile_dry_run_requests_gpus_and_groups_probes(tmp_path):
    workdir = copy_workflow(tmp_path)
    result = subprocess.run([SNAKEMAKE, "--profile", "profiles/slurm", "-n"], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    extraction = result.stdout.split("rule extract_features:")[1].split("rule ")[0]
    assert "gpu=1" in extraction and "slurm_partition=gpu" in extraction
    assert "Group job probes" in result.stdout
