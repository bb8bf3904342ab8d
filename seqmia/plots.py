"""Figures: the ROC of every attack on log-log axes (the low-FPR end is what matters)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqmia.artifacts import atomic_path  # noqa: E402
from seqmia.evaluation import Roc, auc, tpr_at_fpr  # noqa: E402


def plot_roc_loglog(curves: Mapping[str, Roc], path: str | Path, title: str = "") -> None:
    """Save one log-log ROC figure with a line per attack (legend: AUC and TPR@0.1% FPR)."""
    n_out_floor = min(float(c.fpr[c.fpr > 0].min()) for c in curves.values())
    fig, ax = plt.subplots(figsize=(7.0, 6.0), dpi=120)
    grid = np.logspace(np.log10(n_out_floor), 0, 50)
    ax.plot(grid, grid, color="grey", linestyle=":", linewidth=1, label="chance")
    colours = plt.get_cmap("tab20").colors
    for i, (name, roc) in enumerate(curves.items()):
        label = f"{name}  AUC {auc(roc):.3f}  TPR@0.1% {tpr_at_fpr(roc, 1e-3):.3f}"
        # Steps, not straight segments: the conservative reading of the curve.
        ax.step(
            np.maximum(roc.fpr, n_out_floor / 2), np.maximum(roc.tpr, 1e-5), where="post",
            label=label, linewidth=2.2 if name == "seqmia" else 1.1, color=colours[i % 20],
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n_out_floor / 2, 1.0)
    ax.set_ylim(1e-3, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "Membership inference ROC (log-log)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=6 if len(curves) > 6 else 7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
