"""A real one-node SLURM cluster with accounting, private to one test directory.

Tests of the SLURM executor are only worth something against real daemons: `sbatch`, `squeue` and
`sacct` with their real output and delays. Everything (configs, munge key, MariaDB data, state, pid
files, logs) lives under the caller's directory, every daemon runs in the foreground as our child
and talks over 127.0.0.1, and clients find the cluster through SLURM_CONF, so nothing in /etc or any
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
COMMANDS = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "srun", "sacct", "sacctmgr", "sinfo", "squeue",
            "scancel", "scontrol", "munged", "mungekey", "mariadb-install-db", "mariadb")
INSTALL_TIMEOUT_S = 600
STOP_TIMEOUT_S = 20
PROBE_TIMEOUT_S = 15
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
    for commands in ([install], [["apt-get", "update"], install]):
        for command in commands:
            try:
                result = subprocess.run(command, env=env, capture_output=True, text=True,
                                        timeout=INSTALL_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise SlurmUnavailable(f"{' '.join(command)} ran over {INSTALL_TIMEOUT_S} s") from None
            if result.returncode != 0:
                break
        if result.returncode == 0 and not _missing_commands():
            return
    output = (result.stdout + result.stderr)[-3000:]
    raise SlurmUnavailable(f"{' '.join(command)} exited {result.returncode}; "
                           f"still missing {', '.join(_missing_commands())}:\n{output}")


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free; the sockets are held open together so they differ."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run(argv: list[str], env: dict[str, str] | None = None,
         timeout: int = PROBE_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a client command; a hung one counts as a failure rather than an exception."""
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout} s")


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}"
    except OSError:
        return f"--- {path.name}: not written ---"


class _Daemons:
    """Daemons started in dependency order, stopped in reverse; owns the startup deadline."""

    def __init__(self, workdir: Path, timeout_s: int):
        self.workdir = workdir
        self.logs = workdir / "log"
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.started: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log: Path | None = None) -> None:
        """Run a daemon in the foreground in its own session: our Popen handle is its real pid and
        a Ctrl-C to the test does not reach it. `log` is its own log file, if it writes one."""
        stdout = self.logs / f"{name}.out"
        with open(stdout, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, cwd=self.workdir)
        self.started.append((name, proc, log or stdout))

    def fail(self, why: str) -> SlurmUnavailable:
        return SlurmUnavailable("\n".join([why, *(_tail(log) for _, _, log in self.started)]))

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        """Poll `ready()`; fail at once if a daemon died, or at the startup deadline."""
        while not ready():
            for name, proc, _ in self.started:
                if proc.poll() is not None:
                    raise self.fail(f"{name} exited with {proc.returncode} while waiting for {what}")
            if time.monotonic() > self.deadline:
                raise self.fail(f"timed out after {self.timeout_s} s waiting for {what}")
            time.sleep(0.3)

    def wait_for_command(self, what: str, argv: list[str], env: dict[str, str],
                         accept: Callable[[subprocess.CompletedProcess], bool]) -> None:
        """wait_for a client command's answer; a failure quotes its last answer, often the reason."""
        last: list[subprocess.CompletedProcess] = []

        def ready() -> bool:
            last[:] = [_run(argv, env=env)]
            return accept(last[0])

        try:
            self.wait_for(what, ready)
        except SlurmUnavailable as err:
            said = (last[0].stdout + last[0].stderr).strip()[-1500:] if last else ""
            raise SlurmUnavailable(f"`{' '.join(argv)}` last said: {said}\n{err}") from None

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc, _ in self.started}

    def stop(self) -> None:
        """SIGTERM each daemon in reverse start order, SIGKILL one that lingers, and reap it."""
        stuck = []
        for name, proc, _ in reversed(self.started):
            if proc.poll() is not None:
                continue
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


