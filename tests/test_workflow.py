"""The real DAG under Snakemake: results, reruns, parameter changes, interruption, lint, report."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml

from conftest import REPO, SNAKEMAKE, copy_workflow, snakemake
from medprobe.audit import audit
from medprobe.datasets.registry import get_dataset
from medprobe.probes.registry import get_probe

TINY = ["--configfile", "config/tiny.yaml"]
COLUMNS = ["dataset", "task", "control", "backbone", "resolution", "probe", "shots", "seed", "metric",
           "value", "ci_low", "ci_high", "n_boot", "n_evaluated", "n_total", "provenance_id"]


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    stats = result.stdout.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) != "total"}


def test_metrics_table(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "metrics.csv")
    assert list(table.columns) == COLUMNS
    config = yaml.safe_load((tiny_run / "config" / "tiny.yaml").read_text())
    combos = table[["backbone", "resolution", "probe", "seed"]].drop_duplicates()
    assert len(combos) == len(config["backbones"]) * len(config["resolutions"]) * len(config["probes"])
    assert set(table["task"]) == {"findings", "control"}
    assert set(table.loc[table["control"], "task"]) == {"control"}
    findings = table[table["task"] == "findings"]
    expected = {"auroc", "accuracy", "balanced_accuracy", "f1",
                *(f"auroc[{f}]" for f in ("device", "effusion", "opacity", "nodule"))}
    assert set(findings["metric"]) == expected
    assert (table["ci_low"] <= table["value"] + 1e-9).all() and (table["value"] <= table["ci_high"] + 1e-9).all()
    assert (table["n_evaluated"] == table["n_total"]).all()
    assert not table.duplicated(["dataset", "task", "backbone", "resolution", "probe", "seed", "metric"]).any()


def test_every_row_has_a_provenance_chain_to_the_raw_data(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "metrics.csv")
    for prov_id in table["provenance_id"].unique():
        record = json.loads((tiny_run / "results" / "provenance" / f"{prov_id}.json").read_text())
        stages = [stage["identity"]["stage"] for stage in record["chain"]]
        assert stages == ["evaluate", "probe", "extract_features", "preprocess", "download"]
        download = record["chain"][-1]
        manifest = tiny_run / download["outputs"]["manifest"]["path"]
        from medprobe.hashing import sha256_file

        assert sha256_file(manifest) == download["outputs"]["manifest"]["sha256"]
        extract = record["chain"][2]
        assert extract["extra"]["backbone"]["name"] in {"vit_tiny_random", "pixels"}
        assert extract["identity"]["code"]["sources_sha256"]
        assert extract["identity"]["packages"]["torch"]


def test_figures_and_report(tiny_run):
    for name in ("metric_vs_resolution", "heatmap"):
        for ext in ("png", "pdf"):
            assert (tiny_run / "results" / "figures" / f"{name}.{ext}").stat().st_size > 1000
    snakemake(tiny_run, *TINY, "--report", "results/report.html")
    assert (tiny_run / "results" / "report.html").stat().st_size > 10_000


def test_second_run_does_nothing(tiny_run):
    result = snakemake(tiny_run, *TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_key_order_and_written_defaults_rerun_nothing(tiny_run, tmp_path):
    """The tiny suite with every mapping's keys in another order and defaults written out plans no job: Snakemake
    compares params by their repr, so without sorted keys this reran the whole DAG."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    (workdir / "config" / "tiny.yaml").write_text("""
evaluate: {n_bootstrap: 50}
extract: {num_workers: 0, batch_size: 16}
preprocess: {resize_policy: pad, size: 64}
seeds: [0]
probes:
  logreg: {c_num: 5}
  knn: {temperature: 0.07, k: [5]}
resolutions: [32, 48]
backbones: [vit_tiny_random, pixels]
datasets:
  demo_cxr: {seed: 7, n_patients: 60}
