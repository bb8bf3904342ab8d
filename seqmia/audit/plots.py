"""Figures: ROC curves on log-log axes (the low-FPR end is what matters), in two panels: the
headline comparison (SeqMIA and the best attack of each family) and SeqMIA's ablations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqmia.attacks.registry import family_of  # noqa: E402
from seqmia.base.artifacts import atomic_path  # noqa: E402
from seqmia.base.roc import Roc, auc, tpr_at_fpr  # noqa: E402


def split_panels(curves: Mapping[str, Roc]) -> tuple[list[str], list[str]]:
    """(headline, ablations): SeqMIA plus the attack of highest AUC in each other family of the
    registry; SeqMIA plus its ablations. Names keep the order of ``curves``; a name the registry
    does not know fails (``family_of``)."""
    families = {name: family_of(name) for name in curves}
    best: dict[str, str] = {}
    for name, roc in curves.items():
        family = families[name]
        if family == "seqmia_ablation":
            continue
        if family not in best or auc(roc) > auc(curves[best[family]]):
            best[family] = name
    headline = [n for n in curves if n in best.values()]
    ablations = [n for n in curves if families[n] in ("seqmia", "seqmia_ablation")]
    return headline, ablations


# Distinct colour and line style per curve: 10 colours x 4 styles before any pair repeats.
_COLOURS = plt.get_cmap("tab10").colors
_STYLES = ("-", "--", "-.", ":")


def _panel(ax, curves: Mapping[str, Roc], names: list[str], floor: float, title: str) -> None:
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, color="grey", linestyle=":", linewidth=1, label="chance")
    for i, name in enumerate(names):
        roc, headline = curves[name], family_of(name) == "seqmia"
        label = (
            f"{name}  AUC {auc(roc):.3f}  TPR@0.1% {tpr_at_fpr(roc, 1e-3):.3f}"
            f"  @1% {tpr_at_fpr(roc, 1e-2):.3f}"
        )
        # Steps, not straight segments: the conservative reading of the curve.
        ax.step(
            np.maximum(roc.fpr, floor / 2),
            np.maximum(roc.tpr, 1e-5),
            where="post",
            label=label,
            color="black" if headline else _COLOURS[i % len(_COLOURS)],
            linestyle="-" if headline else _STYLES[(i // 2) % len(_STYLES)],
            linewidth=2.4 if headline else 1.4,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 2, 1.0)
    ax.set_ylim(1e-3, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=6.5)


def plot_roc_loglog(curves: Mapping[str, Roc], path: str | Path, title: str = "") -> None:
    """Save the log-log ROC figure: headline comparison left, SeqMIA's ablations right (the
    right panel is left out when there are no ablations). Legends give AUC and TPR@0.1%/1%."""
    floor = min(float(c.fpr[c.fpr > 0].min()) for c in curves.values())
    headline, ablations = split_panels(curves)
    panels = [(headline, "SeqMIA and the best attack of each family")]
    if len(ablations) > 1:
        panels.append((ablations, "SeqMIA and its ablations"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6.0), dpi=120)
    for ax, (names, panel_title) in zip(np.atleast_1d(axes), panels, strict=True):
        _panel(ax, curves, names, floor, panel_title)
    fig.suptitle(title or "Membership inference ROC (log-log)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_gallery(
    images: np.ndarray, captions: list[str], path: str | Path, columns: int = 8
) -> None:
    """Save thumbnails of ``images`` (K, H, W, C) or (K, H, W) uint8, each with its caption, in
    rows of ``columns``: the members an attack exposes, for an owner to look at."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), dpi=100)
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k < len(images):
            image = images[k]
            grey = image.ndim == 2 or image.shape[-1] == 1
            ax.imshow(image.squeeze(), cmap="gray" if grey else None, interpolation="nearest")
            ax.set_title(captions[k], fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
