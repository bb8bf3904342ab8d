"""Tables and figures across experiments (the suite of presets, sweeps): plain functions on
``eval/metrics.json`` documents, which attacks they show taken from the attack registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqmia.attacks.registry import ATTACKS, FAMILIES, family_of

METRICS_FILE = "eval/metrics.json"
HEADLINE_FILE = "eval/headline.json"


def family_heads() -> list[str]:
    """SeqMIA, then the first attack of every other family of the registry but the ablations:
    one column or curve per kind of attack."""
    heads: dict[str, str] = {}
    for name, attack in ATTACKS.items():
        if attack.family != "seqmia_ablation":
            heads.setdefault(attack.family, name)
    return [heads[f] for f in FAMILIES if f in heads]


def sweep_attacks() -> list[str]:
    """The attacks a sweep figure draws (when present): the family heads and SeqMIA's
    ablations that are one model each."""
    ablations = [
        name
        for name, a in ATTACKS.items()
        if a.family == "seqmia_ablation" and not (a.trained is not None and a.trained.per_metric)
    ]
    heads = family_heads()
    return [heads[0], *ablations, *heads[1:]]


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


def experiment_revs(exp_show: Any, names: Sequence[str]) -> dict[str, str | None]:
    """The commit of each named experiment in ``dvc exp show --json`` output that finished (its
    headline metrics are there); None where the experiment is missing or failed. Its full
    ``eval/metrics.json`` is a cached output: read it at that commit (``dvc.api.read``)."""
    found: dict[str, str | None] = dict.fromkeys(names)
    for record in _experiment_records(exp_show):
        if record.get("name") in found:
            headline = (record["data"].get("metrics") or {}).get(HEADLINE_FILE) or {}
            found[record["name"]] = record.get("rev") if headline.get("data") else None
    return found


# (column header, path into metrics.json, format): the target's accuracies, then SeqMIA and the
# first attack of every other family of the registry (not SeqMIA's ablations).
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("target train acc", ("models", "target", "train_accuracy"), "{:.3f}"),
    ("target test acc", ("models", "target", "test_accuracy"), "{:.3f}"),
    *(
        (f"{attack} {what}", ("attacks", attack, *path), fmt)
        for attack in family_heads()
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


def sweep_figure(key: str, values: list, series: Mapping[str, list[float | None]], ylabel: str):
    """A matplotlib figure with one line per attack of ``series`` (a statistic such as TPR at
    0.1% FPR for each of the swept ``values``; None where a run failed: no point there), the
    swept ``key`` on the x axis (categories when the values are not all numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = list(values) if numeric else list(range(len(values)))
    fig, ax = plt.subplots(figsize=(6.0, 4.5), dpi=120)
    for name, ys in series.items():
        pts = [(xi, yi) for xi, yi in zip(x, ys, strict=True) if yi is not None]
        if pts:
            xs, vs = zip(*pts, strict=True)
            headline = family_of(name) == "seqmia"
            ax.plot(xs, vs, marker="o", label=name, linewidth=2.2 if headline else 1.2)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_sweep(
    key: str,
    values: list,
    series: Mapping[str, list[float | None]],
    path: str | Path,
    ylabel: str,
) -> None:
    """``sweep_figure`` written to ``path`` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    from seqmia.base.artifacts import atomic_path

    fig = sweep_figure(key, values, series, ylabel)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
