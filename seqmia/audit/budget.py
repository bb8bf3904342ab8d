"""The budget-matched comparison: what each attack finds for what it costs, over seeds.

One run per seed with the largest budget (``reference.models`` = the most reference models,
``distill.epochs`` = the most snapshots) holds every smaller one exactly: reference model i trains
on the same draw whatever the number of models (``seqmia.attacks.lira.reference_training_ids``),
and with a step schedule the first n snapshots of a distillation are those of an n-epoch one
(tested). So LiRA and RMIA with k models are scored from the first k models' logits, and SeqMIA
with n snapshots is trained and scored on the sequences of snapshots 1…n and the original model.

Points are plain dicts (JSON): ``attack``, ``setting`` ("k=4", "n=10" or ""), ``seed``,
``models``, ``sample_epochs`` (the classifiers'), ``attack_sample_epochs``, ``seconds`` (None
when a piece was not timed), ``auc``,
``tpr_at_fpr`` {"0.001": …} at the rates shown, ``tpr_at_zero_fpr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seqmia.base.errors import UserError

# The reported rates the table and the figure show by default (as ``eval/metrics.json`` keys).
BUDGET_FPRS = ("0.001", "0.01")
# Attacks whose budget the comparison varies, and the knob: reference models or snapshots.
VARIED = {
    "seqmia": "n",
    "lira_offline": "k",
    "rmia_offline": "k",
    "rmia_offline_ratio": "k",
}
# The final-model metric attacks: the figure draws the best of them only.
METRIC_ATTACKS = (
    "loss",
    "loss_cc",
    "max_confidence",
    "max_confidence_cc",
    "entropy",
    "entropy_cc",
    "m_entropy",
    "m_entropy_cc",
)
# The other attacks it shows at the run's own budget (SeqMIA's ablations are left out).
FIXED = ("trajectory_mia", "nn_posterior", "quantile_mia", *METRIC_ATTACKS)


def check_budget_grid(
    references: Sequence[int], snapshots: Sequence[int], train_schedule: str, shadow_extra: int
) -> None:
    """Refuse a grid the one-run-per-seed design cannot hold exactly."""
    for name, values in (("--references", references), ("--snapshots", snapshots)):
        if not values or any(v < 1 for v in values) or len(set(values)) != len(values):
            raise UserError(f"{name} must list distinct counts of at least 1, got {list(values)}")
    if train_schedule != "step":
        raise UserError(
            f"params key 'train.schedule' is {train_schedule!r}; the snapshot budget takes the "
            "first n snapshots of the longest distillation, which equal an n-epoch one only "
            "with the step schedule (allowed: step)"
        )
    if shadow_extra != 0:
        raise UserError(
            f"params key 'distill.shadow_extra_epochs' is {shadow_extra}; the snapshot budget "
            "needs 0 (the shadow student keeps its last snapshots, not its first)"
        )


def fewer_snapshots(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """A long sequence frame (one row per sample and step 1…T, step T the original model) cut to
    snapshots 1…n and the original model, renumbered 1…n+1. Needs 1 <= n <= T - 1."""
    last = int(frame["snapshot"].max())
    if not 1 <= n <= last - 1:
        raise ValueError(f"{n} snapshots asked of sequences with {last - 1}")
    kept = frame[(frame["snapshot"] <= n) | (frame["snapshot"] == last)].copy()
    kept.loc[kept["snapshot"] == last, "snapshot"] = n + 1
    return kept.reset_index(drop=True)


def latest_timings(lines: Sequence[Mapping], experiment: str) -> dict[str, float]:
    """The seconds of each recorded piece of work (``what``) of ``experiment``, the latest record
    of each: a stage restored from DVC's cache records nothing, so its last real run stands."""
    seconds: dict[str, float] = {}
    for line in lines:
        if line.get("experiment") == experiment:
            seconds[line["what"]] = float(line["seconds"])
    return seconds


def work_seconds(
    piece: str, timings: Mapping[str, float], references: int, fraction: float
) -> float | None:
    """Measured seconds of one piece of work (``seqmia.audit.costs``), None when untimed.
    ``references``: how many reference models it counts; ``fraction``: the share of the
    distillation's epochs it keeps (n / the run's epochs), by which the distillation's time is
    prorated."""
    keys = {
        "shadow_model": ["shadow train"],
        "reference_models": [f"reference {i} train" for i in range(1, references + 1)],
        "distillation": ["distill target", "distill shadow"],
        "seqmia_attack": ["attack"],
        "quantile_regressors": ["quantile target fit", "quantile shadow fit"],
    }.get(piece, [f"baseline {piece}"])
    if any(k not in timings for k in keys):
        return None
    total = sum(timings[k] for k in keys)
    return total * fraction if piece == "distillation" else total


