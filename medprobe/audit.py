"""Verify metrics against the bytes on disk, through their provenance chains.

For each metric row, its provenance record names every ancestor artifact with its sha256: raw
files (through the download manifest), the split table, the preprocessed arrays, the feature
files, the predictions and the per-job metric file. The audit re-checks each artifact once, and
reports every missing or changed one together with exactly the metric rows that depend on it.

Fast by default: a file whose size and modification time equal those recorded (or cached from
an earlier audit) is taken as unchanged; ``deep`` rehashes everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medprobe.atomic import write_json
from medprobe.download import dataset_root
from medprobe.hashing import sha256_file, sha256_json
from medprobe.metrics_table import SORT_COLUMNS, read_metrics
from medprobe.provenance import ID_LENGTH

CACHE = Path(".medprobe") / "hash-cache.json"


@dataclass
class Problem:
    path: str
    kind: str  # missing | changed | record | table
    detail: str
    provenance_ids: set[str] = field(default_factory=set)

    def as_dict(self, rows_by_id: dict[str, list[str]]) -> dict:
        return {"path": self.path, "kind": self.kind, "detail": self.detail,
                "provenance_ids": sorted(self.provenance_ids),
                "metric_rows": [r for pid in sorted(self.provenance_ids) for r in rows_by_id.get(pid, [])]}


class HashOracle:
    """sha256 of files, computed at most once per audit and skipped when size and mtime match a
    recorded or cached value (unless deep)."""

    def __init__(self, deep: bool, cache_path: Path | None):
        self.deep = deep
        self.cache_path = cache_path
        self.cache: dict[str, list] = {}
        if cache_path and cache_path.exists() and not deep:
            self.cache = json.loads(cache_path.read_text())
        self.hashed = 0
        self.checked: dict[str, str | None] = {}

    def sha256(self, path: Path, known: dict | None = None) -> str | None:
        """None when the file is missing."""
        key = str(path)
        if key in self.checked:
            return self.checked[key]
        try:
            stat = path.stat()
        except FileNotFoundError:
            self.checked[key] = None
            return None
        digest = None
        if not self.deep:
            if known and known.get("bytes") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
                digest = known["sha256"]
            elif key in self.cache and self.cache[key][:2] == [stat.st_size, stat.st_mtime_ns]:
                digest = self.cache[key][2]
        if digest is None:
            digest = sha256_file(path)
            self.hashed += 1
        self.cache[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.checked[key] = digest
        return digest

    def save(self) -> None:
        if self.cache_path:
            write_json(self.cache_path, self.cache)


@dataclass
class AuditReport:
    ids: list[str]
    problems: list[Problem]
    rows_by_id: dict[str, list[str]]
    chains: dict[str, list[dict]]
    artifacts_checked: int
    files_hashed: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"ok": self.ok, "provenance_ids": self.ids, "artifacts_checked": self.artifacts_checked,
                "files_hashed": self.files_hashed,
                "problems": [p.as_dict(self.rows_by_id) for p in self.problems]}


def describe_rows(table: pd.DataFrame) -> dict[str, list[str]]:
    """provenance_id -> ["dataset/task/backbone/res/probe[/Nshot]/seedN: metric", ...]."""
    described: dict[str, list[str]] = {}
    for row in table.itertuples(index=False):
        shots = "" if pd.isna(row.shots) else f"{row.shots}shot/"
        label = (f"{row.dataset}/{row.task}/{row.backbone}/{row.resolution}/{row.probe}/{shots}"
                 f"seed{row.seed}: {row.metric}")
        described.setdefault(row.provenance_id, []).append(label)
    return described


class Auditor:
    def __init__(self, workdir: Path, deep: bool):
        self.workdir = workdir
        self.oracle = HashOracle(deep, workdir / CACHE)
        self.problems: dict[tuple[str, str], Problem] = {}
        self.artifacts: set[str] = set()

    def flag(self, path: str, kind: str, detail: str, prov_id: str) -> None:
        problem = self.problems.setdefault((path, kind), Problem(path, kind, detail))
        problem.provenance_ids.add(prov_id)

    def check_file(self, entry: dict, prov_id: str) -> None:
        self.artifacts.add(entry["path"])
        actual = self.oracle.sha256(self.workdir / entry["path"], entry)
        if actual is None:
            self.flag(entry["path"], "missing", "file is missing", prov_id)
        elif actual != entry["sha256"]:
            self.flag(entry["path"], "changed",
                      f"sha256 {actual[:16]}... differs from recorded {entry['sha256'][:16]}...", prov_id)

    def check_manifest(self, manifest_entry: dict, prov_id: str) -> None:
        """Every raw file listed in a dataset's manifest, against its recorded sha256."""
        manifest = self.workdir / manifest_entry["path"]
        if self.oracle.sha256(manifest, manifest_entry) != manifest_entry["sha256"]:
            return  # already flagged as missing or changed; its listing cannot be trusted
        root = dataset_root(manifest.parent)
        for line in manifest.read_text().splitlines()[1:]:
            relative, size, digest = line.split("\t")
            path = root / relative
            display = os.path.relpath(path, self.workdir)
            self.artifacts.add(display)
            actual = self.oracle.sha256(path)
            if actual is None:
                self.flag(display, "missing", "raw file listed in the manifest is missing", prov_id)
            elif actual != digest:
                self.flag(display, "changed", "raw file differs from its manifest sha256", prov_id)

    def check_record(self, record: dict, prov_id: str) -> None:
        if sha256_json(record["identity"])[:ID_LENGTH] != record["id"]:
            self.flag(f"record {record['id']}", "record",
                      f"{record['identity']['stage']} record's identity no longer hashes to its id", prov_id)
        for entry in [*record["inputs"].values(), *record["outputs"].values()]:
            self.check_file(entry, prov_id)
        if record["identity"]["stage"] == "download":
            self.check_manifest(record["outputs"]["manifest"], prov_id)
        for name, path in record.get("upstream_records", {}).items():
            on_disk = self.workdir / path
            expected = record["identity"]["upstream"][name]
            if not on_disk.exists():
                self.flag(path, "missing", "upstream provenance record is missing", prov_id)
            elif json.loads(on_disk.read_text())["id"] != expected:
                self.flag(path, "changed", f"{name} was re-run since: its record id is no longer "
                          f"{expected}, so the artifacts on disk are not the ones this metric used", prov_id)

    def check_table_rows(self, table: pd.DataFrame, record: dict, prov_id: str) -> None:
        """The aggregated rows must equal those the evaluate job wrote."""
        path = self.workdir / record["outputs"]["metrics"]["path"]
        if not path.exists():
            return
        written = read_metrics(path).sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
        aggregated = table[table["provenance_id"] == prov_id].reset_index(drop=True)
        if not written.equals(aggregated):
            self.flag("results/metrics.csv", "table",
                      f"rows for {prov_id} differ from {record['outputs']['metrics']['path']}", prov_id)


