"""TrajectoryMIA's attack as its published code trains it, beside the project's: a variant.

The published attack MLP applies softmax inside ``forward`` and is then trained with
``CrossEntropyLoss``, which applies log-softmax again (a double softmax: the loss is bounded and
never saturates). This script refits the baselines stage's ``trajectory_mia`` model of a finished
run three ways on the same shadow data, seed and recipe, and scores the target:

- as the stage does (plain logits; checked to equal the stored scores),
- with the double softmax, the epoch selected on held-out shadow data as the stage does,
- with the double softmax, keeping the last epoch (as the published code ends).

The double-softmax variants rank the target by the MLP's inner logits (the order of the
published probability output, without its ties) and also count the ties of that probability.

    python diagnostics/trajectory_double_softmax.py [--repo .]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from seqmia.attacks.fit import fit_attack, split_holdout, train_attack  # noqa: E402
from seqmia.attacks.networks import (  # noqa: E402
    build_attack,
    fit_scaler,
    init_attack_weights,
    member_log_odds,
)
from seqmia.attacks.registry import trained_specs  # noqa: E402
from seqmia.attacks.trained import baseline_features  # noqa: E402
from seqmia.base.errors import UserError  # noqa: E402
from seqmia.base.roc import auc, roc_curve, tpr_at_fpr  # noqa: E402
from seqmia.base.seeding import derive_seed, make_generator  # noqa: E402
from seqmia.params.whole import load_params  # noqa: E402
from seqmia.training.recipe import as_recipe  # noqa: E402
from tasks.baselines import load_role_inputs  # noqa: E402
from tasks.layout import Layout  # noqa: E402


class SoftmaxOutput(nn.Module):
    """The published model's ``forward``: the MLP's output passed through softmax."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x), dim=1)


def line(name: str, scores: np.ndarray, members: np.ndarray, extra: str = "") -> str:
    roc = roc_curve(scores, members)
    return (
        f"| {name} | {auc(roc):.4f} | {tpr_at_fpr(roc, 0.001):.4f} | "
        f"{tpr_at_fpr(roc, 0.01):.4f} | {extra} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path("."), help="a repository after its run")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the stage's one-thread workers
    try:
        params = load_params(args.repo / "params.yaml")
    except UserError as error:
        sys.exit(str(error))
    layout = Layout(args.repo)
    if not layout.baseline_scores_file.exists():
        sys.exit(f"{args.repo} has no finished baselines stage; run `dvc repro baselines` there")
    b = params.baselines
    shadow, target = load_role_inputs(layout, "shadow"), load_role_inputs(layout, "target")
    specs = {s.name: s for s in trained_specs(b.attacks, shadow.metrics)}
    if "trajectory_mia" not in specs:
        sys.exit("the run did not train trajectory_mia (baselines.attacks)")
    spec = specs["trajectory_mia"]
    recipe = as_recipe(b.trajectory_mia)
    x, x_target = (baseline_features(spec, r, b.topk) for r in (shadow, target))
    members, target_members = (r.samples["member"].to_numpy() for r in (shadow, target))
    stream = ("baseline", spec.name)
    rows = []

    plain = fit_attack(
        x,
        members,
        "mlp",
        recipe,
        params.seed,
        b.val_fraction,
        stream,
        mlp_widths=spec.model.mlp_widths,
    )
    scores = plain.scores(x_target)
    stored = pd.read_parquet(layout.baseline_scores_file)["trajectory_mia"].to_numpy()
    if not np.array_equal(scores, stored):
        sys.exit("the refit differs from the run's stored scores (other code or machine)")
    rows.append(line("as the stage trains it", scores, target_members, f"epoch {plain.selected}"))

    for selection, name in (("best_val_auc", "held-out epoch"), ("last", "last epoch")):
        train_rows, val_rows = split_holdout(
            members, b.val_fraction, derive_seed(params.seed, "holdout")
        )
        scaler = fit_scaler(x[train_rows], "none", None)
        xs, y = scaler(x), torch.from_numpy(members.astype(np.int64))
        generator = make_generator(params.seed, *stream)
        inner = build_attack("mlp", tuple(x.shape[1:]), mlp_widths=spec.model.mlp_widths)
        init_attack_weights(inner, generator)
        model, _, selected = train_attack(
            SoftmaxOutput(inner),
            xs[train_rows],
            y[train_rows],
            xs[val_rows],
            y[val_rows],
            recipe,
            generator,
            selection=selection,
        )
        xt = scaler(x_target)
        scores = member_log_odds(model.inner, xt)
        with torch.no_grad():
            probability = model(xt)[:, 1].numpy()
        ties = int((probability == probability.max()).sum())
        extra = f"epoch {selected}; top tie of the probability output: {ties}"
        rows.append(line(f"double softmax, {name}", scores, target_members, extra))

    print(f"trajectory_mia, seed {params.seed}, {len(target_members)} target samples\n")
    print("| variant | AUC | TPR@0.1% FPR | TPR@1% FPR | notes |\n|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
