"""Helpers shared by the workflow: registry checks, target lists, input and params functions."""

import sys

# The medprobe package beside this Snakefile, even when Snakemake runs from an env without it.
sys.path.insert(0, workflow.basedir)

from medprobe.backbones.registry import get_backbone
from medprobe.codedeps import code_sha256
from medprobe.datasets.registry import get_dataset, resolve_options
from medprobe.registry import UnknownEntryError


def check_registry_names():
    """Unknown dataset or backbone names, or options a dataset does not take, fail at DAG build."""
    try:
        for name, options in config["datasets"].items():
            base = options.get("base", name)
            resolve_options(base, {k: v for k, v in options.items() if k != "base"})
        for name in config["backbones"]:
            get_backbone(name)
    except (UnknownEntryError, ValueError) as err:
        raise ValueError(f"config: {err}") from None


def check_resolutions():
    """A ViT needs an input side that is a multiple of its patch size."""
    for name in config["backbones"]:
        patch = get_backbone(name).get("patch_size")
        bad = [res for res in config["resolutions"] if patch and res % patch]
        if bad:
            raise ValueError(
                f"config: resolutions {bad} are not multiples of backbone '{name}' patch size "
                f"{patch}; use e.g. {[max(patch, round(r / patch) * patch) for r in bad]}"
            )


check_registry_names()
check_resolutions()

DATASETS = sorted(config["datasets"])
BACKBONES = config["backbones"]
RESOLUTIONS = [str(res) for res in config["resolutions"]]
PROBES = sorted(config["probes"])
SEEDS = [str(seed) for seed in config["seeds"]]
SPLITS = ["train", "val", "test"]
FIGURES = ["metric_vs_resolution", "heatmap"]


def code_digest(*modules):
    """sha256 of the medprobe files a stage runs, as a param: editing one reruns exactly the rules
    that run it (Snakemake tracks a rule's script, not the modules the script imports). A param,
    not inputs, keeps a 27,000-job DAG fast to build and ignores touches that change no byte.
    """
    return code_sha256(*modules)


def preprocess_code(wildcards):
    """The preprocess stage's code plus the adapter it loads by name for this dataset."""
    adapter = get_dataset(dataset_registry_name(wildcards))["adapter"]
    return code_digest("medprobe.stages.preprocess", adapter)


def extraction_scale(wildcards):
    """Relative compute of one extraction job: tokens per image x model size, against a ViT-S at 224 px."""
    entry = get_backbone(wildcards.backbone)
    tokens = (int(wildcards.res) / entry.get("patch_size", 16)) ** 2
    return tokens / 196 * entry.get("params_m", 22) / 22


def extraction_mem_mb(wildcards, attempt):
    """Host memory: 4 GB base (batch, arrays), the fp32 weights, activations; grows with each retry."""
    entry = get_backbone(wildcards.backbone)
    tokens = (int(wildcards.res) / entry.get("patch_size", 16)) ** 2
    activations = 2000 * tokens / 196 * entry.get("embed_dim", 384) / 384
    return int((4000 + 4 * entry.get("params_m", 0) + activations) * attempt)


def extraction_runtime(wildcards, attempt):
    """Minutes: generous for CPU runs of big grids; doubles with each retry."""
    return int((30 + 30 * extraction_scale(wildcards)) * 2 ** (attempt - 1))


def small_job_mem_mb(wildcards, attempt):
    return 2000 * attempt


def small_job_runtime(wildcards, attempt):
    return 20 * attempt


def dataset_registry_name(wildcards):
    """A dataset's registry entry: its own name, or the `base` it is an instance of."""
    return config["datasets"][wildcards.dataset].get("base", wildcards.dataset)


def dataset_options(wildcards):
    return config["datasets"][wildcards.dataset]


def local_weights_file(wildcards):
    """A configured local weights file is an input, so replacing it reruns that backbone's extraction."""
    path = config["weights"]["files"].get(wildcards.backbone)
    return [path] if path else []


def weights_params(wildcards):
    return {
        "cache_dir": config["weights"]["cache_dir"],
        "file": config["weights"]["files"].get(wildcards.backbone),
    }


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
