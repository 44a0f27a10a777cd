"""The study suites: each dry-runs offline, lists every job of its grid, and downloads nothing."""

import re

import pytest
import yaml

from conftest import REPO, snakemake
from medprobe.backbones.registry import get_backbone
from medprobe.datasets.registry import get_dataset, resolve_options

SUITES = sorted((REPO / "config" / "suites").glob("*.yaml"))
# Any attempt to reach the network during DAG building fails fast through this dead proxy.
OFFLINE = {"HF_HUB_OFFLINE": "1", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def test_the_three_studies_have_suites():
    assert {s.stem for s in SUITES} >= {"dinov3-medical", "dinov2-radiology", "medmnist-plus"}


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.stem)
def test_suite_names_resolve_in_the_registries(suite):
    config = yaml.safe_load(suite.read_text())
    for name, options in config["datasets"].items():
        base = options.get("base", name)
        assert get_dataset(base)["dimensionality"] in {"2d", "3d", "wsi"}
        resolve_options(base, {k: v for k, v in options.items() if k != "base"})
    for name in config["backbones"]:
        patch = get_backbone(name).get("patch_size")
        assert not patch or all(res % patch == 0 for res in config["resolutions"]), (name, patch)


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.stem)
def test_suite_dry_runs_offline(suite, workflow_dir):
    config = yaml.safe_load(suite.read_text())
    result = snakemake(workflow_dir, "-n", "--configfile", f"config/suites/{suite.name}", env=OFFLINE)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    n_datasets, n_backbones = len(config["datasets"]), len(config["backbones"])
    n_res = len(config["resolutions"])
    n_runs = sum(len(params.get("seeds", config.get("seeds", [0]))) for params in config["probes"].values())
    assert int(counts["download"]) == int(counts["preprocess"]) == n_datasets
    assert int(counts["extract_features"]) == n_datasets * n_backbones * n_res
    assert int(counts["probe"]) + int(counts.get("probe_bags", 0)) == n_datasets * n_backbones * n_res * n_runs
    assert not (workflow_dir / "data").exists() and not (workflow_dir / "results").exists()
