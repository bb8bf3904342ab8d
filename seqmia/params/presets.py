"""Presets and overrides: dotted ``params.yaml`` keys and their values, checked against the schema.

A preset is a small YAML file of such keys (``presets/``); the suite turns each into ``dvc exp run
-S key=value`` overrides after checking them; a sweep gives one key several values. The tables
of their results are ``seqmia.audit.tables``.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from seqmia.params.schema import ParamsError, clip, parse_document, read_document
from seqmia.params.whole import Params, params_from_dict

PRESETS_DIR = Path("presets")
METRICS_FILE = "eval/metrics.json"


def load_preset(name: str, folder: Path) -> dict[str, Any]:
    """The dotted-key overrides of ``folder/<name>.yaml``; ``ParamsError`` if missing or not a
    flat mapping."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ParamsError(f"no preset {name!r} at {path.resolve()}; presets: {known}")
    overrides = read_document(path) or {}
    if not isinstance(overrides, dict) or any(isinstance(v, dict) for v in overrides.values()):
        raise ParamsError(f"preset {path} must be a flat mapping of dotted keys to values")
    return overrides


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the parsed params document with each dotted key set; unknown keys refused."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                where = ".".join(parents[:depth]) or "params.yaml"
                sections = sorted((k for k, v in node.items() if isinstance(v, dict)), key=str)
                raise ParamsError(
                    f"override key '{clip(dotted)}': {where} has no section '{clip(part)}'; "
                    f"its sections: {sections}"
                )
            node = node[part]
        if leaf not in node:
            where = f"section '{'.'.join(parents)}'" if parents else "params.yaml's top level"
            raise ParamsError(
                f"override key '{clip(dotted)}' is not a params.yaml key; "
                f"{where} has: {', '.join(sorted(map(str, node)))}"
            )
        node[leaf] = value
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` command-line overrides as ``dvc exp run -S`` reads them: each value is YAML
    1.2 (``5e-3`` is a number, ``yes`` a string, ``[a, b]`` a list), read by the params reader
    (``parse_document``: bounded, no anchors or aliases), so a value means what it will mean
    once written into params.yaml."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(
                f"override {clip(repr(item))} must look like KEY=VALUE, e.g. attack.lr=5e-3"
            )
        # surrogateescape: bytes of the command line that are not UTF-8 come back as they were,
        # and are refused by the reader with their offset
        data = value.encode("utf-8", "surrogateescape")
        source = f"override {clip(key.strip(), 60)}"
        overrides[key.strip()] = parse_document(data, source) if value.strip() else None
    return overrides


def check_preset(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> Params:
    """Validate params.yaml with ``overrides`` applied, as every stage will."""
    return params_from_dict(apply_overrides(raw, overrides))


def set_arguments(overrides: Mapping[str, Any]) -> list[str]:
    """``dvc exp run`` arguments: ``-S key=value`` per override, values in YAML 1.2 flow style,
    the dialect DVC reads them in (a YAML 1.1 writer leaves ``0o17`` or ``1e3`` unquoted, which
    DVC would read as numbers)."""
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = True
    writer.width = 10**6  # one line per value
    args: list[str] = []
    for key, value in overrides.items():
        buffer = io.StringIO()
        writer.dump(value, buffer)
        text = buffer.getvalue().strip().removesuffix("\n...").removesuffix("...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``"distill.epochs=5,10,20"`` -> ("distill.epochs", [5, 10, 20]); values are YAML, and
    commas inside brackets stay with their value (``metrics=[loss],[loss,sd]``)."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise ParamsError(f"--sweep takes KEY=V1,V2,…, got {clip(repr(text))}")
    items, depth, start = [], 0, 0
    for i, char in enumerate(values + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(values[start:i])
            start = i + 1
    source = f"--sweep {clip(key.strip(), 60)}"
    return key.strip(), [
        parse_document(v.encode("utf-8", "surrogateescape"), source) for v in items
    ]
