"""`medprobe` command line: inspect registries, check configs, show a metric's provenance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


def cmd_provenance(args) -> int:
    path = Path(args.results) / "provenance" / f"{args.id}.json"
    if not path.exists():
        print(f"no provenance record {path}", file=sys.stderr)
        return 2
    record = json.loads(path.read_text())
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for depth, stage in enumerate(reversed(record["chain"])):
        ident = stage["identity"]
        print(f"{'  ' * depth}{ident['stage']} [{stage['id']}] rule={stage['run']['rule']} "
              f"host={stage['run']['host']} {stage['run']['started']}")
        for name, entry in {**stage["inputs"], **stage["outputs"]}.items():
            print(f"{'  ' * depth}  {name}: {entry['path']} sha256={entry['sha256'][:16]}")
    return 0


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
    prov = sub.add_parser("provenance", help="print the lineage of a metric row's provenance_id")
    prov.add_argument("id")
    prov.add_argument("--results", default="results")
    prov.add_argument("--json", action="store_true")
    prov.set_defaults(func=cmd_provenance)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
