"""How DP-SGD trains the target under a few recipes: a short probe before a privacy-utility run.

Trains the run's target model (its members, ``data/partition.parquet``) with DP-SGD at one ε
for a few epochs under each recipe given, and prints per epoch the training loss, accuracy and
the test accuracy on the target's non-members. The noise is planned for ``--planned-epochs``
(the run's ``train.epochs``), so the first epochs see the noise of the full run.

    python diagnostics/dp_recipe.py --epsilon 4 --epochs 8 \
        --recipe lr=0.1,momentum=0.9,batch_size=100 --recipe lr=0.5,momentum=0,batch_size=500
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from seqmia.base.seeding import make_generator  # noqa: E402
from seqmia.data.batches import stored_inputs  # noqa: E402
from seqmia.data.inputs import input_shape  # noqa: E402
from seqmia.data.partition import part_ids  # noqa: E402
from seqmia.models.build import new_model  # noqa: E402
from seqmia.models.inference import accuracy, predict_logits  # noqa: E402
from seqmia.params.whole import load_params  # noqa: E402
from seqmia.training.loop import FitOptions, fit  # noqa: E402
from seqmia.training.private import PrivacyRequest, plan_private_training  # noqa: E402
from tasks import sections  # noqa: E402
from tasks.common import load_prepared  # noqa: E402
from tasks.layout import Layout  # noqa: E402


def parse_recipe(text: str) -> dict:
    """``key=value,…`` of train.* keys (numbers)."""
    return {
        k: float(v) if "." in v or "e" in v else int(v)
        for k, v in (item.split("=") for item in text.split(","))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".")
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=8, help="epochs to run of each recipe")
    parser.add_argument("--recipe", action="append", required=True, help="train.* overrides")
    args = parser.parse_args()
    layout = Layout(Path(args.repo).resolve())
    params = load_params(layout.root / "params.yaml")
    torch.set_num_threads(2)
    dataset = load_prepared(layout.dataset_file)
    partition = pd.read_parquet(layout.partition_file)
    members, held_out = (
        stored_inputs(dataset, part_ids(partition, f"target_{side}"), torch.device("cpu"))
        for side in ("in", "out")
    )
    dp = dataclasses.replace(params.dp, enabled=True)
    for text in args.recipe:
        train = dataclasses.replace(params.train, **parse_recipe(text))
        request = PrivacyRequest(args.epsilon, 0.0, args.max_grad_norm, dp.delta)
        plan = plan_private_training(request, len(members[1]), train.batch_size, train.epochs)
        generator = make_generator(params.seed, "train", "target")
        shape, classes = input_shape(dataset["x"]), len(dataset["classes"])
        model = new_model(sections.architecture(train, dp), shape, classes, generator)
        print(f"\n{text}: sigma {plan.noise_multiplier:.3f}, q {plan.sample_rate:.3f}", flush=True)

        def report(record, trained, held=held_out):
            test = accuracy(predict_logits(trained, held[0], 500), held[1])
            print(
                f"  epoch {record.epoch}: loss {record.loss:.3f} train acc {record.accuracy:.3f} "
                f"test acc {test:.3f} eps {record.epsilon:.2f} ({record.seconds:.0f} s)",
                flush=True,
            )
            trained.train()

        recipe = dataclasses.replace(sections.recipe(train), epochs=args.epochs)
        fit(model, *members, recipe, generator, on_epoch=report, options=FitOptions(private=plan))


if __name__ == "__main__":
    main()
