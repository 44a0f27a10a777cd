"""`medprobe audit` on a real run: clean, tampered, deleted, edited; provenance under reruns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import snakemake

MEDPROBE = str(Path(sys.executable).with_name("medprobe"))


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the shared run (mtimes preserved), free to tamper with."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run", symlinks=True))


def audit(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MEDPROBE, "audit", *args], cwd=workdir, capture_output=True, text=True, timeout=300)


def rows_of(table: pd.DataFrame) -> list[str]:
    return sorted(f"{r.dataset}/{r.task}/{r.backbone}/{r.resolution}/{r.probe}/seed{r.seed}: {r.metric}"
                  for r in table.itertuples())


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_untouched_run_audits_clean(run_copy):
    result = audit(run_copy, "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:")
    table = pd.read_csv(run_copy / "results" / "metrics.csv")
    one = audit(run_copy, table["provenance_id"].iloc[0])
    assert one.returncode == 0
    for stage in ("download", "preprocess", "extract_features", "probe", "evaluate"):
        assert f"{stage} [" in one.stdout


def test_flipped_byte_in_a_feature_file_names_it_and_exactly_its_rows(run_copy):
    table = pd.read_csv(run_copy / "results" / "metrics.csv")
    backbone, res = table["backbone"].iloc[0], int(table["resolution"].iloc[0])
    victim = f"results/features/demo_cxr/{backbone}/{res}/train.npy"
    flip_byte(run_copy / victim)
    result = audit(run_copy, "--all", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [p["path"] for p in report["problems"]] == [victim]
    expected = rows_of(table[(table["backbone"] == backbone) & (table["resolution"] == res)])
    assert sorted(report["problems"][0]["metric_rows"]) == expected
    text = audit(run_copy, "--all")
    assert text.returncode == 1 and f"CHANGED {victim}" in text.stdout


def test_deleted_split_file_fails_for_every_row(run_copy):
    (run_copy / "data" / "processed" / "demo_cxr" / "split.tsv").unlink()
    result = audit(run_copy, "--all", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    problem = next(p for p in report["problems"] if p["path"] == "data/processed/demo_cxr/split.tsv")
    assert problem["kind"] == "missing"
    assert sorted(problem["metric_rows"]) == rows_of(pd.read_csv(run_copy / "results" / "metrics.csv"))


def test_changed_raw_file_is_found_through_the_manifest(run_copy):
    victim = sorted((run_copy / "data" / "raw" / "demo_cxr" / "images").glob("*.dcm"))[3]
    flip_byte(victim, offset=1000)
    result = audit(run_copy, "--all")
    assert result.returncode == 1
    assert f"CHANGED data/raw/demo_cxr/images/{victim.name}: raw file differs from its manifest sha256" in result.stdout


def test_edited_value_in_the_metrics_table_is_caught(run_copy):
    path = run_copy / "results" / "metrics.csv"
    table = pd.read_csv(path)
    table.loc[0, "value"] = 0.99
    table.to_csv(path, index=False, float_format="%.6f")
    result = audit(run_copy, "--all")
    assert result.returncode == 1
    assert f"TABLE results/metrics.csv: rows for {table['provenance_id'].iloc[0]} differ" in result.stdout


def test_deep_audit_catches_a_change_that_kept_size_and_mtime(run_copy):
    table = pd.read_csv(run_copy / "results" / "metrics.csv")
    features = run_copy / "results" / "features" / "demo_cxr"
    victim = features / table["backbone"].iloc[0] / str(table["resolution"].iloc[0]) / "test.npy"
    stat = victim.stat()
    flip_byte(victim)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert audit(run_copy, "--all").returncode == 0  # fast mode trusts size + mtime, as documented
    deep = audit(run_copy, "--all", "--deep")
    assert deep.returncode == 1 and "CHANGED" in deep.stdout


def test_unknown_id_is_a_usage_error(run_copy):
    result = audit(run_copy, "0000000000000000")
    assert result.returncode == 2 and "not in" in result.stderr


def test_probe_parameter_change_changes_only_that_probes_provenance(run_copy):
    def chains(table):
        return {pid: json.loads((run_copy / "results" / "provenance" / f"{pid}.json").read_text())["chain"]
                for pid in table.loc[table["probe"] == "knn", "provenance_id"].unique()}

    before = pd.read_csv(run_copy / "results" / "metrics.csv")
    old_upstream = {tuple(r["id"] for r in chain[2:]) for chain in chains(before).values()}
    config = yaml.safe_load((run_copy / "config" / "tiny.yaml").read_text())
    config["probes"]["knn"]["temperature"] = 0.1
    (run_copy / "config" / "changed.yaml").write_text(yaml.safe_dump(config))
    snakemake(run_copy, "--configfile", "config/changed.yaml")
    after = pd.read_csv(run_copy / "results" / "metrics.csv")
    ids_before = before.groupby("probe")["provenance_id"].apply(set)
    ids_after = after.groupby("probe")["provenance_id"].apply(set)
    assert ids_before["logreg"] == ids_after["logreg"]
    assert not ids_before["knn"] & ids_after["knn"]
    new = chains(after)
    assert {tuple(r["id"] for r in chain[2:]) for chain in new.values()} == old_upstream
    assert all(chain[1]["identity"]["params"]["params"]["temperature"] == 0.1 for chain in new.values())
    assert audit(run_copy, "--all").returncode == 0


def test_code_change_reruns_the_rules_that_run_it(run_copy):
    knn = run_copy / "medprobe" / "probes" / "knn.py"
    knn.write_text(knn.read_text() + "\n# an edit\n")
    result = snakemake(run_copy, "--configfile", "config/tiny.yaml", "-n")
    from test_workflow import planned_jobs

    jobs = planned_jobs(result)
    assert "extract_features" not in jobs and "preprocess" not in jobs
    config = yaml.safe_load((run_copy / "config" / "tiny.yaml").read_text())
    n_probe_jobs = len(config["backbones"]) * len(config["resolutions"]) * len(config["probes"])
    assert jobs["probe"] == n_probe_jobs
