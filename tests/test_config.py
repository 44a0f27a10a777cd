"""Config validation: typos fail naming the key; defaults fill in; registry names are checked."""

import pytest
import yaml

from conftest import REPO, snakemake
from medprobe.config import ConfigError, load_config, validate_config


def test_default_config_is_valid():
    load_config(REPO / "config" / "config.yaml")


def test_unknown_nested_key_is_named():
    config = yaml.safe_load(open(REPO / "config" / "config.yaml"))
    config["preprocess"]["sise"] = 128
    with pytest.raises(ConfigError, match=r"preprocess: .*'sise' was unexpected"):
        validate_config(config)


def test_wrong_type_is_named():
    config = yaml.safe_load(open(REPO / "config" / "config.yaml"))
    config["resolutions"] = ["224"]
    with pytest.raises(ConfigError, match=r"resolutions/0: '224' is not of type 'integer'"):
        validate_config(config)


def dry_run_variant(workflow_dir, name, change, check=False):
    """Dry-run the tiny suite after `change(config)` edits a copy of it."""
    config = yaml.safe_load((workflow_dir / "config" / "tiny.yaml").read_text())
    change(config)
    (workflow_dir / "config" / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return snakemake(workflow_dir, "-n", "--configfile", f"config/{name}.yaml", check=check)


def test_snakemake_rejects_typo_naming_the_key(workflow_dir):
    def change(config):
        config["extract"]["batchsize"] = 8

    result = dry_run_variant(workflow_dir, "typo", change)
    assert result.returncode != 0
    assert "'batchsize' was unexpected" in result.stdout + result.stderr


def test_snakemake_rejects_unknown_backbone(workflow_dir):
    def change(config):
        config["backbones"] = ["vit_tiny_randm"]

    result = dry_run_variant(workflow_dir, "bad", change)
    assert result.returncode != 0
    assert "unknown backbone 'vit_tiny_randm'. Did you mean vit_tiny_random" in result.stdout + result.stderr


def test_schema_defaults_fill_missing_sections(workflow_dir):
    minimal = {"datasets": {"demo_cxr": {"n_patients": 30}}, "backbones": ["pixels"],
               "resolutions": [32], "probes": {"knn": {}}}
    (workflow_dir / "config" / "minimal.yaml").write_text(yaml.safe_dump(minimal))
    result = snakemake(workflow_dir, "-n", "--configfile", "config/minimal.yaml")
    assert "probe" in result.stdout


def test_resolution_not_a_multiple_of_the_patch_size_is_named(workflow_dir):
    def change(config):
        config["backbones"] = ["dinov2_vits14_random"]

    result = dry_run_variant(workflow_dir, "patch", change)
    assert result.returncode != 0
    assert "resolutions [32, 48] are not multiples of backbone 'dinov2_vits14_random' patch size 14" in (
        result.stdout + result.stderr)


def test_dataset_instance_of_a_registry_entry(workflow_dir):
    def change(config):
        config["datasets"]["demo_small"] = {"base": "demo_cxr", "n_patients": 30, "seed": 1}

    result = dry_run_variant(workflow_dir, "two", change, check=True)
    assert "data/raw/demo_small/manifest.tsv" in result.stdout
