"""Helpers shared by the workflow: registry checks, target lists, input and params functions."""

import sys

# The medprobe package beside this Snakefile, even when Snakemake runs from an env without it.
sys.path.insert(0, workflow.basedir)

import os

from medprobe.backbones.registry import get_backbone
from medprobe.codedeps import import_closure
from medprobe.datasets.registry import get_dataset
from medprobe.registry import UnknownEntryError


def check_registry_names():
    """Unknown dataset or backbone names fail at DAG build, naming the config key."""
    try:
        for name in config["datasets"]:
            get_dataset(name)
        for name in config["backbones"]:
            get_backbone(name)
    except UnknownEntryError as err:
        raise ValueError(f"config: {err}") from None


check_registry_names()

DATASETS = sorted(config["datasets"])
BACKBONES = config["backbones"]
RESOLUTIONS = [str(res) for res in config["resolutions"]]
PROBES = sorted(config["probes"])
SEEDS = [str(seed) for seed in config["seeds"]]
SPLITS = ["train", "val", "test"]
FIGURES = ["metric_vs_resolution", "heatmap"]


def stage_code(module):
    """The medprobe files a stage runs, as inputs: editing one reruns that stage's jobs."""
    cwd = os.getcwd()
    return [
        os.path.relpath(path, cwd) if str(path).startswith(cwd + os.sep) else str(path)
        for path in import_closure(module)
    ]


def dataset_options(wildcards):
    return config["datasets"][wildcards.dataset]


def probe_params(wildcards):
    """Only this probe's parameters, so editing one probe reruns only its jobs."""
    return config["probes"][wildcards.probe]


def evaluation_targets():
    return expand(
        "results/evaluate/{dataset}/{backbone}/{res}/{probe}/seed{seed}/metrics.csv",
        dataset=DATASETS,
        backbone=BACKBONES,
        res=RESOLUTIONS,
        probe=PROBES,
        seed=SEEDS,
    )