def audit(workdir: str | Path = ".", ids: list[str] | None = None, deep: bool = False) -> AuditReport:
    """Audit the given provenance ids (all rows of results/metrics.csv when None)."""
    workdir = Path(workdir)
    table_path = workdir / "results" / "metrics.csv"
    if not table_path.exists():
        raise FileNotFoundError(f"{table_path} does not exist: run the workflow first")
    table = read_metrics(table_path).sort_values(SORT_COLUMNS, kind="stable")
    known = list(dict.fromkeys(table["provenance_id"]))
    unknown = sorted(set(ids or []) - set(known))
    if unknown:
        raise KeyError(f"provenance id(s) {unknown} are not in {table_path}")
    ids = ids or known
    auditor = Auditor(workdir, deep)
    chains: dict[str, list[dict]] = {}
    for prov_id in ids:
        record_path = workdir / "results" / "provenance" / f"{prov_id}.json"
        if not record_path.exists():
            auditor.flag(str(record_path.relative_to(workdir)), "missing", "lineage record is missing", prov_id)
            continue
        chain = json.loads(record_path.read_text())["chain"]
        chains[prov_id] = chain
        for record in chain:
            auditor.check_record(record, prov_id)
        auditor.check_table_rows(table, chain[0], prov_id)
    auditor.oracle.save()
    problems = sorted(auditor.problems.values(), key=lambda p: (p.path, p.kind))
    return AuditReport(ids=ids, problems=problems, rows_by_id=describe_rows(table), chains=chains,
                       artifacts_checked=len(auditor.artifacts), files_hashed=auditor.oracle.hashed)