def budget_point(
    attack: str,
    setting: str,
    seed: int,
    report: Mapping,
    seconds: float | None,
    fprs: Sequence[str] = BUDGET_FPRS,
) -> dict:
    """One point of the comparison from an attack's ``eval/metrics.json`` entry (with ``cost``),
    with its TPR at ``fprs``."""
    return {
        "attack": attack,
        "setting": setting,
        "seed": seed,
        "models": report["cost"]["models"],
        "sample_epochs": report["cost"]["sample_epochs"],
        "attack_sample_epochs": report["cost"]["attack_sample_epochs"],
        "seconds": seconds,
        "auc": report["auc"],
        "tpr_at_fpr": {f: report["tpr_at_fpr"][f] for f in fprs},
        "tpr_at_zero_fpr": report["tpr_at_zero_fpr"],
    }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(points: Sequence[Mapping]) -> list[dict]:
    """One row per (attack, setting), in first-seen order: its cost (the same for every seed),
    mean seconds over the seeds that timed every piece, and mean and sd of each rate."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for point in points:
        groups.setdefault((point["attack"], point["setting"]), []).append(point)
    rows = []
    for (attack, setting), group in groups.items():
        timed = [p["seconds"] for p in group if p["seconds"] is not None]
        row = {
            "attack": attack,
            "setting": setting,
            "seeds": sorted(p["seed"] for p in group),
            "models": group[0]["models"],
            "sample_epochs": group[0]["sample_epochs"],
            "attack_sample_epochs": group[0]["attack_sample_epochs"],
            "seconds": float(np.mean(timed)) if timed else None,
            "timed_seeds": len(timed),
            "auc": _mean_sd([p["auc"] for p in group]),
            "tpr_at_zero_fpr": _mean_sd([p["tpr_at_zero_fpr"] for p in group]),
        }
        row["tpr_at_fpr"] = {
            f: _mean_sd([p["tpr_at_fpr"][f] for p in group]) for f in group[0]["tpr_at_fpr"]
        }
        rows.append(row)
    return rows


def _pm(pair: Sequence[float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def budget_markdown(rows: Sequence[Mapping]) -> str:
    """The comparison as a Markdown table, cheapest first."""
    fprs = list(rows[0]["tpr_at_fpr"]) if rows else []
    rates = "".join(f" TPR@{float(f) * 100:g}% FPR |" for f in fprs)
    head = (
        "| attack | budget | models | classifier sample-epochs | attack sample-epochs | seconds "
        f"| AUC |{rates} TPR@0 FPR |\n|---|---|---:|---:|---:|---:|---|{'---|' * len(fprs)}---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: (r["sample_epochs"], r["attack"], r["setting"])):
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "–"
        lines.append(
            f"| {r['attack']} | {r['setting'] or 'as run'} | {r['models']} | "
            f"{r['sample_epochs']:,} | {r['attack_sample_epochs']:,} | {seconds} | "
            f"{_pm(r['auc'])} | "
            + "".join(f"{_pm(r['tpr_at_fpr'][f])} | " for f in fprs)
            + f"{_pm(r['tpr_at_zero_fpr'])} |"
        )
    return head + "\n".join(lines) + "\n"


def plot_budget(rows: Sequence[Mapping], path: str | Path) -> None:
    """TPR at each shown FPR, largest first (mean ± sd over seeds), against the classifiers'
    training sample-epochs (the attack models' are far cheaper and left off the axis), log
    scale; the budgets of one attack joined by a line, the final-model metric attacks
    represented by the best of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fprs = sorted(rows[0]["tpr_at_fpr"], key=float, reverse=True)
    fig, axes = plt.subplots(1, len(fprs), figsize=(5.5 * len(fprs), 4.5), squeeze=False)
    metric_rows = [r for r in rows if r["attack"] in METRIC_ATTACKS]
    best_metric = (
        max(metric_rows, key=lambda r: r["tpr_at_fpr"][fprs[0]][0])["attack"] if metric_rows else ""
    )
    attacks = [
        a
        for a in dict.fromkeys(r["attack"] for r in rows)
        if a not in METRIC_ATTACKS or a == best_metric
    ]
    for ax, fpr in zip(axes[0], fprs, strict=True):
        for attack in attacks:
            mine = sorted(
                (r for r in rows if r["attack"] == attack), key=lambda r: r["sample_epochs"]
            )
            x = [r["sample_epochs"] for r in mine]
            mean = [r["tpr_at_fpr"][fpr][0] for r in mine]
            sd = [r["tpr_at_fpr"][fpr][1] for r in mine]
            ax.errorbar(x, mean, yerr=sd, marker="o", ms=4, capsize=2, label=attack)
        ax.set_xscale("log")
        ax.set_xlabel("attacker's classifier training (sample-epochs, log scale)")
        ax.set_ylabel(f"TPR at {float(fpr) * 100:g}% FPR")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # the legend below, clear of every point
    fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
