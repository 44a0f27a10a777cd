"""`medprobe` command line: inspect registries, check configs, audit metrics against the bytes on disk."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from medprobe import __version__


def cmd_probes(args) -> int:
    from medprobe.probes.registry import PROBES

    for name, entry in sorted(PROBES.items()):
        print(f"{name:10s} {entry['description']}")
    return 0


BACKBONE_COLUMNS = {"name": "name", "source": "source", "model": "model", "params_m": "params (M)",
                    "embed_dim": "embed dim", "patch_size": "patch", "native_resolution": "native res",
                    "license": "license", "gating": "gating"}
DATASET_COLUMNS = {"name": "name", "modality": "modality", "dimensionality": "dim", "tasks": "tasks",
                   "source": "source", "access": "access", "size": "size", "license": "license"}


def backbone_rows() -> list[dict]:
    from medprobe.backbones.registry import BACKBONES

    rows = []
    for name, entry in BACKBONES.items():
        model = entry.get("model")
        if model and entry.get("pretrained_tag"):
            model = f"{model}{'.' if entry['source'] == 'timm' else '/'}{entry['pretrained_tag']}"
        rows.append({key: entry.get(key) for key in BACKBONE_COLUMNS} | {"name": name, "model": model})
    return rows


def dataset_rows() -> list[dict]:
    from medprobe.datasets.registry import DATASETS

    rows = []
    for name, entry in DATASETS.items():
        tasks = ", ".join(f"{task} ({spec['type']}, {len(spec['labels'])})" for task, spec in entry["tasks"].items())
        rows.append({key: entry.get(key) for key in DATASET_COLUMNS}
                    | {"name": name, "tasks": tasks, "source": entry["source"]["kind"]})
    return rows


def print_table(rows: list[dict], columns: dict[str, str], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    cells = [list(columns.values())]
    cells += [["-" if row[key] is None else str(row[key]) for key in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def cmd_backbones(args) -> int:
    return print_table(backbone_rows(), BACKBONE_COLUMNS, args.json)


def cmd_datasets(args) -> int:
    return print_table(dataset_rows(), DATASET_COLUMNS, args.json)


def cmd_check_config(args) -> int:
    from medprobe.config import ConfigError, load_config

    try:
        load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"{args.config}: valid")
    return 0


def cmd_validate(args) -> int:
    """Every user dataset of a config checked row by row, as its download stage will: exit 1 when a run would stop."""
    from medprobe.config import ConfigError, load_config
    from medprobe.datasets.registry import get_dataset, resolve_options
    from medprobe.datasets.user_table import UserDatasetError, validate

    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    status = 0
    for name, options in config["datasets"].items():
        base = options.get("base", name)
        try:
            if "build" not in get_dataset(base):
                print(f"{name}: registry dataset '{base}', checked by its adapter when it is downloaded\n")
                continue
            resolved = resolve_options(base, {k: v for k, v in options.items() if k != "base"})
            report, _, _ = validate(resolved, read_files=not args.quick)
        except (UserDatasetError, ValueError) as err:
            print(f"{name}: {err}\n", file=sys.stderr)
            status = 2
            continue
        policy = resolved["on_invalid"]
        fatal = [p for p in report.problems if policy == "fail" or p.dataset_level]
        verdict = (f"a run stops here ({len(fatal)} problem(s) not allowed by on_invalid: {policy})" if fatal else
                   f"a run skips and counts {len(report.bad_rows)} row(s)" if report.problems else "ready")
        print(f"{name}:\n{report.format()}\n=> {verdict}\n")
        status = max(status, 1 if fatal else 0)
    return status


def cmd_audit(args) -> int:
    from medprobe.audit import audit, render_problems, render_tree

    if not args.ids and not args.all:
        print("give one or more provenance ids, or --all", file=sys.stderr)
        return 2
    try:
        report = audit(args.workdir, ids=None if args.all else args.ids, deep=args.deep)
    except (FileNotFoundError, KeyError) as err:
        print(f"medprobe audit: {err.args[0]}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        if not args.all:
            for prov_id in report.ids:
                print(render_tree(report, prov_id))
                print()
        print(render_problems(report))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"medprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = sub.add_parser("datasets", help="table of the dataset registry: modality, tasks, access, size, license")
    datasets.add_argument("--json", action="store_true", help="machine-readable list of rows")
    datasets.set_defaults(func=cmd_datasets)
    backbones = sub.add_parser("backbones", help="table of the backbone registry: model, size, license, gating")
    backbones.add_argument("--json", action="store_true", help="machine-readable list of rows")
    backbones.set_defaults(func=cmd_backbones)
    probes = sub.add_parser("probes", help="list the probes")
    probes.set_defaults(func=cmd_probes)
    check = sub.add_parser("check-config", help="validate a config file against the schema")
    check.add_argument("config")
    check.set_defaults(func=cmd_check_config)
    check_data = sub.add_parser(
        "validate", help="check every row of a config's own datasets (user_table) before any heavy work",
        description="Reads every file of each user dataset with the readers preprocessing uses and prints its items "
                    "per split and class, modalities, sizes and every problem, naming row and file. Exit 0 when a "
                    "run would go ahead, 1 when it would stop on a problem, 2 on an unusable config or declaration.")
    check_data.add_argument("config")
    check_data.add_argument("--quick", action="store_true",
                            help="only check that files exist, without opening them")
    check_data.set_defaults(func=cmd_validate)
    check_audit = sub.add_parser(
        "audit", help="verify metrics against the bytes on disk through their provenance chains",
        description="Exit 0 when every artifact behind the metrics is intact, 1 naming each changed or "
                    "missing artifact and the metric rows that depend on it, 2 on usage errors.")
    check_audit.add_argument("ids", nargs="*", help="provenance ids (a column of results/metrics.csv)")
    check_audit.add_argument("--all", action="store_true", help="every row of results/metrics.csv")
    check_audit.add_argument("--json", action="store_true", help="machine-readable report")
    check_audit.add_argument("--deep", action="store_true",
                             help="rehash every file, even those whose size and mtime are unchanged")
    check_audit.add_argument("--workdir", default=".", help="the workflow's working directory")
    check_audit.set_defaults(func=cmd_audit)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `medprobe datasets | head` ends quietly
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
