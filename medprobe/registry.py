"""One lookup for every registry (datasets, backbones, probes): plain dicts, friendly errors."""

from __future__ import annotations

import difflib
import importlib


class UnknownEntryError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message quoted
        return self.args[0]


def lookup(registry: dict, kind: str, name: str) -> dict:
    try:
        return registry[name]
    except KeyError:
        close = difflib.get_close_matches(name, registry, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownEntryError(
            f"unknown {kind} '{name}'.{hint} Known: {', '.join(sorted(registry))}"
        ) from None


def resolve(dotted: str):
    """'package.module:attribute' -> the attribute; lets registries stay plain data."""
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)
