"""What DP-SGD buys: one row per audited run (the ε it spent, the target's accuracy, what SeqMIA
and the strongest attack still find, the empirical lower bound on ε), a Markdown table of them,
and a two-panel figure (utility against leakage; lower bound against ε spent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqmia.base.artifacts import atomic_path  # noqa: E402

RATE = "0.01"  # the FPR of the table's TPR columns and the figure's leakage axis


def defence_row(label: str, seed: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One audited run (``eval/metrics.json``): without DP, ``epsilon_spent`` is None and the
    lower bound is the run's at ``evaluate.delta``; with DP it is at the guarantee's δ."""
    attacks, dp = metrics["attacks"], metrics.get("dp")
    strongest = max(attacks, key=lambda n: attacks[n]["tpr_at_fpr"][RATE])
    bound = dp if dp is not None else metrics["privacy_bound"]
    return {
        "run": label,
        "seed": seed,
        "target_epsilon": None if dp is None else dp["target_epsilon"],
        "epsilon_spent": None if dp is None else dp["epsilon_spent"],
        "noise_multiplier": None if dp is None else dp["noise_multiplier"],
        "train_accuracy": metrics["models"]["target"]["train_accuracy"],
        "test_accuracy": metrics["models"]["target"]["test_accuracy"],
        "seqmia_auc": attacks["seqmia"]["auc"],
        "seqmia_tpr": attacks["seqmia"]["tpr_at_fpr"][RATE],
        "strongest": strongest,
        "strongest_tpr": attacks[strongest]["tpr_at_fpr"][RATE],
        "epsilon_lower": bound["epsilon_lower"],
        "delta": bound["delta"],
        "attacks_tested": bound["attacks_tested"],
        "consistent": None if dp is None else dp["consistent"],
    }


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def defence_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one line per run, in the order given."""
    head = (
        "| run | seed | ε target | ε spent | σ | train acc | test acc | SeqMIA AUC | "
        "SeqMIA TPR@1% | strongest attack TPR@1% | ε lower bound (δ) | bound ≤ spent |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        verdict = {None: "–", True: "yes", False: "**NO: VIOLATION**"}[r["consistent"]]
        lines.append(
            f"| {r['run']} | {r['seed']} | {_num(r['target_epsilon'], '{:g}')} | "
            f"{_num(r['epsilon_spent'], '{:.2f}')} | {_num(r['noise_multiplier'], '{:.3f}')} | "
            f"{r['train_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['seqmia_auc']:.3f} | "
            f"{r['seqmia_tpr']:.4f} | {r['strongest_tpr']:.4f} ({r['strongest']}) | "
            f"{r['epsilon_lower']:.2f} ({r['delta']:g}) | {verdict} |"
        )
    return head + "\n".join(lines) + "\n"


def plot_defence(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> None:
    """Left: the target's test accuracy against SeqMIA's TPR at 1% FPR, a point per run,
    labelled by its name. Right: the empirical lower bound against the ε spent (DP runs only), with
    the line bound = spent that a correct training and audit stay under."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for r in rows:
        label = r["run"]
        left.scatter(
            r["test_accuracy"], r["seqmia_tpr"], color="C0" if r["epsilon_spent"] else "C3"
        )
        left.annotate(
            label,
            (r["test_accuracy"], r["seqmia_tpr"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    left.set_xlabel("target test accuracy")
    left.set_ylabel("SeqMIA TPR at 1% FPR")
    left.set_title("utility against leakage")
    left.grid(alpha=0.3)
    private = [r for r in rows if r["epsilon_spent"] is not None]
    if private:
        spent = [r["epsilon_spent"] for r in private]
        lower = [r["epsilon_lower"] for r in private]
        right.scatter(spent, lower, color="C0")
        top = max(max(spent), max(lower)) * 1.3
        right.plot([0, top], [0, top], "k--", lw=1, label="lower bound = ε spent")
        right.set_xlim(0, top)
        right.set_ylim(0, top)
        right.legend(loc="upper left", fontsize=8)
    right.set_xlabel("ε spent (RDP accountant)")
    right.set_ylabel("empirical ε lower bound (95%)")
    right.set_title("audit against guarantee")
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
