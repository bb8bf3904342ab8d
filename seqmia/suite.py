"""Presets and the suite's results table: plain data helpers (no DVC, no Prefect).

A preset is a small YAML file of dotted ``params.yaml`` keys and their values (``presets/``); the
suite turns each into ``dvc exp run -S key=value`` overrides, checks them against the schema first,
and collects each experiment's ``eval/metrics.json`` from ``dvc exp show --json`` into one table.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from seqmia.config import Params, ParamsError, params_from_dict

PRESETS_DIR = Path("presets")
METRICS_FILE = "eval/metrics.json"


def load_preset(name: str, folder: Path = PRESETS_DIR) -> dict[str, Any]:
    """The dotted-key overrides of ``folder/<name>.yaml``; ``ParamsError`` if missing or not a
    flat mapping."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ParamsError(f"no preset {name!r} at {path.resolve()}; presets: {known}")
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict) or any(isinstance(v, dict) for v in overrides.values()):
        raise ParamsError(f"preset {path} must be a flat mapping of dotted keys to values")
    return overrides


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the parsed params document with each dotted key set; unknown keys refused."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"preset key '{dotted}': params.yaml has no section '{part}'")
            node = node[part]
        if leaf not in node:
            raise ParamsError(f"preset key '{dotted}' is not a params.yaml key")
        node[leaf] = value
    return out


def check_preset(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> Params:
    """Validate params.yaml with ``overrides`` applied, as every stage will."""
    return params_from_dict(apply_overrides(raw, overrides))


def set_arguments(overrides: Mapping[str, Any]) -> list[str]:
    """``dvc exp run`` arguments: ``-S key=value`` per override, values in YAML flow style."""
    args: list[str] = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def _experiment_records(node: Any) -> Iterator[dict]:
    """Every record with a ``name`` and a ``data`` mapping in ``dvc exp show --json`` output."""
    if isinstance(node, dict):
        if isinstance(node.get("data"), dict) and "name" in node:
            yield node
        for value in node.values():
            yield from _experiment_records(value)
    elif isinstance(node, list):
        for value in node:
            yield from _experiment_records(value)


def metrics_by_experiment(exp_show: Any, names: Sequence[str]) -> dict[str, dict | None]:
    """``eval/metrics.json`` of each named experiment in ``dvc exp show --json`` output; None
    where the experiment is missing or has no metrics (it failed)."""
    found: dict[str, dict | None] = dict.fromkeys(names)
    for record in _experiment_records(exp_show):
        if record.get("name") in found:
            metrics = (record["data"].get("metrics") or {}).get(METRICS_FILE) or {}
            found[record["name"]] = metrics.get("data") or None
    return found


# (column header, path into metrics.json, format)
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("target train acc", ("models", "target", "train_accuracy"), "{:.3f}"),
    ("target test acc", ("models", "target", "test_accuracy"), "{:.3f}"),
    ("SeqMIA AUC", ("attacks", "seqmia", "auc"), "{:.3f}"),
    ("SeqMIA TPR@0.1%", ("attacks", "seqmia", "tpr_at_fpr", "0.001"), "{:.4f}"),
    ("SeqMIA TPR@1%", ("attacks", "seqmia", "tpr_at_fpr", "0.01"), "{:.4f}"),
    ("loss AUC", ("attacks", "loss", "auc"), "{:.3f}"),
    ("loss TPR@0.1%", ("attacks", "loss", "tpr_at_fpr", "0.001"), "{:.4f}"),
    ("max-conf AUC", ("attacks", "max_confidence", "auc"), "{:.3f}"),
    ("max-conf TPR@0.1%", ("attacks", "max_confidence", "tpr_at_fpr", "0.001"), "{:.4f}"),
    ("members", ("attacks", "seqmia", "n_members"), "{}"),
)


def _lookup(metrics: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def markdown_table(results: Mapping[str, dict | None]) -> str:
    """One row per preset, the models' accuracy beside SeqMIA and the baselines; "-" where a
    value is missing, "failed" where the experiment produced no metrics."""
    header = "| preset | " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|---|" + "---|" * len(COLUMNS)
    rows = [header, rule]
    for preset, metrics in results.items():
        if metrics is None:
            rows.append(f"| {preset} | failed |" + " |" * (len(COLUMNS) - 1))
            continue
        cells = []
        for _, path, fmt in COLUMNS:
            value = _lookup(metrics, path)
            cells.append("-" if value is None else fmt.format(value))
        rows.append(f"| {preset} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