""")
    result = snakemake(workdir, *TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr, planned_jobs(result)
    shutil.rmtree(workdir / "data")


def test_probe_parameter_change_reruns_only_downstream(tiny_run):
    config = yaml.safe_load((tiny_run / "config" / "tiny.yaml").read_text())
    config["probes"]["knn"]["temperature"] = 0.1
    (tiny_run / "config" / "changed.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(tiny_run, "--configfile", "config/changed.yaml", "-n"))
    n_knn = len(config["backbones"]) * len(config["resolutions"])
    assert jobs == {"probe": n_knn, "evaluate": n_knn, "aggregate": 1, "figures": 1, "crate": 1, "all": 1}


def test_lint_and_default_dry_run(workflow_dir):
    lint = snakemake(workflow_dir, "--lint")
    assert "Congratulations" in lint.stdout + lint.stderr
    jobs = planned_jobs(snakemake(workflow_dir, "-n"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    n_extract = n_probe = n_segment = 0
    for name, options in config["datasets"].items():
        entry = get_dataset(options.get("base", name))
        grid = len(config["backbones"]) * len(options.get("resolutions", config["resolutions"]))
        kinds = {task["type"] == "segmentation" for task in entry["tasks"].values()}
        for probe in config["probes"]:
            spec = get_probe(probe)
            if entry["dimensionality"] in spec["dims"] and (spec["kind"] == "segmentation") in kinds:
                seeds = len(config["probes"][probe].get("seeds", config["seeds"]))
                if spec["kind"] == "segmentation":
                    n_segment += grid * seeds
                else:
                    n_probe += grid * seeds
        n_extract += grid if False in kinds else 0
    assert jobs["extract_features"] == n_extract
    assert jobs["probe"] + jobs.get("probe_bags", 0) == jobs["evaluate"] == n_probe
    assert jobs["segment"] == jobs["evaluate_segmentation"] == n_segment  # every default backbone has patch tokens


def test_snakefmt_clean():
    snakefmt = Path(SNAKEMAKE).with_name("snakefmt")
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


SECRET = "hf_medprobe_test_secret_4c1d"


def test_killed_run_resumes_to_identical_results(tiny_run, tmp_path):
    """kill -9 during extraction, unlock, resume: same bytes as the uninterrupted run.

    The run also has HF_TOKEN set to a known string, which must appear in no file it writes.
    """
    workdir = copy_workflow(tmp_path)
    secret_env = {"HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    process = subprocess.Popen([SNAKEMAKE, "--cores", "2", *TINY], cwd=workdir,
                               env={**os.environ, **secret_env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    features = workdir / "results" / "features"
    while time.monotonic() < deadline and process.poll() is None:
        if features.exists() and any(features.rglob("*.npy*")) or any(features.rglob(".*partial*")):
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (workdir / "results" / "metrics.csv").exists()
    snakemake(workdir, *TINY, "--unlock")
    snakemake(workdir, *TINY, "--rerun-incomplete", env=secret_env)
    assert (workdir / "results" / "metrics.csv").read_bytes() == (tiny_run / "results" / "metrics.csv").read_bytes()
    written = [p for folder in ("results", "logs", ".snakemake/log")
               for p in (workdir / folder).rglob("*") if p.is_file()]
    assert len(written) > 50
    leaks = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert not leaks
    shutil.rmtree(workdir / "data")  # keep the temporary folder small


def test_adding_the_linear_probe_runs_only_its_jobs(tiny_run, tmp_path):
    """A probe added to a finished run: its probe and evaluate jobs per seed, nothing upstream; its rows carry
    the learning rate it chose on validation."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    config["probes"]["linear"] = {"lrs": [0.01, 0.1], "epochs": 5, "batch_size": 16, "seeds": [0, 1]}
    (workdir / "config" / "linear.yaml").write_text(yaml.safe_dump(config))
    n_heads = len(config["backbones"]) * len(config["resolutions"]) * 2
    jobs = planned_jobs(snakemake(workdir, "--configfile", "config/linear.yaml", "-n"))
    assert jobs == {"probe": n_heads, "evaluate": n_heads, "aggregate": 1, "figures": 1, "crate": 1, "all": 1}
    snakemake(workdir, "--configfile", "config/linear.yaml")
    table = pd.read_csv(workdir / "results" / "metrics.csv")
    linear = table[table["probe"] == "linear"]
    assert set(linear["seed"]) == {0, 1} and set(linear["task"]) == {"findings", "control"}
    before = pd.read_csv(tiny_run / "results" / "metrics.csv")
    pd.testing.assert_frame_equal(table[table["probe"] != "linear"].reset_index(drop=True), before)
    for prov_id in linear["provenance_id"].unique():
        record = json.loads((workdir / "results" / "provenance" / f"{prov_id}.json").read_text())
        probe = record["chain"][1]
        assert probe["identity"]["params"]["params"]["lrs"] == [0.01, 0.1]
        for task in ("findings", "control"):
            assert probe["extra"]["selection"][task]["chosen_lr"] in (0.01, 0.1)
    findings = linear[(linear["task"] == "findings") & (linear["metric"] == "auroc")]
    assert (findings["value"] > 0.5).all(), findings
    shutil.rmtree(workdir / "data")


