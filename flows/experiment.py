"""Experiment: one DVC experiment as a Prefect flow run; the flow that deployments schedule.

    python -m flows.experiment -S attack.epochs=50 --name short-attack     # run once
    python -m flows.experiment -S attack.lr=5e-3 --rev v1.0                # on another commit
    python -m flows.experiment --serve                                     # one-machine schedule

Every experiment is its base commit plus its own overrides, nothing else. The flow checks the
overrides against the base's params schema and runs in a workspace of its own: a temporary git
worktree of the repository checked out at the base (``HEAD`` unless ``rev`` names another),
sharing the repository's DVC cache and remote, with the overrides written only into that
worktree's params.yaml. The repository's own checkout is never touched, and two runs never share
a working copy. Stages are reproduced one at a time, each a Prefect task whose stage flow run is
its child, with the stage's output streamed into the log as it runs. With a DVC remote, each stage
first looks in the remote (outputs and DVC's run-cache), so a stage any host has computed is
restored, not rerun, and each finished stage is pushed at once, so an experiment cut short on one
host continues on another from the last finished stage. ``dvc exp save --name`` records the result
in the shared git repository (``dvc exp show`` lists it), with ``experiment.json`` holding the
Prefect flow run id, the requested overrides and the effective params diff against the base; the
flow run is named after the experiment and its artifacts carry the same record.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from flows._stage import PARENT_ENV, RUN_NAME_ENV, proc_stat
from seqmia.base.artifacts import atomic_path
from seqmia.base.errors import UserError, first_line
from seqmia.params.presets import check_preset, parse_overrides
from seqmia.params.schema import clip, parse_document, read_document, shown
from tasks.common import TIMINGS_ENV, TIMINGS_FILE

PARAMS = "params.yaml"
RECORD = "experiment.json"  # the experiment's own record, saved in its git commit
# Deployment name of ``--serve``; the pool deployment of prefect.yaml is "experiment".
SERVE_DEPLOYMENT = "experiment-serve"
STOP_GRACE_SECONDS = 30
# An experiment name is a file name twice: DVC's ref refs/exps/…/<name> (git writes <name>.lock
# beside it) and the workspace folder seqmia-<name>-XXXXXXXX; either must fit in 255 bytes.
MAX_NAME_BYTES = 200
# Characters a git ref cannot hold (git check-ref-format, as DVC checks names), besides control
# characters: space ~ ^ : ? * [ and backslash.
REF_FORBIDDEN = " ~^:?*[\\"

# The rules of ``dvc exp save --name`` (DVC checks refs/exps/<baseline>/<name> with git's
# check-ref-format and refuses "/"), each as (breaks the rule, what the name must be), plus a
# leading "-" (DVC's command line would take the name for an option) and a length bound.
NAME_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda n: not n, "must not be empty"),
    (lambda n: "/" in n, "must not contain '/' (DVC experiment names are one ref component)"),
    (lambda n: n.startswith("-"), "must not start with '-' (it would be read as an option)"),
    (lambda n: n.startswith("."), "must not start with '.' (git ref rule)"),
    (lambda n: n.endswith("."), "must not end with '.' (git ref rule)"),
    (lambda n: n.endswith(".lock"), "must not end with '.lock' (git ref rule)"),
    (lambda n: ".." in n, "must not contain '..' (git ref rule)"),
    (lambda n: "@{" in n, "must not contain '@{' (git ref rule)"),
    (
        lambda n: any(ord(c) < 0x20 or ord(c) == 0x7F for c in n),
        "must not contain control characters (git ref rule)",
    ),
    (
        lambda n: any(c in REF_FORBIDDEN for c in n),
        "must not contain a space or any of ~ ^ : ? * [ \\ (git ref rule)",
    ),
    (lambda n: any("\ud800" <= c <= "\udfff" for c in n), "must be valid UTF-8 text"),
    (
        lambda n: len(n.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES,
        f"must be at most {MAX_NAME_BYTES} bytes long (it names files)",
    ),
)


def git(*args: str, cwd: Path) -> str:
    """Run ``git args…`` in ``cwd``; its stdout, stripped. Raises with its stderr on failure.
    A revision among ``args`` goes after ``--end-of-options``, so git never reads it as an
    option (``check_rev`` also refuses a leading "-")."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


