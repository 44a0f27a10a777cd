"""The per-rule conda environments pin what `make` installs: a stage never meets another version under --sdm conda."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LOCK = {name.lower().replace("_", "-"): version
        for name, _, version in (line.strip().partition("==")
                                 for line in (REPO / "requirements.lock").read_text().splitlines()
                                 if "==" in line and not line.startswith("#"))}


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_pip_pins_match_the_lock(env):
    spec = yaml.safe_load(env.read_text())
    pins = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
    for pin in pins:
        name, _, version = pin.partition("==")
        assert LOCK.get(name.lower().replace("_", "-")) == version, (env.name, pin)


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_conda_pins_match_the_lock(env):
    """conda-forge names these packages as PyPI does; a version the lock lacks belongs in the pip list."""
    spec = yaml.safe_load(env.read_text())
    pins = [item for item in spec["dependencies"] if isinstance(item, str)]
    for pin in pins:
        name, _, version = pin.partition("=")
        if name not in ("python", "pip"):
            assert LOCK.get(name) == version, (env.name, pin)


def test_every_rule_env_exists():
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        for line in rules.read_text().splitlines():
            if line.strip().startswith('"../../envs/'):
                assert (REPO / "workflow" / "rules" / line.strip().strip('"')).resolve().is_file(), line
