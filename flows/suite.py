"""Suite: run the pipeline for several presets as queued DVC experiments and tabulate results.

    python -m flows.suite --presets location-cpu news20-cpu [--jobs 1] [--out eval/suite.md]

Each preset (``presets/<name>.yaml``) is checked against the params schema, queued with
``dvc exp run --queue --name <preset>-<stamp> -S key=value …``, the queue is started with
``dvc queue start`` and watched until it is empty; then ``dvc exp show --json`` gives every
experiment's ``eval/metrics.json`` and a Markdown table of them is printed and written.
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

import yaml
from prefect import flow, get_run_logger, task

from seqmia.data import DATA_ROOT_ENV, data_root
from seqmia.errors import UserError
from seqmia.suite import (
    check_preset,
    load_preset,
    markdown_table,
    metrics_by_experiment,
    set_arguments,
)


def _dvc(*args: str) -> subprocess.CompletedProcess:
    """Run ``dvc args…``; raise with its output if it fails."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@task
def queue_preset(preset: str, overrides: dict, stamp: str) -> str:
    """Queue the pipeline with ``preset``'s overrides; return the experiment's name."""
    name = f"{preset}-{stamp}"
    _dvc("exp", "run", "--queue", "--name", name, *set_arguments(overrides))
    get_run_logger().info("queued %s: %s", name, overrides)
    return name


@task
def run_queue(jobs: int, poll_seconds: float) -> None:
    """``dvc queue start`` and wait until no experiment is queued or running."""
    _dvc("queue", "start", "--jobs", str(jobs))
    logger = get_run_logger()
    while True:
        time.sleep(poll_seconds)
        status = _dvc("queue", "status").stdout
        busy = [ln for ln in status.splitlines() if " Running " in ln or " Queued " in ln]
        if not busy:
            return
        logger.info("%d experiment(s) queued or running", len(busy))


@flow(name="suite")
def suite_flow(
    presets: list[str], jobs: int = 1, out: str = "eval/suite.md", poll_seconds: float = 20.0
) -> str:
    """Queue ``presets`` as DVC experiments, run them, and tabulate their metrics."""
    raw = yaml.safe_load(Path("params.yaml").read_text())
    overrides = {p: load_preset(p) for p in presets}
    for values in overrides.values():
        check_preset(raw, values)  # every preset valid before anything runs
    os.environ[DATA_ROOT_ENV] = str(data_root().resolve())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {p: queue_preset(p, values, stamp) for p, values in overrides.items()}
    run_queue(jobs, poll_seconds)
    shown = json.loads(_dvc("exp", "show", "--json").stdout)
    found = metrics_by_experiment(shown, list(names.values()))
    table = markdown_table({p: found[n] for p, n in names.items()})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", required=True, help="names in presets/")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at once")
    parser.add_argument("--out", default="eval/suite.md", help="Markdown table to write")
    args = parser.parse_args()
    try:
        print(suite_flow(presets=args.presets, jobs=args.jobs, out=args.out))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
