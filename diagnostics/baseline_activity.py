"""Refit one shadow-trained baseline of a finished run and show which of its ReLU units fire.

The baselines stage keeps each baseline's scores, not its model. This script refits the model
exactly as the stage does (same inputs, recipe, seed and one thread, so the target scores must
equal the stored ones, which it checks), then reports the top tie of its target scores and, for
every ReLU layer, the units dead on every target sample and the samples that silence the whole
layer. Samples that silence a layer all get the same score, so this tells whether a top tie
comes from dead units. ``--lr`` refits with another learning rate (a variant, not compared with
the stored scores).

    python diagnostics/baseline_activity.py [--repo .] [--baseline seqmia_mlp] [--lr 0.001]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from seqmia.attacks.fit import fit_attack  # noqa: E402
from seqmia.attacks.registry import trained_specs  # noqa: E402
from seqmia.attacks.trained import baseline_features  # noqa: E402
from seqmia.audit.activity import relu_activity  # noqa: E402
from seqmia.base.errors import UserError  # noqa: E402
from seqmia.base.roc import auc, roc_curve, tpr_at_fpr  # noqa: E402
from seqmia.params.whole import load_params  # noqa: E402
from seqmia.training.recipe import as_recipe  # noqa: E402
from tasks.baselines import load_role_inputs  # noqa: E402
from tasks.layout import Layout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path("."), help="a repository after its run")
    parser.add_argument("--baseline", default="seqmia_mlp", help="a model the stage trained")
    parser.add_argument("--lr", type=float, help="refit with this learning rate instead")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the stage's one-thread workers
    try:
        params = load_params(args.repo / "params.yaml")
    except UserError as error:
        sys.exit(str(error))
    layout = Layout(args.repo)
    b = params.baselines
    needed = [layout.baseline_scores_file] + [
        f(role)
        for role in ("shadow", "target")
        for f in (layout.sequences_file, layout.final_logits_file)
    ]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        sys.exit(
            f"{args.repo} has no finished baselines stage (missing {', '.join(missing)}); "
            "run `dvc repro baselines` there first"
        )
    shadow, target = load_role_inputs(layout, "shadow"), load_role_inputs(layout, "target")
    specs = {s.name: s for s in trained_specs(b.attacks, shadow.metrics)}
    if args.baseline not in specs:
        sys.exit(f"--baseline {args.baseline!r}: the run trained {sorted(specs)}")
    spec = specs[args.baseline]
    changes = {} if args.lr is None else {"lr": args.lr}
    recipe = as_recipe(getattr(b, spec.model.recipe), **changes)
    fit = fit_attack(
        baseline_features(spec, shadow, b.topk),
        shadow.samples["member"].to_numpy(),
        spec.model.architecture,
        recipe,
        params.seed,
        b.val_fraction,
        ("baseline", spec.name),
        hidden_size=b.hidden_size,
        mlp_widths=spec.model.mlp_widths,
    )
    x_target = baseline_features(spec, target, b.topk)
    scores = fit.scores(x_target)
    print(
        f"{spec.name}, seed {params.seed}, lr {recipe.lr}: selected epoch {fit.selected} of "
        f"{recipe.epochs}, held-out shadow AUC {fit.val_auc:.4f}"
    )
    if args.lr is None:
        stored = pd.read_parquet(layout.baseline_scores_file)[spec.name].to_numpy()
        same = np.array_equal(scores, stored)
        print(f"target scores equal the stored ones: {same}")
        if not same:
            sys.exit("the refit differs from the run (other code or machine); stopping")
    members = target.samples["member"].to_numpy()
    roc = roc_curve(scores, members)
    print(
        f"target AUC {auc(roc):.4f}, TPR at 0.1% FPR {tpr_at_fpr(roc, 0.001):.4f}, "
        f"at 1% FPR {tpr_at_fpr(roc, 0.01):.4f}"
    )
    tied = scores == scores.max()
    print(
        f"top score {scores.max():.6g}: {int(tied.sum())} of {len(scores)} target samples "
        f"({int(members[tied].sum())} members)"
    )
    layers = relu_activity(fit.model, fit.scaler(x_target))
    if not layers:
        print(f"{spec.name} ({spec.model.architecture}) has no ReLU layers")
        return
    print(
        "\n| ReLU layer | units | dead on every target sample | samples silencing it | "
        "of them in the top tie |\n|---:|---:|---:|---:|---:|"
    )
    for k, layer in enumerate(layers, 1):
        silent = layer.silent_inputs
        print(
            f"| {k} | {layer.width} | {layer.dead_units} | {int(silent.sum())} | "
            f"{int((silent & tied).sum())} |"
        )
    head = [m for m in fit.model.modules() if isinstance(m, torch.nn.Linear)][-1].bias.detach()
    print(
        f"\nscore of a sample that silences the last layer (the head's bias): "
        f"{float(head[1] - head[0]):.6g}"
    )


if __name__ == "__main__":
    main()
