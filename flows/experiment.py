"""Experiment: one DVC experiment as a Prefect flow run; the flow that deployments schedule.

    python -m flows.experiment -S attack.epochs=50 --name short-attack     # run once
    python -m flows.experiment --serve                                     # one-machine schedule

The flow checks the overrides against the params schema and writes them into params.yaml, then
reproduces the pipeline one stage at a time. With a DVC remote, each stage first looks in the
remote (outputs and DVC's run-cache), so a stage already computed on any host is restored instead
of rerun, and each finished stage is pushed at once, so an experiment cut short on one host
continues on another from the last finished stage. ``dvc exp save`` then records the result (DVC
stays the record: ``dvc exp show`` lists it), and the headline metrics become a Prefect table
artifact. A failing stage fails the flow run with that stage's output in the logs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from seqmia.artifacts import atomic_path
from seqmia.errors import UserError
from seqmia.suite import check_preset

PARAMS = Path("params.yaml")


def run_dvc(*args: str) -> str:
    """Run ``dvc args…`` in the repository, logging its output; raise with it on failure."""
    logger = get_run_logger()
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    for line in output.splitlines()[-200:]:
        logger.info("%s", line)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{output[-4000:]}")
    return output


def write_overrides(path: Path, overrides: dict[str, Any]) -> None:
    """Set dotted keys in the YAML file ``path`` in place, keeping its comments and order."""
    if not overrides:
        return
    document = YAML()  # round-trip mode
    document.preserve_quotes = True
    document.width = 4096  # never re-wrap a long line
    tree = document.load(path.read_text())
    for dotted, value in overrides.items():
        *sections, leaf = dotted.split(".")
        node = tree
        for section in sections:
            node = node[section]
        if isinstance(value, list):  # written as [a, b], like the lists already there
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        node[leaf] = value
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        document.dump(tree, fh)


def pipeline_stages() -> list[str]:
    """The stages of dvc.yaml, in the order they are declared (each after its inputs)."""
    return list(yaml.safe_load(Path("dvc.yaml").read_text())["stages"])


@task(task_run_name="stage-{stage}")
def reproduce_stage(stage: str, remote: bool) -> str:
    """Bring one stage up to date: restore it from the remote's run-cache if any host computed
    it, else run it; with a remote, push its outputs and run-cache entry right away."""
    output = run_dvc("repro", "--single-item", *(["--pull"] if remote else []), stage)
    if remote:
        run_dvc("push", "--run-cache", stage)
    return output


@task
def save_experiment(name: str | None) -> str:
    """Record the workspace (params, dvc.lock, metrics) as a DVC experiment."""
    return run_dvc("exp", "save", *(["--name", name] if name else []))


def has_remote() -> bool:
    """Whether a DVC remote is configured (shared storage between hosts)."""
    listed = subprocess.run(["dvc", "remote", "list"], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def metrics_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack, best AUC first: the headline numbers of ``eval/metrics.json``."""
    rows = []
    for name, report in sorted(metrics["attacks"].items(), key=lambda kv: -kv[1]["auc"]):
        row = {"attack": name, "auc": round(report["auc"], 4)}
        row.update({f"tpr@{k}": round(v, 4) for k, v in report["tpr_at_fpr"].items()})
        rows.append(row)
    return rows


@flow(name="experiment")
def experiment_flow(overrides: dict[str, Any] | None = None, name: str | None = None) -> dict:
    """Run the pipeline as one DVC experiment with ``overrides`` (dotted params keys)."""
    overrides = overrides or {}
    check_preset(yaml.safe_load(PARAMS.read_text()), overrides)
    write_overrides(PARAMS, overrides)
    remote = has_remote()
    for stage in pipeline_stages():
        reproduce_stage(stage, remote)
    save_experiment(name)
    metrics = json.loads(Path("eval/metrics.json").read_text())
    create_table_artifact(
        key="seqmia-metrics",
        table=metrics_table(metrics),
        description=f"Membership inference on the target model; overrides {overrides or 'none'}",
    )
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", help="experiment name (dvc exp show)")
    parser.add_argument("--serve", action="store_true", help="serve the flow as a deployment")
    args = parser.parse_args()
    if args.serve:
        experiment_flow.serve(name="experiment")
        return
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    try:
        experiment_flow(overrides=overrides, name=args.name)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