def summarise_stage(record: dict) -> str:
    identity, extra = record["identity"], record.get("extra", {})
    params = identity["params"]
    stage = identity["stage"]
    if stage == "extract_features":
        backbone = extra.get("backbone", {})
        return (f"backbone={backbone.get('name')} weights={backbone.get('weights')} "
                f"res={params.get('resolution')} device={extra.get('device')} precision={extra.get('precision')}")
    if stage == "probe":
        return f"probe={params['probe']} seed={params['seed']} params={json.dumps(params['params'], sort_keys=True)}"
    if stage == "preprocess":
        return f"dataset={params['dataset']} settings={json.dumps(params['settings'], sort_keys=True)}"
    if stage == "download":
        return f"dataset={params['dataset']} options={json.dumps(params['options'], sort_keys=True)}"
    return f"settings={json.dumps(params.get('settings', {}), sort_keys=True)}"


def render_tree(report: AuditReport, prov_id: str) -> str:
    """The chain of one metric, raw data at the root, each artifact marked OK or with its problem."""
    status = {p.path: f"{p.kind.upper()}: {p.detail}" for p in report.problems if prov_id in p.provenance_ids}
    lines = [f"metric rows ({len(report.rows_by_id.get(prov_id, []))}):"]
    lines += [f"  {row}" for row in report.rows_by_id.get(prov_id, [])]
    chain = report.chains.get(prov_id, [])
    shown: set[str] = set()
    for depth, record in enumerate(reversed(chain)):
        indent = "    " * depth
        run = record["run"]
        lines.append(f"{indent}{'└─ ' if depth else ''}{record['identity']['stage']} [{record['id']}] "
                     f"{summarise_stage(record)}")
        lines.append(f"{indent}     rule={run['rule']} host={run['host']} started={run['started']} "
                     f"seconds={run['seconds']} slurm_job={run['slurm_job_id']} git={str(run.get('git_commit'))[:12]}"
                     f"{' (dirty)' if run.get('git_dirty') else ''} log={run['log']}")
        entries = {**record["inputs"], **record["outputs"]}
        for name, entry in sorted(entries.items()):
            if entry["path"] in shown:  # an upstream output, already listed above
                continue
            shown.add(entry["path"])
            mark = status.get(entry["path"], "OK")
            lines.append(f"{indent}     {name}: {entry['path']} sha256={entry['sha256'][:16]} {mark}")
        if record["identity"]["stage"] == "download":
            raw = [p for p in status if p not in entries and not p.startswith("record ")]
            manifest_note = "; ".join(f"{p} {status[p]}" for p in raw) or "every listed raw file OK"
            lines.append(f"{indent}     raw files (manifest): {manifest_note}")
    for path, mark in status.items():
        if path.startswith("record ") or path == "results/metrics.csv":
            lines.append(f"{path}: {mark}")
    return "\n".join(lines)


def render_problems(report: AuditReport) -> str:
    if report.ok:
        return (f"OK: {len(report.ids)} provenance id(s), {report.artifacts_checked} artifacts verified "
                f"({report.files_hashed} rehashed)")
    lines = [f"FAILED: {len(report.problems)} problem(s) in {len(report.ids)} provenance id(s)"]
    for problem in report.problems:
        rows = [r for pid in sorted(problem.provenance_ids) for r in report.rows_by_id.get(pid, [])]
        lines.append(f"- {problem.kind.upper()} {problem.path}: {problem.detail}")
        lines.append(f"  affects {len(rows)} metric row(s) in {len(problem.provenance_ids)} provenance id(s):")
        lines += [f"    {row}" for row in rows]
    return "\n".join(lines)