def check_experiment_name(name: str) -> None:
    """Refuse, in one line naming the rule it breaks, an experiment name that ``dvc exp save``
    would refuse after the whole run (or that would break the workspace's folder name)."""
    for breaks, rule in NAME_RULES:
        if breaks(name):
            raise UserError(f"experiment name {shown(name)} {rule}")


def check_rev(rev: str) -> None:
    """Refuse a base revision that git could read as an option (``--output=FILE`` makes
    ``git show`` write a file) or that cannot be a revision at all."""
    if not rev:
        raise UserError("--rev must name a git revision, got ''")
    if rev.startswith("-"):
        raise UserError(f"--rev {shown(rev)} must not start with '-' (a revision never does)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rev):
        raise UserError(f"--rev {shown(rev)} must not contain control characters")


def show_params(rev: str, cwd: Path) -> Any:
    """params.yaml at revision ``rev`` of the repository at ``cwd``, read as every stage reads
    it (``parse_document``); ``UserError`` in one line if there is none."""
    result = subprocess.run(
        ["git", "show", "--end-of-options", f"{rev}:{PARAMS}"], cwd=cwd, capture_output=True
    )
    if result.returncode != 0:
        why = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["git failed"])[0]
        raise UserError(f"--rev {shown(rev)}: no {PARAMS} at that revision ({clip(why, 160)})")
    return parse_document(result.stdout, f"{clip(rev, 60)}:{PARAMS}")


