"""Config validation outside Snakemake (the CLI and tests use the workflow's own schema)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def validate_config(config: dict, source: str = "config") -> None:
    """Raise ConfigError naming the offending key path, e.g. `preprocess: 'sise' was unexpected`."""
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(lines))


def sort_keys(config: dict) -> None:
    """Sort, in place, the keys of every mapping in a validated config except the order of its datasets.

    Snakemake compares a job's params by their repr, so two configs that differ only in the order of keys (a key
    moved, or a default written out, which the schema's defaults then place elsewhere) would rerun every job.
    The datasets keep the order they are listed in, which the figures and reports follow.
    """
    def sorted_mapping(value):
        if isinstance(value, dict):
            return {key: sorted_mapping(value[key]) for key in sorted(value)}
        if isinstance(value, list):
            return [sorted_mapping(item) for item in value]
        return value

    for key, value in list(config.items()):
        config[key] = ({name: sorted_mapping(options) for name, options in value.items()} if key == "datasets"
                       else sorted_mapping(value))


def validate_dataset_options(options: dict, source: str) -> None:
    """One dataset's options (a user dataset's YAML spec file) against the config schema's dataset section."""
    schema = yaml.safe_load(SCHEMA.read_text())
    section = {**schema["properties"]["datasets"]["additionalProperties"], "$defs": schema["$defs"]}
    errors = sorted(jsonschema.Draft202012Validator(section).iter_errors(options), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}" for e in errors]
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(lines))


def load_config(path: str | Path) -> dict:
    config = yaml.safe_load(Path(path).read_text()) or {}
    validate_config(config, str(path))
    return config
