"""Benchmark the pipeline: per-stage wall time, peak memory and throughput, beside bare PyTorch.

Runs the given configuration (default: the repository's params.yaml) in a fresh copy of the
repository with one real ``dvc repro``, as a user runs it, reading its output as it comes: a
stage's wall time runs from DVC's "Running stage" line for it to the next one (its process, DVC
saving its outputs and checking the next stage), and each stage prints its own figures at its
end. Then it times a no-change ``dvc repro`` and a ``dvc repro`` after changing only
``attack.*``. In the same run it times a bare PyTorch loop of the same model on the same data
(plain NCHW tensors, one process with all cores, no Prefect, no DVC) for training, distillation
and inference, so the ratios compare like with like on this machine.

    SEQMIA_DATA_ROOT=../shared/datasets python benchmarks/pipeline.py

Each stage's fixed cost is its wall time minus the seconds its flow body ran (the line
``flows/_stage.py`` prints at the end of a stage): interpreter start, imports, finding or
starting the Prefect server, creating the flow run and DVC's own checks. The table splits it
into DVC's part (the stage's wall time outside its own process, which also holds the process's
exit), the wait for the run's shared Prefect server (paid once per run, by the first stage),
``import torch`` (which the model work needs, as the bare loop does) and the rest, the stage's
own. DVC's start before the first stage is a row of its own, paid once per ``dvc repro``. A
stage's peak memory is the largest resident set of its process or of a worker process it ran
(the stage prints it). The whole run is set against the sum of the bare loop's times for the
same model work.

Every stage's wall time is also given as a share of the run and in "bare epochs": seconds divided
by the bare loop's time for one training epoch over the target's members, which takes out most of
the machine's speed when runs on different hosts or days are compared. ``--compare-metrics FILE``
says whether the run's ``eval/metrics.json`` equals FILE (e.g. the one of the last committed run).

Where the machine's CPU went during each stage is a second table: /proc is read at every
"Running stage" line, and a stage's interval splits the machine's busy CPU seconds into the
shared Prefect server's processes, DVC's own process, other processes that lived through the
interval (anything else on the machine, this benchmark included), and the remainder: the
stage's processes (and any other process that started and ended within it). Steal is the time
the hypervisor gave this machine's CPUs to others.

Prints Markdown tables; ``--out FILE`` also writes them to FILE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make the repository importable

from benchmarks.scratch_repo import make_scratch_repo  # noqa: E402
from flows._server import stop_shared_server  # noqa: E402
from flows._stage import (  # noqa: E402
    PEAK_PREFIX,
    PROCESS_PREFIX,
    SERVER_START_PREFIX,
    TIMING_PREFIX,
)

STAGES = tuple(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
# Stages whose work is another stage's kind of work, for the bare-PyTorch comparison.
BARE_EQUIVALENT = {"reference": "train"}


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB of its largest process, output)."""
    log = cwd / ".bench.log"
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage covers the waited-for descendants
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


@dataclasses.dataclass(frozen=True)
class StageTime:
    """One stage's row: wall and fixed seconds, the fixed cost's parts, peak MiB."""

    stage: str
    wall: float
    fixed: float  # wall minus the flow body's seconds
    in_dvc: float  # wall minus the stage process's own seconds
    server: float  # starting the run's shared Prefect server (0 unless this stage started it)
    torch: float  # `import torch`, for a stage that imports it
    peak: float

    @property
    def own(self) -> float:
        """The fixed cost that is neither DVC's, the server's start nor torch's import."""
        return self.fixed - self.in_dvc - self.server - self.torch


def logged_seconds(log: str, prefix: str) -> float | None:
    """The seconds on the stage's last ``prefix`` line (flows/_stage.py prints them at its end:
    its flow body's, its process's, and the shared server's start if this stage started it)."""
    lines = [line for line in log.splitlines() if prefix in line]
    return float(lines[-1].split(prefix)[1]) if lines else None


RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")
TICKS = os.sysconf("SC_CLK_TCK")
# Command-line fragments of the shared server's processes: its keeper and its uvicorn.
SERVER_PROCESSES = ("flows/_server.py", "prefect.server.api.server:create_app")


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    """The machine's CPU seconds at one moment: busy and stolen (from /proc/stat), and each
    process's own (pid -> (seconds, kind): "server", "dvc" or "other")."""

    busy: float
    steal: float
    processes: dict[int, tuple[float, str]]


def cpu_snapshot(dvc_pid: int) -> CpuSnapshot:
    """Read /proc now; ``dvc_pid`` is DVC's own process."""
    # cpu  user nice system idle iowait irq softirq steal ...
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    processes: dict[int, tuple[float, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while being read
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; utime, stime: 12th, 13th
        pid = int(entry.name)
        kind = "server" if any(f in cmdline for f in SERVER_PROCESSES) else "other"
        kind = "dvc" if pid == dvc_pid else kind
        processes[pid] = ((int(fields[11]) + int(fields[12])) / TICKS, kind)
    return CpuSnapshot((user + nice + system + irq + softirq) / TICKS, steal / TICKS, processes)


@dataclasses.dataclass(frozen=True)
class CpuShare:
    """CPU seconds of one interval: the machine's busy and stolen time, and who was busy."""

    busy: float
    steal: float
    server: float
    dvc: float
    other: float

    @property
    def stage(self) -> float:
        """The rest: the stage's processes (and any that began and ended in the interval)."""
        return self.busy - self.server - self.dvc - self.other


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> CpuShare:
    """Who used the CPU from ``before`` to ``after``: a process that lived through the interval
    counts its increase, one that began within it all of its seconds."""
    by_kind = {"server": 0.0, "dvc": 0.0, "other": 0.0}
    for pid, (seconds, kind) in after.processes.items():
        by_kind[kind] += seconds - before.processes.get(pid, (0.0, kind))[0]
    return CpuShare(after.busy - before.busy, after.steal - before.steal, **by_kind)


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """One ``dvc repro`` of the whole pipeline, split by stage."""

    dvc_start: float  # seconds from launching DVC to its first "Running stage" line
    walls: dict[str, float]  # stage -> seconds from its "Running stage" line to the next one
    logs: dict[str, str]  # stage -> the output between those lines (its own lines included)
    cpu: dict[str, CpuShare]  # stage -> where the machine's CPU went over its wall time
    total: float


def run_pipeline(workdir: Path, env: dict[str, str]) -> PipelineRun:
    """Run one ``dvc repro --no-run-cache`` and time each stage from its output as it arrives.

    ``--no-run-cache``: with ``--share-cache``, DVC's run-cache may hold a stage from an earlier
    benchmark run of the same code and would restore it instead of running it."""
    env = {**env, "PYTHONUNBUFFERED": "1"}  # DVC's lines arrive when printed, not when flushed
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["dvc", "repro", "--no-run-cache"],
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    marks: list[tuple[str, float]] = []
    snapshots: list[CpuSnapshot] = []
    lines: dict[str, list[str]] = {}
    everything: list[str] = []
    for line in proc.stdout:
        now = time.perf_counter()
        everything.append(line)
        found = RUNNING_STAGE.search(line)
        if found:
            marks.append((found.group(1), now))
            snapshots.append(cpu_snapshot(proc.pid))
            lines[found.group(1)] = []
            print(f"{found.group(1)} ...", file=sys.stderr, flush=True)
        elif marks:
            lines[marks[-1][0]].append(line)
    # Before waiting for DVC: its process is still in /proc (running, or ended and not yet
    # reaped), so its seconds still count as DVC's.
    snapshots.append(cpu_snapshot(proc.pid))
    proc.wait()
    ended = time.perf_counter()
    if proc.returncode != 0 or not marks:
        sys.exit(f"dvc repro failed:\n{''.join(everything)[-3000:]}")
    ends = [t for _, t in marks[1:]] + [ended]
    return PipelineRun(
        dvc_start=marks[0][1] - started,
        walls={stage: end - t for (stage, t), end in zip(marks, ends, strict=True)},
        logs={stage: "".join(text) for stage, text in lines.items()},
        cpu={
            stage: cpu_between(a, b)
            for (stage, _), a, b in zip(marks, snapshots[:-1], snapshots[1:], strict=True)
        },
        total=ended - started,
    )


def stage_samples(params: dict) -> dict[str, int]:
    """Images each stage pushes through a model (training steps or inference), from params."""
    sizes = params["partition"]
    classes = 10  # CIFAR-10 / digits; only used for the throughput column
    n_in = sizes["target_in"] * classes
    n_attack = (sizes["target_in"] + sizes["target_out"]) * classes
    n_distill = sizes["distill"] * classes
    n = params["distill"]["epochs"]
    extra = params["distill"]["shadow_extra_epochs"]
    n_pool = (sizes["shadow_in"] + sizes["shadow_out"]) * classes
    k = params["reference"]["models"]
    return {
        "train": 2 * params["train"]["epochs"] * n_in + 2 * n_attack,  # + final accuracy pass
        # each reference model: training, accuracy over the pool, logits on both roles' samples
        "reference": k * (params["train"]["epochs"] * n_in + n_pool + 2 * n_attack),
        "distill": (2 * n + extra) * n_distill + 2 * n_distill,  # + teacher posteriors
        "sequences": 2 * (n + 1) * n_attack,
    }


def bare_loop(workdir: Path, params: dict) -> dict[str, float]:
    """Images/s of a plain PyTorch loop (NCHW, all cores in one process) on the prepared data."""
    code = f"""
import json, time, numpy as np, pandas as pd, torch, torch.nn.functional as F
from seqmia.models.architectures import build_model
torch.manual_seed(0)
d = np.load("data/prepared/dataset.npz")
part = pd.read_parquet("data/partition.parquet")
ids = part.loc[part.role == "target_in", "sample_id"].to_numpy()
x = torch.from_numpy(((d["x"][ids] / 255.0 - d["mean"]) / d["std"]).astype(np.float32)
                     .transpose(0, 3, 1, 2).copy())
y = torch.from_numpy(d["y"][ids].astype(np.int64))
model = build_model({params["train"]["model"]!r}, tuple(x.shape[1:]), 10, torch.Generator())
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
bs = {params["train"]["batch_size"]}
def epoch(soft):
    model.train()
    for i in range(0, len(x), bs):
        out = model(x[i:i + bs])
        if soft:
            loss = -(torch.softmax(out.detach(), 1) * F.log_softmax(out, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(out, y[i:i + bs])
        opt.zero_grad(); loss.backward(); opt.step()
res = {{}}
for name, soft in (("train", False), ("distill", True)):
    epoch(soft)  # warm-up
    t = time.perf_counter(); epoch(soft); epoch(soft)
    res[name] = 2 * len(x) / (time.perf_counter() - t)
model.eval()
ibs = {params["sequences"]["batch_size"]}  # the stage's inference batch
with torch.no_grad():
    model(x[:ibs]); t = time.perf_counter()
    for i in range(0, len(x), ibs): model(x[i:i + ibs])
    res["sequences"] = len(x) / (time.perf_counter() - t)
print(json.dumps(res))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_import_seconds(workdir: Path, env: dict[str, str], tries: int = 3) -> float:
    """Median seconds of ``import torch`` in a fresh interpreter (the part of a model stage's
    fixed cost that its model work needs anyway, as the bare loop does)."""
    code = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    times = sorted(
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(tries)
    )
    return times[len(times) // 2]


def stages_importing_torch(workdir: Path, env: dict[str, str]) -> set[str]:
    """The stages that import torch before their flow body starts: through their flow module,
    or the whole-file params validation every stage runs first."""
    code = (
        "import sys\n__import__(sys.argv[1])\nfrom seqmia.params.schema import validate_file\n"
        "validate_file('params.yaml')\nprint('torch' in sys.modules)"
    )
    return {
        stage
        for stage in STAGES
        if subprocess.run(
            [sys.executable, "-c", code, f"flows.{stage}"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        == "True"
    }


def compare_metrics(new: dict, old: dict) -> str:
    """One sentence: the two metrics documents are equal, or which dotted keys differ."""

    def flat(node, prefix=""):
        if not isinstance(node, dict):
            return {prefix[:-1]: node}
        pairs = (flat(sub, f"{prefix}{key}.").items() for key, sub in node.items())
        return {k: v for items in pairs for k, v in items}

    a, b = flat(new), flat(old)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k, "missing") != b.get(k, "missing"))
    if not differ:
        return "eval/metrics.json equals the given metrics file, value for value."
    shown = ", ".join(differ[:12]) + (f" and {len(differ) - 12} more" if len(differ) > 12 else "")
    return f"eval/metrics.json differs from the given metrics file in {len(differ)} values: {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "run")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--share-cache",
        action="store_true",
        help="use the repository's DVC cache, so a later `dvc repro` there restores this run's "
        "outputs from DVC's run-cache instead of recomputing them",
    )
    parser.add_argument(
        "--compare-metrics",
        type=Path,
        help="a metrics.json to compare this run's eval/metrics.json with (equal or which differ)",
    )
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cache = REPO / ".dvc" / "cache" if args.share_cache else None
    make_scratch_repo(args.workdir, args.params.read_text(), cache)

    try:
        stop_shared_server()  # so that the run's first stage pays its start, as a first run does
    except RuntimeError as err:
        sys.exit(str(err))
    run = run_pipeline(args.workdir, env)
    missing = [stage for stage in STAGES if stage not in run.walls]
    if missing:
        sys.exit(f"dvc repro did not run {', '.join(missing)}; is the scratch repository fresh?")
    measured = []
    for stage in STAGES:
        wall, log = run.walls[stage], run.logs[stage]
        work = logged_seconds(log, TIMING_PREFIX)
        fixed = wall - work if work is not None else float("nan")
        process = logged_seconds(log, PROCESS_PREFIX)
        in_dvc = wall - process if process is not None else float("nan")
        server = logged_seconds(log, SERVER_START_PREFIX) or 0.0
        peak = logged_seconds(log, PEAK_PREFIX) or float("nan")
        measured.append((stage, wall, fixed, in_dvc, server, peak))
        print(
            f"{stage}: {wall:.1f} s, fixed cost {fixed:.1f} s, peak {peak:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    total = run.total
    metrics = json.loads((args.workdir / "eval" / "metrics.json").read_text())

    noop, _, _ = run_measured(["dvc", "repro"], args.workdir, env)
    edited = yaml.safe_load((args.workdir / "params.yaml").read_text())
    edited["attack"]["lr"] = edited["attack"]["lr"] * 0.5
    (args.workdir / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    attack_only, _, log = run_measured(["dvc", "repro", "--no-run-cache"], args.workdir, env)
    rerun = [s for s in STAGES if f"Running stage '{s}'" in log]

    bare = bare_loop(args.workdir, params)
    torch_s = torch_import_seconds(args.workdir, env)
    with_torch = stages_importing_torch(args.workdir, env)
    rows = [
        StageTime(stage, wall, fixed, in_dvc, server, torch_s if stage in with_torch else 0.0, peak)
        for stage, wall, fixed, in_dvc, server, peak in measured
    ]
    samples = stage_samples(params)
    # One bare training epoch over the target's members: the unit that makes stage times
    # comparable across machines.
    bare_epoch = params["partition"]["target_in"] * 10 / bare["train"]
    lines = [
        f"Configuration: {args.params.name}; {os.cpu_count()} CPUs; device {params['device']}; "
        f"one bare training epoch = {bare_epoch:.2f} s; `import torch` = {torch_s:.2f} s.",
        "",
        "| stage | wall s | share % | bare epochs | fixed cost s | of it: DVC s "
        "| wait for shared server s | torch import s | the stage's own s "
        "| peak MiB | images/s | bare PyTorch images/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare_total = 0.0
    for r in rows:
        common = (
            f"| {r.stage} | {r.wall:.1f} | {100 * r.wall / total:.1f} | {r.wall / bare_epoch:.1f} "
            f"| {r.fixed:.1f} | {r.in_dvc:.1f} | {r.server:.1f} | {r.torch:.1f} | {r.own:.1f} "
            f"| {r.peak:.0f} "
        )
        if r.stage in samples:
            rate = samples[r.stage] / r.wall
            reference = bare[BARE_EQUIVALENT.get(r.stage, r.stage)]
            bare_total += samples[r.stage] / reference
            lines.append(f"{common}| {rate:.0f} | {reference:.0f} | {rate / reference:.2f} |")
        else:
            lines.append(f"{common}| | | |")
    lines += [
        f"| DVC's start (once per `dvc repro`) | {run.dvc_start:.1f} "
        f"| {100 * run.dvc_start / total:.1f} | {run.dvc_start / bare_epoch:.1f} "
        f"| {run.dvc_start:.1f} | {run.dvc_start:.1f} | 0.0 | 0.0 | 0.0 | | | | |",
        f"| **full run** | {total:.1f} | 100 | {total / bare_epoch:.1f} "
        f"| {sum(r.fixed for r in rows) + run.dvc_start:.1f} "
        f"| {sum(r.in_dvc for r in rows) + run.dvc_start:.1f} "
        f"| {sum(r.server for r in rows):.1f} | {sum(r.torch for r in rows):.1f} "
        f"| {sum(r.own for r in rows):.1f} | {max(r.peak for r in rows):.0f} | | | |",
        "",
        f"Whole run {total:.1f} s against {bare_total:.1f} s for the bare loop doing the model "
        f"work of {', '.join(s for s in samples)} ({total / bare_total:.2f}x; the other stages "
        "have no bare-loop equivalent and count only in the run).",
        "",
        f"No-change `dvc repro`: {noop:.1f} s. After changing only `attack.lr`: "
        f"{attack_only:.1f} s ({100 * attack_only / total:.1f}% of the full run; stages rerun: "
        f"{', '.join(rerun)}).",
        "",
        "| attack | AUC | TPR@0.1% FPR | TPR@1% FPR | balanced acc. |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in json.loads(json.dumps(metrics))["attacks"].items():
        lines.append(
            f"| {name} | {r['auc']:.4f} | {r['tpr_at_fpr'].get('0.001', float('nan')):.4f} "
            f"| {r['tpr_at_fpr'].get('0.01', float('nan')):.4f} | {r['balanced_accuracy']:.4f} |"
        )
    for role, m in metrics["models"].items():
        lines.append(
            f"\n{role} model: train accuracy {m['train_accuracy']:.4f}, "
            f"test accuracy {m['test_accuracy']:.4f}"
        )
    lines += [
        "",
        f"Where the CPU went ({os.cpu_count()} CPUs; seconds of CPU time over each stage's wall "
        "time):",
        "",
        "| stage | wall s | machine busy s | busy % of all CPUs | the stage's processes s "
        "| shared server s | DVC s | other processes s | steal s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in STAGES:
        c, wall = run.cpu[stage], run.walls[stage]
        lines.append(
            f"| {stage} | {wall:.1f} | {c.busy:.1f} | {100 * c.busy / (wall * os.cpu_count()):.0f} "
            f"| {c.stage:.1f} | {c.server:.1f} | {c.dvc:.1f} | {c.other:.1f} | {c.steal:.1f} |"
        )
    if args.compare_metrics:
        lines.append("\n" + compare_metrics(metrics, json.loads(args.compare_metrics.read_text())))
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
