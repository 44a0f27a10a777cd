"""Time Snakemake's DAG building for a large grid (dry run), as a user of a big cluster would see.

Grid: 20 dataset instances x 7 backbones x 4 resolutions x 2 probes x 12 seeds = 13,440 probe
jobs (and as many evaluate jobs) over 560 extraction jobs. Nothing is computed: the workflow is
copied to a temporary folder and `snakemake -n` is timed there, once with the local executor and
once with the SLURM profile (job grouping included). The last line prints the slower of the two.

    python benchmarks/dag_scale.py [--datasets 20] [--seeds 12]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ["vit_tiny_random", "vit_small_random", "vit_base_random", "vit_large_random",
             "dinov2_vits14_random", "dinov3_vits16_random", "pixels"]
RESOLUTIONS = [112, 224, 336, 448]  # multiples of both patch sizes (14 and 16)


def dry_run(workdir: Path, *args: str) -> tuple[float, dict[str, int]]:
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    result = subprocess.run([snakemake, "-n", "--cores", "2", "--quiet", "rules", *args],
                            cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
    stats = result.stdout.split("Job stats:")[-1]
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    return elapsed, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=12)
    args = parser.parse_args()
    config = {
        "datasets": {f"demo_{i:02d}": {"base": "demo_cxr", "seed": i} for i in range(args.datasets)},
        "backbones": BACKBONES,
        "resolutions": RESOLUTIONS,
        "probes": {"knn": {}, "logreg": {}},
        "seeds": list(range(args.seeds)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in ("Snakefile", "workflow", "config", "profiles", "envs", "medprobe"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, workdir / name)
        (workdir / "config" / "scale.yaml").write_text(yaml.safe_dump(config))
        local, jobs = dry_run(workdir, "--configfile", "config/scale.yaml")
        slurm, _ = dry_run(workdir, "--configfile", "config/scale.yaml", "--profile", "profiles/slurm")
    print(f"grid: {args.datasets} datasets x {len(BACKBONES)} backbones x {len(RESOLUTIONS)} resolutions "
          f"x 2 probes x {args.seeds} seeds")
    print("jobs: " + ", ".join(f"{rule}={n}" for rule, n in jobs.items()))
    print(f"dry run, local executor: {local:.1f} s")
    print(f"dry run, SLURM profile with grouping: {slurm:.1f} s")
    print(f"DAG building (slowest dry run): {max(local, slurm):.1f} s for {jobs.get('total', 0)} jobs")


if __name__ == "__main__":
    main()
