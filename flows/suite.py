"""Suite: run the pipeline for several presets as queued DVC experiments and tabulate results.

    python -m flows.suite --presets location-cpu news20-cpu [--jobs 1] [--out eval/suite.md]
    python -m flows.suite --presets location-cpu --sweep distill.epochs=5,10,20
    python -m flows.suite --presets location-cpu --sweep seed=0,1,2

``--sweep KEY=V1,V2,…`` runs every preset once per value (an ablation over snapshots, metrics or
attack architecture, or repeats over seeds) and also plots each attack's TPR at 0.1% FPR and AUC
against the value (``eval/sweep_<key>_*.png``); a sweep over ``seed`` adds mean ± sd per attack.
The preset name ``params`` means params.yaml as it is.

Each preset (``presets/<name>.yaml``) is checked against the params schema, queued with
``dvc exp run --queue --name <preset>-<stamp> -S key=value …``, the queue is started with
``dvc queue start`` and watched until it is empty; then ``dvc exp show --json`` gives every
experiment's commit, its ``eval/metrics.json`` is read from the DVC cache there, and a Markdown
table of them is printed and written.
``$SEQMIA_DATA_ROOT`` is made absolute, since queued experiments run in temporary copies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dvc.api
from prefect import flow, get_run_logger, task

from seqmia.audit.tables import (
    METRICS_FILE,
    attack_statistic,
    experiment_revs,
    markdown_table,
    mean_sd_table,
    plot_sweep,
    sweep_attacks,
)
from seqmia.base.errors import UserError
from seqmia.data.readers import DATA_ROOT_ENV, data_root
from seqmia.params.presets import PRESETS_DIR, check_preset, load_preset, parse_sweep, set_arguments
from seqmia.params.schema import read_document


def run_dvc(*args: str) -> subprocess.CompletedProcess:
    """Run ``dvc args…``; raise with its output if it fails."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@task
def queue_preset(preset: str, overrides: dict, stamp: str) -> str:
    """Queue the pipeline with ``preset``'s overrides; return the experiment's name."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{preset}-{stamp}")
    run_dvc("exp", "run", "--queue", "--name", name, *set_arguments(overrides))
    get_run_logger().info("queued %s: %s", name, overrides)
    return name


@task
def run_queue(jobs: int, poll_seconds: float) -> None:
    """``dvc queue start`` and wait until no experiment is queued or running."""
    run_dvc("queue", "start", "--jobs", str(jobs))
    logger = get_run_logger()
    while True:
        time.sleep(poll_seconds)
        status = run_dvc("queue", "status").stdout
        busy = [ln for ln in status.splitlines() if " Running " in ln or " Queued " in ln]
        if not busy:
            return
        logger.info("%d experiment(s) queued or running", len(busy))


def write_sweep_outputs(
    key: str, values: list, results: dict[str, dict[object, dict | None]], out_dir: Path
) -> str:
    """Plots of TPR@0.1% FPR and AUC against the swept value, per preset; mean ± sd for seeds."""
    text = []
    for preset, by_value in results.items():
        attacks = [
            a
            for a in sweep_attacks()
            if any(m is not None and a in m["attacks"] for m in by_value.values())
        ]
        for stat, path, label in (
            ("tpr0.001", ("tpr_at_fpr", "0.001"), "TPR at 0.1% FPR"),
            ("auc", ("auc",), "AUC"),
        ):
            series = {a: attack_statistic(by_value, a, path) for a in attacks}
            png = out_dir / f"sweep_{key.replace('.', '_')}_{preset}_{stat}.png"
            plot_sweep(key, values, series, png, f"{label} ({preset})")
            text.append(f"plot: {png}")
        if key == "seed":
            text.append(f"\n{preset}, over seeds {values}:\n\n{mean_sd_table(by_value)}")
    return "\n".join(text)


@flow(name="suite")
def suite_flow(
    presets: list[str],
    jobs: int = 1,
    out: str = "eval/suite.md",
    poll_seconds: float = 20.0,
    sweep: str | None = None,
) -> str:
    """Queue ``presets`` (times the ``sweep`` values) as DVC experiments, run them, tabulate."""
    raw = read_document("params.yaml")
    overrides = {p: ({} if p == "params" else load_preset(p, PRESETS_DIR)) for p in presets}
    key, values = parse_sweep(sweep) if sweep else (None, [None])
    runs: dict[tuple[str, object], dict] = {}
    for preset, preset_overrides in overrides.items():
        for value in values:
            run = dict(preset_overrides) if key is None else {**preset_overrides, key: value}
            check_preset(raw, run)  # every run valid before anything is queued
            runs[(preset, value)] = run
    os.environ[DATA_ROOT_ENV] = str(data_root().resolve())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = lambda p, v: p if key is None else f"{p} {key}={v}"  # noqa: E731
    names = {
        (p, v): queue_preset(p if key is None else f"{p}-{key}{v}", run, stamp)
        for (p, v), run in runs.items()
    }
    run_queue(jobs, poll_seconds)
    # --all-commits: experiments stay attached to the commit they were queued from, and the
    # workspace may have moved on while the queue ran.
    shown = json.loads(run_dvc("exp", "show", "--json", "--all-commits").stdout)
    revs = experiment_revs(shown, list(names.values()))
    found = {
        name: None if rev is None else json.loads(dvc.api.read(METRICS_FILE, rev=rev))
        for name, rev in revs.items()
    }
    table = markdown_table({label(p, v): found[n] for (p, v), n in names.items()})
    if key is not None:
        by_preset = {p: {v: found[names[(p, v)]] for v in values} for p in overrides}
        table += "\n" + write_sweep_outputs(key, values, by_preset, Path(out).parent) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", required=True, help="names in presets/")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at once")
    parser.add_argument("--out", default="eval/suite.md", help="Markdown table to write")
    parser.add_argument("--sweep", help="KEY=V1,V2,… run each preset once per value")
    args = parser.parse_args()
    try:
        print(suite_flow(presets=args.presets, jobs=args.jobs, out=args.out, sweep=args.sweep))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
