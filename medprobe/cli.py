"""`medprobe` command line: inspect registries, check configs, audit metrics against the bytes on disk."""

from __future__ import annotations

import argparse
import json
import sys

from medprobe import __version__


def cmd_list(args) -> int:
    from medprobe.backbones.registry import BACKBONES
    from medprobe.datasets.registry import DATASETS
    from medprobe.probes.registry import PROBES

    registry = {"datasets": DATASETS, "backbones": BACKBONES, "probes": PROBES}[args.what]
    for name, entry in sorted(registry.items()):
        summary = entry.get("description") or entry.get("model") or entry.get("modality") or entry.get("source")
        print(f"{name:24s} {summary}")
    return 0


def cmd_check_config(args) -> int:
    from medprobe.config import ConfigError, load_config

    try:
        load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"{args.config}: valid")
    return 0


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
    listing = sub.add_parser("list", help="list registry entries")
    listing.add_argument("what", choices=["datasets", "backbones", "probes"])
    listing.set_defaults(func=cmd_list)
    check = sub.add_parser("check-config", help="validate a config file against the schema")
    check.add_argument("config")
    check.set_defaults(func=cmd_check_config)
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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
