"""Budget: which attack finds the most members per unit of training, over seeds.

    python -m flows.budget                     # seeds 0 1 2, references 1 2 4 8, snapshots 5 10 20
    python -m flows.budget --seeds 0 --references 1 2 --snapshots 2 3 --out eval/budget

For each seed the pipeline runs once, in a workspace of its own as an experiment does (a
temporary git worktree of HEAD sharing the repository's DVC cache; the checkout is never touched),
with ``seed``, ``reference.models`` = the most references and ``distill.epochs`` = the most
snapshots. Stages DVC has computed before (its run-cache) are restored, not rerun. Every smaller
budget is then taken from that run exactly (``seqmia.audit.budget``): LiRA and RMIA from the first
k reference models, SeqMIA retrained on the first n snapshots. The other attacks are shown at the
run's budget. Writes ``<out>.json`` (every point), ``<out>.md`` (mean ± sd over the seeds, cheapest
first) and ``<out>.png`` (TPR at 1% and 0.1% FPR against training sample-epochs).

Seconds are those recorded in ``logs/timings.jsonl`` under the experiment name
``budget-s<seed>`` when each piece of work last ran (a restored stage keeps its last real run's);
the distillation's are prorated to n of its epochs, and queries are not counted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from prefect import flow, get_run_logger

from flows.experiment import (
    PARAMS,
    git,
    has_remote,
    pipeline_stages,
    reproduce_stage,
    show_params,
    stage_env,
    timings_file,
    workspace_at,
    write_overrides,
)
from seqmia.audit.budget import (
    BUDGET_FPRS,
    budget_markdown,
    check_budget_grid,
    latest_timings,
    plot_budget,
    summarise,
)
from seqmia.base.artifacts import atomic_path
from seqmia.base.errors import UserError
from seqmia.params.presets import check_preset
from tasks.budget import budget_points


def read_timings(path: Path) -> list[dict]:
    """Every record of the timings file (none if there is none yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_fprs(fprs: tuple[str, ...], params: dict) -> None:
    """The rates the table reports must be among those the run computes."""
    computed = [f"{f:g}" for f in params["evaluate"]["fpr_targets"]]
    missing = [f for f in fprs if f not in computed]
    if missing:
        raise UserError(
            f"--fprs {' '.join(missing)} not among params key 'evaluate.fpr_targets' "
            f"{computed}: add them there or report others"
        )


@flow(name="budget")
def budget_flow(
    seeds: list[int],
    references: list[int],
    snapshots: list[int],
    out: str = "eval/budget",
    fprs: tuple[str, ...] = BUDGET_FPRS,
) -> str:
    """Run the pipeline once per seed at the largest budget, take every smaller one from it,
    and write the table, the figure and the points."""
    logger = get_run_logger()
    repo = Path(git("rev-parse", "--show-toplevel", cwd=Path.cwd()))
    base = git("rev-parse", "--verify", "HEAD^{commit}", cwd=repo)
    base_params = show_params(base, repo)
    check_budget_grid(
        references,
        snapshots,
        base_params["train"]["schedule"],
        base_params["distill"]["shadow_extra_epochs"],
    )
    check_fprs(fprs, base_params)
    points = []
    for seed in seeds:
        name = f"budget-s{seed}"
        overrides = {
            "seed": seed,
            "reference.models": max(references),
            "distill.epochs": max(snapshots),
        }
        check_preset(base_params, overrides)
        logger.info("%s: the pipeline at %s with %s", name, base[:12], overrides)
        with workspace_at(repo, base, name) as workspace:
            write_overrides(workspace / PARAMS, overrides)
            env, remote = stage_env(repo, name), has_remote(workspace)
            for stage in pipeline_stages(workspace):
                reproduce_stage(stage, workspace, env, remote)
            timings = latest_timings(read_timings(timings_file(repo)), name)
            points += budget_points(workspace, references, snapshots, timings, fprs)
    rows = summarise(points)
    table = budget_markdown(rows)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "base": base,
        "seeds": seeds,
        "references": references,
        "snapshots": snapshots,
        "fprs": list(fprs),
    }
    with atomic_path(out_path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({**record, "points": points, "rows": rows}, indent=2))
    with atomic_path(out_path.with_suffix(".md")) as tmp:
        tmp.write_text(table)
    with atomic_path(out_path.with_suffix(".png")) as tmp:
        plot_budget(rows, tmp)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--references", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--snapshots", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--out", default="eval/budget", help="path stem of .md, .json, .png")
    parser.add_argument(
        "--fprs", nargs="+", default=list(BUDGET_FPRS), help="FPRs to report (of evaluate.*)"
    )
    args = parser.parse_args()
    # A stop request unwinds like Ctrl-C: the running stage is stopped, the workspace removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        fprs = tuple(f"{float(f):g}" for f in args.fprs)
        print(budget_flow(args.seeds, args.references, args.snapshots, args.out, fprs))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("budget stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