def write_overrides(path: Path, overrides: Mapping[str, Any]) -> None:
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


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: params as dotted keys (lists kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def params_diff(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every dotted key whose value differs between two parsed params documents:
    ``{key: {"base": old, "run": new}}`` (a missing side is None)."""
    old, now = flatten(base), flatten(new)
    return {
        key: {"base": old.get(key), "run": now.get(key)}
        for key in sorted(old.keys() | now.keys())
        if old.get(key) != now.get(key)
    }


def pipeline_stages(workspace: Path) -> list[str]:
    """The stages of dvc.yaml, in the order they are declared (each after its inputs)."""
    return list(yaml.safe_load((workspace / "dvc.yaml").read_text())["stages"])


def has_remote(workspace: Path) -> bool:
    """Whether a DVC remote is configured (shared storage between hosts)."""
    listed = subprocess.run(
        ["dvc", "remote", "list"], cwd=workspace, capture_output=True, text=True
    )
    return bool(listed.stdout.strip())


@contextmanager
def workspace_at(repo: Path, base: str, label: str) -> Iterator[Path]:
    """A temporary git worktree of ``repo`` checked out at commit ``base`` that uses ``repo``'s DVC
    cache, local DVC settings (credentials) and remotes, however they were added; removed
    afterwards, whatever happens."""
    parent = Path(tempfile.mkdtemp(prefix=f"seqmia-{label}-"))
    workspace = parent / "workspace"
    git("worktree", "add", "--detach", "--end-of-options", str(workspace), base, cwd=repo)
    try:
        local = repo / ".dvc" / "config.local"
        if local.is_file():
            shutil.copy(local, workspace / ".dvc" / "config.local")
        cache = subprocess.run(
            ["dvc", "cache", "dir"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run(
            ["dvc", "config", "--local", "cache.dir", str((repo / cache).resolve())],
            cwd=workspace,
            check=True,
            capture_output=True,
        )
        carry_remotes(repo, workspace)
        # Each stage's `dvc repro` would otherwise end with DVC's "git add dvc.lock / enable
        # core.autostage" hint; in a workspace the experiment's own commit records the lock.
        subprocess.run(
            ["dvc", "config", "--local", "core.autostage", "true"],
            cwd=workspace,
            check=True,
            capture_output=True,
        )
        yield workspace
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(workspace)], cwd=repo, capture_output=True
        )
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)


def carry_remotes(repo: Path, workspace: Path) -> None:
    """Give the workspace the repository's DVC remotes as they are set up now, committed or not
    (``dvc remote add`` writes ``.dvc/config``, which the worktree has only as committed) or
    ``--local``: every ``remote.*`` setting and the default remote, written into the workspace's
    local config. ``dvc config --list`` prints a local-folder remote's path resolved, so a relative
    one keeps pointing at the repository's folder, not into the workspace."""
    listed = subprocess.run(["dvc", "config", "--list"], cwd=repo, capture_output=True, text=True)
    if listed.returncode != 0:
        raise UserError(f"cannot read the DVC config of {repo}: {first_line(listed.stderr)}")
    for line in listed.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and (key.startswith("remote.") or key == "core.remote"):
            subprocess.run(
                ["dvc", "config", "--local", key, value],
                cwd=workspace,
                check=True,
                capture_output=True,
            )


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, read from /proc; none are known
    where there is no /proc (then only the group's leader is watched, ``leader_running``)."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return []
    members = []
    for entry in proc_root.iterdir():
        try:
            state, _, pgrp = proc_stat(entry.name)[:3]
        except (OSError, ValueError, IndexError):
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def leader_running(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` (started here, not yet reaped) still runs, asked without reaping it: an
    unreaped child keeps its pid, and so the id of the group it leads, this process's."""
    if proc.returncode is not None:
        return False
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop ``proc`` and every process of its group: SIGTERM, then SIGKILL to what is left after
    ``grace`` seconds. Waits for the whole group, not only ``proc``: a stage process that DVC
    started can outlive ``dvc`` (its tasks' threads finish before the interpreter exits), and one
    still writing into the workspace while it is removed leaves files behind.

    ``proc`` must not have been reaped (``stream`` waits for it with ``WNOWAIT``): it is reaped
    here, last, so every signal goes to the group this code started, whose id no other process
    can have been given meanwhile."""
    if proc.returncode is not None:
        raise RuntimeError(f"process {proc.pid} was already reaped: its group id is no longer ours")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        os.killpg(proc.pid, sig)  # the unreaped leader (running or a zombie) holds the group id
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not leader_running(proc) and not group_members(proc.pid):
                break
            time.sleep(0.1)
        else:
            continue  # still running after the grace period: SIGKILL
        break
    proc.wait()


def stream(cmd: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    """Run ``cmd`` in its own process group, sending each output line to the Prefect log as it
    comes. If this flow is cancelled or stopped meanwhile, the whole group is terminated (SIGTERM,
    then SIGKILL after a grace period), so no stage outlives its experiment. Returns the output;
    raises with its tail if the command fails."""
    logger = get_run_logger()
    lines: list[str] = []
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            logger.info("%s", lines[-1])
        # The leader's exit, without reaping it: its group may still hold a stage process.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    finally:
        if leader_running(proc) or group_members(proc.pid):
            logger.warning("stopping %s (process group %d)", " ".join(cmd), proc.pid)
            stop_group(proc)
        else:
            proc.wait()
    output = "\n".join(lines)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-4000:]}")
    return output


def stage_env(repo: Path, name: str) -> dict[str, str]:
    """The environment of a workspace's stages: the repository's data root and timings file
    (by absolute path: the workspace is elsewhere), the experiment's name on every timing."""
    data_root = os.environ.get("SEQMIA_DATA_ROOT") or "data/raw"
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",  # stage logs stream line by line
        "SEQMIA_DATA_ROOT": str((repo / data_root).resolve()),
        TIMINGS_ENV: str(timings_file(repo)),
        "SEQMIA_EXPERIMENT": name,
    }


def timings_file(repo: Path) -> Path:
    """The repository's timings file, where every workspace's stages append."""
    return repo / TIMINGS_FILE


@task(task_run_name="stage-{stage}")
def reproduce_stage(stage: str, workspace: Path, env: Mapping[str, str], remote: bool) -> str:
    """Bring one stage up to date: restore it from the remote's run-cache if any host computed
    it, else run it as a child flow run of this task; with a remote, push it right away."""
    env = {
        **env,
        PARENT_ENV: str(runtime.task_run.id),
        RUN_NAME_ENV: f"{env['SEQMIA_EXPERIMENT']}-{stage}",
    }
    command = ["dvc", "repro", "--single-item", *(["--pull"] if remote else []), stage]
    try:
        output = stream(command, workspace, env)
    except Exception:
        raise  # the stage failed: its flow run says how
    except BaseException:  # the experiment was cancelled or stopped, and stopped the stage
        why = f"stopped with experiment {env['SEQMIA_EXPERIMENT']}, which was cancelled or stopped"
        cancel_unfinished_children(runtime.task_run.id, why)
        raise
    if remote:
        stream(["dvc", "push", "--run-cache", stage], workspace, env)
    return output


def cancel_unfinished_children(task_run_id: Any, why: str) -> None:
    """Mark the flow runs started under task run ``task_run_id`` (a stage's) that did not
    complete as Cancelled with message ``why``. A stage stopped by its experiment reports the
    SIGTERM it got as a crash; it was told to stop, so its state says that instead."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentTaskRunId
    from prefect.states import Cancelled

    children = FlowRunFilter(parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[task_run_id]))
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=children):
            if run.state is None or not run.state.is_completed():
                client.set_flow_run_state(run.id, Cancelled(message=why), force=True)


def name_where_it_stopped(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_crashed`` hook: a run that crashed because the process running it was stopped (a
    worker killed, a host shut down) says where that was and how to go on, instead of only
    Prefect's "Execution was aborted by Python system exit call"."""
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.id)
        where = run.infrastructure_pid or f"{socket.gethostname()}:{os.getpid()}"
        pool = f" (work pool {run.work_pool_name})" if run.work_pool_name else ""
        message = (
            f"Stopped on {where}{pool}, the worker or host that ran it: {state.message} "
            "Submit it again to go on: finished stages come back from DVC's run-cache."
        )
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)


@task
def save_experiment(workspace: Path, name: str, record: Mapping[str, Any]) -> str:
    """Record the workspace (params, dvc.lock, metrics, ``experiment.json``) as DVC experiment
    ``name`` in the shared git repository."""
    (workspace / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    message = f"{name}: Prefect flow run {record['flow_run_id']}"
    # Two `dvc exp save` at once in worktrees of one repository can fail inside DVC (seen: an
    # "unexpected error" from one of two runs served side by side): one at a time per repository.
    common = Path(git("rev-parse", "--git-common-dir", cwd=workspace))
    with open(workspace / common / "seqmia-exp-save.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return stream(
            ["dvc", "exp", "save", "--name", name, "--include-untracked", RECORD, "-m", message],
            workspace,
            os.environ,
        )


def metrics_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack, best AUC first: the headline numbers of ``eval/metrics.json``."""
    rows = []
    for name, report in sorted(metrics["attacks"].items(), key=lambda kv: -kv[1]["auc"]):
        row = {"attack": name, "auc": round(report["auc"], 4)}
        row.update({f"tpr@{k}": round(v, 4) for k, v in report["tpr_at_fpr"].items()})
        rows.append(row)
    return rows


def record_markdown(record: Mapping[str, Any]) -> str:
    """The experiment record as a short Markdown page (a Prefect artifact)."""
    requested = json.dumps(record["overrides"]) if record["overrides"] else "none"
    lines = [
        f"**Experiment** `{record['name']}` on base commit `{record['base'][:12]}`"
        f" (`{record['rev']}`), Prefect flow run `{record['flow_run_id']}`",
        "",
        f"Requested overrides: {requested}",
        "",
        "| params key | base | this run |",
        "|---|---|---|",
    ]
    for key, change in record["params_diff"].items():
        lines.append(f"| {key} | {json.dumps(change['base'])} | {json.dumps(change['run'])} |")
    if not record["params_diff"]:
        lines.append("| (none: the base's params) | | |")
    return "\n".join(lines)


def experiment_name(name: str | None) -> str:
    """The experiment's name, which is also the flow run's: ``name`` if given (the flow run is
    renamed to it), else the flow run's own generated name."""
    run_name = runtime.flow_run.name
    if not name or name == run_name:
        return run_name
    with get_client(sync_client=True) as client:
        client.update_flow_run(runtime.flow_run.id, name=name)
    return name


@flow(name="experiment", on_crashed=[name_where_it_stopped])
def experiment_flow(
    overrides: dict[str, Any] | None = None, name: str | None = None, rev: str = "HEAD"
) -> dict:
    """Run the pipeline as one DVC experiment: commit ``rev`` with ``overrides`` (dotted params
    keys), in a workspace of its own; record it in DVC and in Prefect."""
    logger = get_run_logger()
    overrides = overrides or {}
    # Checked again here (main checks first): a deployment's run gets its parameters from the API.
    check_rev(rev)
    if name is not None:
        check_experiment_name(name)  # before the flow run is renamed to it
    repo = Path(git("rev-parse", "--show-toplevel", cwd=Path.cwd()))
    try:
        base = git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}", cwd=repo)
    except RuntimeError as err:
        raise UserError(f"rev {shown(rev)} is not a commit of {repo}: {first_line(err)}") from err
    base_params = show_params(base, repo)
    check_preset(base_params, overrides)
    name = experiment_name(name)
    check_experiment_name(name)  # a generated run name too, before any stage
    taken = subprocess.run(
        ["git", "show-ref", "--verify", "--quiet", f"refs/exps/{base[:2]}/{base[2:]}/{name}"],
        cwd=repo,
    )  # refuse before any work, not at `dvc exp save` after all of it
    if taken.returncode == 0:
        raise UserError(f"experiment name {name!r} is already used on {base[:12]}; pick another")
    logger.info("experiment %s: %s at %s with overrides %s", name, rev, base[:12], overrides)

    with workspace_at(repo, base, name) as workspace:
        write_overrides(workspace / PARAMS, overrides)
        diff = params_diff(base_params, read_document(workspace / PARAMS))
        record = {
            "name": name,
            "rev": rev,
            "base": base,
            "flow_run_id": str(runtime.flow_run.id),
            "overrides": overrides,
            "params_diff": diff,
        }
        env = stage_env(repo, name)
        remote = has_remote(workspace)
        for stage in pipeline_stages(workspace):
            reproduce_stage(stage, workspace, env, remote)
        save_experiment(workspace, name, record)
        metrics = json.loads((workspace / "eval" / "metrics.json").read_text())

    create_markdown_artifact(
        key="seqmia-experiment",
        markdown=record_markdown(record),
        description=f"Experiment {name}: what ran",
    )
    create_table_artifact(
        key="seqmia-metrics",
        table=metrics_table(metrics),
        description=(
            f"Experiment {name} on {base[:12]}; requested overrides {overrides or 'none'}; "
            f"params diff against the base: "
            + (", ".join(f"{k}: {v['base']} -> {v['run']}" for k, v in diff.items()) or "none")
        ),
    )
    return {"experiment": record, "metrics": metrics}


def submit(deployment: str, overrides: dict[str, Any], name: str | None, rev: str) -> str:
    """Queue one experiment on ``deployment`` and return a line naming its flow run. A given
    name is the flow run's from submission, so the queue and the worker's log show it while the
    run waits for its slot (without one, the run keeps Prefect's generated name, which the
    experiment then takes)."""
    from prefect.deployments import run_deployment

    parameters = {"overrides": overrides, "name": name, "rev": rev}
    run = run_deployment(deployment, parameters=parameters, flow_run_name=name, timeout=0)
    return f"queued flow run {run.name} ({run.id}) on {deployment}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", help="experiment name (dvc exp show); default: the run's name")
    parser.add_argument("--rev", default="HEAD", help="base git revision (default HEAD)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help=f"serve the flow as deployment experiment/{SERVE_DEPLOYMENT} (runs in this checkout)",
    )
    parser.add_argument(
        "--submit",
        metavar="DEPLOYMENT",
        help="queue the run on a deployment (experiment/experiment: the work pool's; "
        f"experiment/{SERVE_DEPLOYMENT}) instead of running it here; it is named from the start",
    )
    args = parser.parse_args()
    # A stop request (SIGTERM from a worker, kill) unwinds like Ctrl-C, so the stage's process
    # group is terminated and the temporary workspace removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.serve:
            # Prefect pauses a served deployment when its process stops; serving it again
            # resumes it (``paused=False``), else its schedules would stay off.
            experiment_flow.serve(name=SERVE_DEPLOYMENT, paused=False)
            return
        # Fail fast, before Prefect starts anything (the flow checks again).
        if args.name is not None:
            check_experiment_name(args.name)
        check_rev(args.rev)
        overrides = parse_overrides(args.set)
        check_preset(show_params(args.rev, Path.cwd()), overrides)
        if args.submit:
            print(submit(args.submit, overrides, args.name, args.rev))
            return
        experiment_flow(overrides=overrides, name=args.name, rev=args.rev)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stages stopped, workspace removed
        print("experiment stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