def _start_munge(daemons: _Daemons, run: Path) -> Path:
    """munged with a private key and socket. It runs as root, which accepts a root-owned key;
    --force turns its refusal of a socket path others cannot traverse (pytest's 0700 tmp) into
    a warning; the socket only has to serve root's own daemons and clients here."""
    key_dir = daemons.workdir / "munge"
    key_dir.mkdir(mode=0o700)
    key = key_dir / "munge.key"
    result = _run(["mungekey", "--create", f"--keyfile={key}"])
    if result.returncode != 0:
        raise SlurmUnavailable(f"mungekey failed: {result.stderr}")
    key.chmod(0o400)
    sock = run / "munge.socket"
    daemons.start("munged", ["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                             f"--pid-file={run / 'munged.pid'}", f"--seed-file={key_dir / 'munged.seed'}"])
    daemons.wait_for("the munge socket", sock.exists)
    return sock


def _start_mariadb(daemons: _Daemons, run: Path, port: int) -> str:
    """A private MariaDB on 127.0.0.1:port with a password user for slurmdbd; returns the password."""
    datadir = daemons.workdir / "mariadb"
    sock = run / "mariadb.sock"
    # --no-defaults first everywhere: the system's /etc/mysql settings must not apply here.
    result = _run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                   "--auth-root-authentication-method=socket", "--skip-test-db"], timeout=120)
    if result.returncode != 0:
        raise SlurmUnavailable(f"mariadb-install-db failed:\n{(result.stdout + result.stderr)[-3000:]}")
    log = daemons.logs / "mariadb.log"
    daemons.start("mariadb", [_mariadbd(), "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                              f"--pid-file={run / 'mariadb.pid'}", f"--log-error={log}", f"--port={port}",
                              "--bind-address=127.0.0.1", "--skip-name-resolve", f"--tmpdir={daemons.workdir}",
                              "--user=root", "--innodb-lock-wait-timeout=900"], log=log)
    client = ["mariadb", "--no-defaults", f"--socket={sock}", "--user=root"]
    daemons.wait_for("MariaDB", lambda: _run([*client, "-e", "SELECT 1"]).returncode == 0)
    password = secrets.token_hex(12)
    sql = (f"CREATE DATABASE {DB_NAME}; "
           f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
           f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';")
    result = _run([*client, "-e", sql])
    if result.returncode != 0:
        raise daemons.fail(f"creating the accounting database failed: {result.stderr}")
    return password


def _slurm_conf(workdir: Path, cluster: str, munge_socket: Path, ports: dict[str, int], cpus: int,
                mem_mb: int, gpus: int, partitions: tuple[str, ...]) -> str:
    run, logs = workdir / "run", workdir / "log"
    lines = [
        f"ClusterName={cluster}",
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
        # The configured CPUs and memory win over what slurmd detects, so the node is never INVALID.
        "SlurmdParameters=config_overrides",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Without a default per-CPU memory one job is given the whole node's memory.
        f"DefMemPerCPU={max(1, mem_mb // cpus)}",
        "MinJobAge=300",
        # Reject at sbatch a job the node can never run (too many CPUs), instead of PENDING forever.
        "EnforcePartLimits=ALL",
        "ReturnToService=2",
        "MpiDefault=none",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        f"AccountingStoragePort={ports['slurmdbd']}",
        # Connections to slurmdbd use the munge socket named here, not the one in AuthInfo.
        f"AccountingStoragePass={munge_socket}",
        "JobAcctGatherType=jobacct_gather/linux",
        # Keep job comments in accounting: the Snakemake executor puts the rule name there.
        "AccountingStoreFlags=job_comment",
        *(["GresTypes=gpu"] if gpus else []),
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN"
        + (f" Gres=gpu:{gpus}" if gpus else ""),
    ]
    lines += [f"PartitionName={name} Nodes=localhost Default={'YES' if index == 0 else 'NO'} "
              "MaxTime=INFINITE State=UP" for index, name in enumerate(partitions)]
    return "\n".join(lines) + "\n"


def _write_gres_conf(workdir: Path, gpus: int) -> None:
    """Declare `gpus` fake GPUs. Slurm 22.05 drops a GPU without File= (Count= alone is ignored)
    and wants a character device there, so each is a link to /dev/null under workdir."""
    devices = workdir / "dev"
    devices.mkdir()
    lines = ["AutoDetect=off"]
    for index in range(gpus):
        (devices / f"gpu{index}").symlink_to("/dev/null")
        lines.append(f"NodeName=localhost Name=gpu File={devices / f'gpu{index}'}")
    (workdir / "gres.conf").write_text("\n".join(lines) + "\n")


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


def _check_batch_job(daemons: _Daemons, env: dict[str, str]) -> None:
    """One real job through sbatch to COMPLETED in sacct: the path the Snakemake executor takes."""
    result = _run(["sbatch", "--parsable", f"--output={daemons.workdir / 'smoke-%j.out'}",
                   "--wrap", "echo hi"], env=env)
    if result.returncode != 0:
        raise daemons.fail(f"sbatch failed: {result.stderr}")
    job_id = result.stdout.strip().split(";")[0]

    def completed() -> bool:
        states = _run(["sacct", "-j", job_id, "-n", "-X", "-P", "-o", "State"], env=env).stdout.split()
        if any(state not in ("PENDING", "RUNNING", "COMPLETED") for state in states):
            raise daemons.fail(f"smoke job {job_id} ended {states}")
        return states == ["COMPLETED"]

    daemons.wait_for(f"smoke job {job_id} to be COMPLETED in sacct", completed)


def _srun_shim(workdir: Path, conf: Path) -> Path:
    """A bin dir whose `srun` finds this cluster even when SLURM_CONF was stripped from its
    environment, as the Snakemake slurm-jobstep executor does (it keeps only job-identity SLURM_*
    variables) before its srun inside a job. A real cluster's srun falls back to /etc/slurm."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "srun"
    shim.write_text(f'#!/bin/sh\nexport SLURM_CONF="${{SLURM_CONF:-{conf}}}"\nexec {shutil.which("srun")} "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def _cancel_jobs(env: dict[str, str]) -> None:
    """Cancel the cluster's jobs so no job processes outlive slurmd (which leaves them running)."""
    job_ids = _run(["squeue", "-h", "-o", "%A"], env=env).stdout.split()
    if not job_ids:
        return
    _run(["scancel", *job_ids], env=env)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _run(["squeue", "-h", "-t", "RUNNING,COMPLETING", "-o", "%A"], env=env).stdout.split():
        if time.monotonic() > deadline:
            return
        time.sleep(0.3)


@contextmanager
def slurm_cluster(workdir: Path, cpus: int = 2, mem_mb: int = 8000, partitions=("cpu",), gpus: int = 0,
                  timeout_s: int = 120) -> Iterator[dict]:
    """Start munged, MariaDB, slurmdbd, slurmctld and slurmd under a new `workdir`; stop them on exit.

    Yields {"partition": the default (first) partition, "partitions", "cluster": its name,
    "conf": slurm.conf, "env": os.environ plus SLURM_CONF for sbatch/squeue/sacct/snakemake,
    "pids": daemon name -> pid}. Startup, including one sbatch job seen COMPLETED by sacct, is
    bounded by `timeout_s`. `gpus` declares that many GPUs on the node (backed by /dev/null), so
    jobs asking for --gpus are scheduled, and get CUDA_VISIBLE_DEVICES, as on a GPU cluster.
    Raises SlurmUnavailable, with daemon log tails, when the packages
    cannot be installed or the cluster does not come up.
    """
    ensure_installed()
    if os.geteuid() != 0:
        raise SlurmUnavailable("the daemons run as root (SlurmUser=root) and this is not root")
    partitions = tuple(partitions)
    workdir = Path(workdir).resolve()
    run = workdir / "run"
    for sub in ("log", "run", "state", "spool"):
        (workdir / sub).mkdir(parents=True)
    ports = dict(zip(("mariadb", "slurmdbd", "slurmctld", "slurmd"), _free_ports(4)))
    cluster = f"mp{secrets.token_hex(4)}"
    conf = workdir / "slurm.conf"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([str(_srun_shim(workdir, conf)), env.get("PATH", os.defpath)])
    daemons = _Daemons(workdir, timeout_s)
    try:
        munge_socket = _start_munge(daemons, run)
        password = _start_mariadb(daemons, run, ports["mariadb"])
        conf.write_text(_slurm_conf(workdir, cluster, munge_socket, ports, cpus, mem_mb, gpus, partitions))
        if gpus:
            _write_gres_conf(workdir, gpus)
        # slurmdbd reads slurmdbd.conf beside SLURM_CONF and refuses one that others can read.
        dbd_conf = workdir / "slurmdbd.conf"
        dbd_conf.write_text(_slurmdbd_conf(workdir, munge_socket, ports, password))
        dbd_conf.chmod(0o600)

        daemons.start("slurmdbd", ["slurmdbd", "-D"], env, daemons.logs / "slurmdbd.log")
        daemons.wait_for_command("slurmdbd", ["sacctmgr", "-n", "list", "cluster"], env,
                                 lambda result: result.returncode == 0)
        result = _run(["sacctmgr", "-i", "add", "cluster", cluster], env=env)
        if result.returncode != 0:
            raise daemons.fail(f"sacctmgr add cluster failed: {result.stdout}{result.stderr}")

        daemons.start("slurmctld", ["slurmctld", "-D", "-i"], env, daemons.logs / "slurmctld.log")
        # A slurmd that cannot register at once waits for slurmctld's next ping (100 s by default).
        daemons.wait_for_command("slurmctld", ["scontrol", "ping"], env, lambda result: "is UP" in result.stdout)
        daemons.start("slurmd", ["slurmd", "-D", "-N", "localhost"], env, daemons.logs / "slurmd.log")
        # sinfo merges identical rows, so one "idle" covers the node in every partition.
        daemons.wait_for_command("the node to be idle", ["sinfo", "-h", "-n", "localhost", "-o", "%T"], env,
                                 lambda result: result.stdout.split() == ["idle"])
        _check_batch_job(daemons, env)
        yield {"partition": partitions[0], "partitions": partitions, "cluster": cluster, "conf": conf,
               "env": env, "pids": daemons.pids()}
    finally:
        if any(name == "slurmctld" for name, _, _ in daemons.started):
            _cancel_jobs(env)
        daemons.stop()
