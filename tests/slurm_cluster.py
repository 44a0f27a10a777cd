"""A real one-node SLURM cluster with accounting, private to one test directory.

Tests of the SLURM executor are only worth something against real daemons: `sbatch`, `squeue` and
`sacct` with their real output and delays. Everything (configs, munge key, MariaDB data, state, pid
files, logs) lives under the caller's directory, every daemon runs in the foreground as our child
and listens on 127.0.0.1, and clients find the cluster through SLURM_CONF, so nothing in /etc or any
system service is touched and two clusters in one session do not collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
COMMANDS = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "sinfo", "munged",
            "mungekey", "mariadb-install-db", "mariadb")
INSTALL_TIMEOUT_S = 600
STOP_TIMEOUT_S = 20
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"


class SlurmUnavailable(Exception):
    """The cluster cannot be installed or started here; the message says why."""


def _mariadbd() -> str | None:
    return shutil.which("mariadbd") or shutil.which("mysqld")


def _missing_commands() -> list[str]:
    missing = [name for name in COMMANDS if not shutil.which(name)]
    return missing + ([] if _mariadbd() else ["mariadbd"])


def ensure_installed() -> None:
    """Install Debian's Slurm, munge and MariaDB packages when any of their commands is missing."""
    missing = _missing_commands()
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"missing {', '.join(missing)} and not root, so cannot apt-get install")
    if not shutil.which("apt-get"):
        raise SlurmUnavailable(f"missing {', '.join(missing)} and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=120", *PACKAGES]
    # A fresh image has empty package lists: update only when the plain install fails.
    for step in ([install], [["apt-get", "update"], install]):
        try:
            for command in step:
                result = subprocess.run(command, env=env, capture_output=True, text=True,
                                        timeout=INSTALL_TIMEOUT_S)
                if result.returncode != 0:
                    break
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{' '.join(command)} ran over {INSTALL_TIMEOUT_S} s") from None
        if result.returncode == 0 and not _missing_commands():
            return
    output = (result.stdout + result.stderr)[-3000:]
    raise SlurmUnavailable(f"{' '.join(command)} failed (exit {result.returncode}); "
                           f"still missing {', '.join(_missing_commands())}:\n{output}")


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free; all sockets are held open together so they differ."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}"
    except OSError:
        return f"--- {path.name}: not written ---"


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _client_env(conf: Path) -> dict[str, str]:
    """The caller's environment pointed at this cluster, without SLURM_* leaking in from outside."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    return {**env, "SLURM_CONF": str(conf)}


class _Cluster:
    """Starts the daemons in dependency order and stops them in reverse, waiting until each is gone."""

    def __init__(self, workdir: Path, timeout_s: int):
        self.workdir = workdir
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.logs = workdir / "log"
        self.run = workdir / "run"
        self.daemons: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        """Run a daemon in the foreground in its own session, so only our stop() signals it."""
        with open(self.logs / f"{name}.stdout", "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, cwd=self.workdir)
        self.daemons.append((name, proc, log))

    def fail(self, why: str) -> SlurmUnavailable:
        tails = [_tail(log) + "\n" + _tail(self.logs / f"{name}.stdout", 1000)
                 for name, _, log in self.daemons]
        return SlurmUnavailable(f"{why}\n" + "\n".join(tails))

    def wait_for(self, what: str, ready) -> None:
        """Poll `ready()` until true; fail early if a daemon died, late at the startup deadline."""
        while True:
            if ready():
                return
            for name, proc, _ in self.daemons:
                if proc.poll() is not None:
                    raise self.fail(f"{name} exited with {proc.returncode} while waiting for {what}")
            if time.monotonic() > self.deadline:
                raise self.fail(f"timed out after {self.timeout_s} s waiting for {what}")
            time.sleep(0.3)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc, _ in self.daemons}

    def stop(self) -> None:
        """SIGTERM each daemon in reverse start order, SIGKILL if it lingers, and reap it."""
        stuck = []
        for name, proc, _ in reversed(self.daemons):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        stuck.append(f"{name} (pid {proc.pid})")
        if stuck:
            raise RuntimeError(f"daemons survived SIGKILL: {', '.join(stuck)}")


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def _start_munge(cluster: _Cluster) -> Path:
    """munged on a private key and socket; runs as root, which it accepts for a root-owned key."""
    key = cluster.workdir / "munge" / "munge.key"
    key.parent.mkdir(mode=0o700)
    result = _run(["mungekey", "--create", "--keyfile", str(key)])
    if result.returncode != 0:
        raise SlurmUnavailable(f"mungekey failed: {result.stderr}")
    key.chmod(0o400)
    sock = cluster.run / "munge.socket"
    log = cluster.logs / "munged.log"
    cluster.start("munged", ["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                             f"--pid-file={cluster.run / 'munged.pid'}", f"--log-file={log}",
                             f"--seed-file={key.parent / 'munged.seed'}"], log)
    cluster.wait_for("the munge socket", sock.exists)
    return sock


def _start_mariadb(cluster: _Cluster, port: int) -> str:
    """A private MariaDB on 127.0.0.1:port with a password user for slurmdbd; returns the password."""
    datadir = cluster.workdir / "mariadb"
    sock = cluster.run / "mariadb.sock"
    log = cluster.logs / "mariadb.log"
    result = _run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                   "--auth-root-authentication-method=socket", "--skip-test-db"], timeout=120)
    if result.returncode != 0:
        raise SlurmUnavailable(f"mariadb-install-db failed:\n{(result.stdout + result.stderr)[-3000:]}")
    # --no-defaults first: the system's /etc/mysql settings must not apply to this instance.
    cluster.start("mariadb", [_mariadbd(), "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                              f"--pid-file={cluster.run / 'mariadb.pid'}", f"--log-error={log}",
                              f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                              f"--tmpdir={cluster.workdir}", "--user=root",
                              "--innodb-lock-wait-timeout=900"], log)
    client = ["mariadb", "--no-defaults", f"--socket={sock}", "--user=root"]
    cluster.wait_for("MariaDB", lambda: _run([*client, "-e", "SELECT 1"]).returncode == 0)
    password = secrets.token_hex(12)
    sql = (f"CREATE DATABASE {DB_NAME}; "
           f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
           f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';")
    result = _run([*client, "-e", sql])
    if result.returncode != 0:
        raise cluster.fail(f"creating the accounting database failed: {result.stderr}")
    return password


def _slurm_conf(workdir: Path, name: str, munge_socket: Path, ports: dict[str, int], cpus: int,
                mem_mb: int, partitions: tuple[str, ...]) -> str:
    run, logs = workdir / "run", workdir / "log"
    lines = [
        f"ClusterName={name}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ports['slurmctld']}",
        f"SlurmdPort={ports['slurmd']}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={workdir / 'state'}",
        f"SlurmdSpoolDir={workdir / 'spool'}",
        f"SlurmctldPidFile={run / 'slurmctld.pid'}",
        f"SlurmdPidFile={run / 'slurmd.pid'}",
        f"SlurmctldLogFile={logs / 'slurmctld.log'}",
        f"SlurmdLogFile={logs / 'slurmd.log'}",
        # Configured CPUs/memory win over what slurmd detects, so a small CI machine is not INVALID.
        "SlurmdParameters=config_overrides",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Without a default per-CPU memory one job would be given the whole node's memory.
        f"DefMemPerCPU={max(1, mem_mb // cpus)}",
        "MinJobAge=300",
        "ReturnToService=2",
        "MpiDefault=none",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        # Clients reach slurmdbd with the munge socket named here, not the one in AuthInfo.
        f"AccountingStoragePass={munge_socket}",
        f"AccountingStoragePort={ports['slurmdbd']}",
        "JobAcctGatherType=jobacct_gather/linux",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
    ]
    for index, partition in enumerate(partitions):
        default = "YES" if index == 0 else "NO"
        lines.append(f"PartitionName={partition} Nodes=localhost Default={default} MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def _slurmdbd_conf(workdir: Path, munge_socket: Path, ports: dict[str, int], password: str) -> str:
    return "\n".join([
        "AuthType=auth/munge",
        f"AuthInfo=socket={munge_socket}",
        "DbdHost=localhost",
        "DbdAddr=127.0.0.1",
        f"DbdPort={ports['slurmdbd']}",
        "SlurmUser=root",
        f"PidFile={workdir / 'run' / 'slurmdbd.pid'}",
        f"LogFile={workdir / 'log' / 'slurmdbd.log'}",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={ports['mariadb']}",
        f"StorageUser={DB_USER}",
        f"StoragePass={password}",
        f"StorageLoc={DB_NAME}",
    ]) + "\n"


def _check_batch_job(cluster: _Cluster, env: dict[str, str]) -> None:
    """One real job through sbatch to COMPLETED in sacct, the path the Snakemake executor uses."""
    out = cluster.workdir / "smoke-%j.out"
    result = _run(["sbatch", "--parsable", f"--output={out}", "--wrap", "echo hi"], env=env)
    if result.returncode != 0:
        raise cluster.fail(f"sbatch failed: {result.stderr}")
    job_id = result.stdout.strip().split(";")[0]
    states: list[str] = []

    def completed() -> bool:
        nonlocal states
        sacct = _run(["sacct", "-j", job_id, "-n", "-X", "-P", "-o", "State"], env=env)
        states = sacct.stdout.split()
        if any(state not in ("PENDING", "RUNNING", "COMPLETED") for state in states):
            raise cluster.fail(f"smoke job {job_id} ended as {states}")
        return states == ["COMPLETED"]

    cluster.wait_for(f"smoke job {job_id} to be COMPLETED in sacct (last seen {states})", completed)


@contextmanager
def slurm_cluster(workdir: Path, cpus: int = 2, mem_mb: int = 8000, partitions=("cpu",),
                  timeout_s: int = 120) -> Iterator[dict]:
    """Start munged, MariaDB, slurmdbd, slurmctld and slurmd under `workdir`; stop them all on exit.

    Yields {"partition": first partition, "partitions", "cluster": name, "conf": slurm.conf path,
    "env": environment for sbatch/squeue/sacct/snakemake, "pids": daemon name -> pid}.
    Raises SlurmUnavailable (with daemon log tails) when it cannot install, start or run a job.
    """
    ensure_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("the daemons run as root (SlurmUser=root) and this is not root")
    partitions = tuple(partitions)
    workdir = Path(workdir).resolve()
    for sub in ("log", "run", "state", "spool"):
        (workdir / sub).mkdir(parents=True)
    cluster = _Cluster(workdir, timeout_s)
    ports = dict(zip(("mariadb", "slurmdbd", "slurmctld", "slurmd"), _free_ports(4)))
    name = f"mp{secrets.token_hex(4)}"
    conf = workdir / "slurm.conf"
    env = _client_env(conf)
    with ExitStack() as stack:
        stack.callback(cluster.stop)
        munge_socket = _start_munge(cluster)
        password = _start_mariadb(cluster, ports["mariadb"])
        _write(conf, _slurm_conf(workdir, name, munge_socket, ports, cpus, mem_mb, partitions))
        # slurmdbd reads slurmdbd.conf beside SLURM_CONF and refuses one others can read.
        _write(workdir / "slurmdbd.conf", _slurmdbd_conf(workdir, munge_socket, ports, password), 0o600)

        cluster.start("slurmdbd", ["slurmdbd", "-D"], cluster.logs / "slurmdbd.log", env)
        cluster.wait_for("slurmdbd", lambda: _run(["sacctmgr", "-n", "list", "cluster"], env=env).returncode == 0)
        result = _run(["sacctmgr", "-i", "add", "cluster", name], env=env)
        if result.returncode != 0:
            raise cluster.fail(f"sacctmgr add cluster failed: {result.stdout}{result.stderr}")

        cluster.start("slurmctld", ["slurmctld", "-D", "-i"], cluster.logs / "slurmctld.log", env)
        # A slurmd that cannot register at once waits for slurmctld's next ping (100 s by default).
        cluster.wait_for("slurmctld", lambda: "is UP" in _run(["scontrol", "ping"], env=env).stdout)
        cluster.start("slurmd", ["slurmd", "-D", "-N", "localhost"], cluster.logs / "slurmd.log", env)
        cluster.wait_for("the node to be idle", lambda: _run(
            ["sinfo", "-h", "-n", "localhost", "-o", "%T"], env=env).stdout.split() == ["idle"] * len(partitions))
        _check_batch_job(cluster, env)
        yield {"partition": partitions[0], "partitions": partitions, "cluster": name, "conf": conf,
               "env": env, "pids": cluster.pids()}