def test_adding_the_few_shot_probe_runs_only_its_jobs(tiny_run, tmp_path):
    """A few-shot probe added to a finished run: its probe and evaluate jobs per draw and the curves; one row set
    per shot count, the draw recorded in provenance and shared by every backbone and resolution."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    config["probes"]["fewshot"] = {"shots": [1, 4], "seeds": [0, 1]}
    (workdir / "config" / "fewshot.yaml").write_text(yaml.safe_dump(config))
    n_draws = len(config["backbones"]) * len(config["resolutions"]) * 2
    jobs = planned_jobs(snakemake(workdir, "--configfile", "config/fewshot.yaml", "-n"))
    assert jobs == {"probe": n_draws, "evaluate": n_draws, "aggregate": 1, "figures": 1, "fewshot_figure": 1,
                    "crate": 1, "all": 1}
    snakemake(workdir, "--configfile", "config/fewshot.yaml")
    table = pd.read_csv(workdir / "results" / "metrics.csv", dtype={"shots": "Int64"})
    assert list(table.columns) == COLUMNS
    few_shot = table[table["probe"] == "fewshot"]
    assert set(few_shot["shots"]) == {1, 4} and set(few_shot["seed"]) == {0, 1}
    assert table.loc[table["probe"] != "fewshot", "shots"].isna().all()
    before = pd.read_csv(tiny_run / "results" / "metrics.csv")
    pd.testing.assert_frame_equal(table[table["probe"] != "fewshot"].drop(columns="shots").reset_index(drop=True),
                                  before.drop(columns="shots"), check_dtype=False)
    units = {}
    for prov_id in few_shot["provenance_id"].unique():
        record = json.loads((workdir / "results" / "provenance" / f"{prov_id}.json").read_text())
        probe = record["chain"][1]
        assert "val" not in probe["inputs"]
        seed = probe["identity"]["params"]["seed"]
        drawn = {task: {n: probe["extra"]["selection"][task]["shots"][n]["units"] for n in ("1", "4")}
                 for task in ("findings", "control")}
        assert set(drawn["findings"]["1"]) <= set(drawn["findings"]["4"])
        assert units.setdefault(seed, drawn) == drawn  # the same patients for every backbone and resolution
    assert units[0] != units[1]
    assert (workdir / "results" / "figures" / "fewshot.png").stat().st_size > 0
    report = audit(workdir, ids=list(few_shot["provenance_id"].unique()))
    assert report.ok and any("/fewshot/4shot/seed1: auroc" in row for rows in report.rows_by_id.values()
                             for row in rows)
    shutil.rmtree(workdir / "data")


def test_ruff_clean():
    ruff = Path(SNAKEMAKE).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
