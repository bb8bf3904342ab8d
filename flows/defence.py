"""Defence: what DP-SGD buys. Train and audit params.yaml's configuration without DP and at each
target ε, as queued DVC experiments, then tabulate and plot privacy against utility.

    python -m flows.defence                       # ε = 1, 4, 16 and no DP, seed 0
    python -m flows.defence --epsilons 1 4 16 --seeds 0 1 2 [--out eval/defence]
    python -m flows.defence -S train.lr=0.05      # another recipe for the DP runs

Runs per seed: params.yaml as it is (no DP); the DP recipe without DP; and at each ε, the DP
recipe with DP-SGD. The DP recipe is params.yaml's with ``DP_RECIPE`` (or the ``-S`` overrides)
applied: the default one (SGD with momentum 0.9) drifts away under DP noise, plain DP-SGD does
not (diagnostics/dp_recipe.py measures it), and the run without DP at that recipe shows what the
recipe alone costs. Each run is ``dvc exp run --queue -S seed=S -S …`` (every other key as
params.yaml has it); a run DVC already has (the no-DP one after ``dvc repro``) comes from its
run-cache. Writes ``<out>.md`` (the table), ``<out>.json`` (its rows) and ``<out>.png``
(test accuracy against SeqMIA's TPR at 1% FPR; the empirical lower bound against the ε spent),
and exits 1 if any run's lower bound exceeds the ε it spent (a broken DP training or audit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import dvc.api
from prefect import flow, get_run_logger

from flows.suite import queue_preset, run_dvc, run_queue
from seqmia.audit.defence import defence_row, defence_table, plot_defence
from seqmia.audit.tables import METRICS_FILE, experiment_revs
from seqmia.base.errors import UserError
from seqmia.data.readers import DATA_ROOT_ENV, data_root
from seqmia.params.presets import check_preset, parse_overrides
from seqmia.params.schema import read_document

# Plain DP-SGD (Abadi et al. 2016): no momentum. With the default momentum of 0.9 the noise of
# DP-SGD accumulates and the loss grows (diagnostics/dp_recipe.py, ε = 4: 2.31 -> 5.14 in 8 epochs).
DP_RECIPE = {"train.momentum": 0.0}


def runs_of(
    epsilons: list[float], seeds: list[int], recipe: dict | None = None
) -> dict[tuple[str, int, str], dict]:
    """(label, seed, experiment name prefix) -> overrides, for every seed: no DP as params.yaml
    has it, no DP at the DP ``recipe`` (default ``DP_RECIPE``), then each ε at that recipe."""
    recipe = DP_RECIPE if recipe is None else recipe
    runs = {}
    for seed in seeds:
        runs[("no DP", seed, f"dp-none-s{seed}")] = {"seed": seed, "dp.enabled": False}
        runs[("no DP, DP recipe", seed, f"dp-recipe-s{seed}")] = {
            "seed": seed,
            **recipe,
            "dp.enabled": False,
        }
        for epsilon in epsilons:
            runs[(f"ε={epsilon:g}", seed, f"dp-eps{epsilon:g}-s{seed}")] = {
                "seed": seed,
                **recipe,
                "dp.enabled": True,
                "dp.epsilon": float(epsilon),
                "dp.noise_multiplier": 0.0,
            }
    return runs


@flow(name="defence")
def defence_flow(
    epsilons: list[float],
    seeds: list[int],
    recipe: dict | None = None,
    out: str = "eval/defence",
    poll_seconds: float = 20.0,
) -> list[dict]:
    """Queue every run, run the queue, read each run's metrics and write the table and figure."""
    logger = get_run_logger()
    raw = read_document("params.yaml")
    recipe = DP_RECIPE if recipe is None else recipe
    runs = runs_of(epsilons, seeds, recipe)
    for overrides in runs.values():
        check_preset(raw, overrides)  # every run valid before anything is queued
    os.environ[DATA_ROOT_ENV] = str(data_root().resolve())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {key: queue_preset(key[2], overrides, stamp) for key, overrides in runs.items()}
    started = time.perf_counter()
    run_queue(1, poll_seconds)
    seconds = time.perf_counter() - started
    shown = json.loads(run_dvc("exp", "show", "--json", "--all-commits").stdout)
    revs = experiment_revs(shown, list(names.values()))
    missing = [n for n, rev in revs.items() if rev is None]
    if missing:
        raise UserError(f"experiments failed or missing: {missing}; see `dvc queue logs NAME`")
    rows = [
        defence_row(label, seed, json.loads(dvc.api.read(METRICS_FILE, rev=revs[names[key]])))
        for key in runs
        for label, seed, _ in [key]
    ]
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    table = defence_table(rows)
    note = (
        f"\nDP recipe: params.yaml with {recipe}. {len(runs)} runs, {seconds / 60:.1f} min wall "
        "time for the queue.\n"
    )
    base.with_suffix(".md").write_text(table + note)
    base.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    plot_defence(rows, base.with_suffix(".png"), title=f"DP-SGD, seeds {seeds}")
    logger.info("%d runs in %.1f min", len(runs), seconds / 60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="eval/defence", help="path of the outputs, no suffix")
    parser.add_argument(
        "-S",
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help=f"the DP runs' recipe, instead of {DP_RECIPE}",
    )
    args = parser.parse_args()
    try:
        recipe = None if args.set is None else parse_overrides(args.set)
        rows = defence_flow(epsilons=args.epsilons, seeds=args.seeds, recipe=recipe, out=args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(defence_table(rows))
    violations = [r["run"] for r in rows if r["consistent"] is False]
    if violations:
        print(f"VIOLATION: the empirical lower bound exceeds the ε spent in {violations}")
        sys.exit(1)


if __name__ == "__main__":
    main()
