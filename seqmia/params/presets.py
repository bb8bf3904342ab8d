"""Presets and the suite's results table: plain data helpers (no DVC, no Prefect).

A preset is a small YAML file of dotted ``params.yaml`` keys and their values (``presets/``); the
suite turns each into ``dvc exp run -S key=value`` overrides, checks them against the schema first,
and collects each experiment's ``eval/metrics.json`` from ``dvc exp show --json`` into one table.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from seqmia.config import Params, ParamsError, params_from_dict
from seqmia.params.schema import clip, parse_document, read_document

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
    *(
        (f"{label} {what}", ("attacks", attack, *path), fmt)
        for attack, label in (
            ("seqmia", "SeqMIA"),
            ("trajectory_mia", "TrajectoryMIA"),
            ("loss", "loss"),
            ("max_confidence", "max-conf"),
        )
        for what, path, fmt in (
            ("AUC", ("auc",), "{:.3f}"),
            ("TPR@0.1%", ("tpr_at_fpr", "0.001"), "{:.4f}"),
            ("TPR@1%", ("tpr_at_fpr", "0.01"), "{:.4f}"),
        )
    ),
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
    return key.strip(), [parse_document(v.encode("utf-8", "surrogateescape"), source)
                         for v in items]  # fmt: skip


def attack_statistic(
    results: Mapping[Any, dict | None], attack: str, path: Sequence[str]
) -> list[float | None]:
    """One attack's value at ``path`` (e.g. ("tpr_at_fpr", "0.001")) for each sweep value."""
    return [
        None if metrics is None else _lookup(metrics, ("attacks", attack, *path))
        for metrics in results.values()
    ]


def mean_sd_table(
    results: Mapping[Any, dict | None], fprs: Sequence[str] = ("0.001", "0.01")
) -> str:
    """Markdown table of mean ± sd (over the runs in ``results``, e.g. seeds) of every attack's
    AUC and TPR at each FPR in ``fprs``; failed runs are left out and counted."""
    runs = [m for m in results.values() if m is not None]
    if not runs:
        return "no run produced metrics\n"
    attacks = list(runs[0]["attacks"])
    header = "| attack | AUC | " + " | ".join(f"TPR@{float(f) * 100:g}% FPR" for f in fprs) + " |"
    lines = [header, "|---|" + "---|" * (1 + len(fprs))]
    paths = [("auc",)] + [("tpr_at_fpr", f) for f in fprs]
    for attack in attacks:
        cells = []
        for path in paths:
            values = np.array(
                [v for v in attack_statistic(results, attack, path) if v is not None], dtype=float
            )
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.4f} ± {sd:.4f}")
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    failed = len(results) - len(runs)
    note = f"\n{len(runs)} runs" + (f", {failed} failed" if failed else "") + "; mean ± sd.\n"
    return "\n".join(lines) + "\n" + note


def plot_sweep(
    key: str,
    values: list,
    series: Mapping[str, list[float | None]],
    path: str | Path,
    ylabel: str,
) -> None:
    """One line per attack of a statistic (e.g. TPR at 0.1% FPR) against a swept parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqmia.base.artifacts import atomic_path

    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = list(values) if numeric else list(range(len(values)))
    fig, ax = plt.subplots(figsize=(6.0, 4.5), dpi=120)
    for name, ys in series.items():
        pts = [(xi, yi) for xi, yi in zip(x, ys, strict=True) if yi is not None]
        if pts:
            xs, vs = zip(*pts, strict=True)
            ax.plot(xs, vs, marker="o", label=name, linewidth=2.2 if name == "seqmia" else 1.2)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
