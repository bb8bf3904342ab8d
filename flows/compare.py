"""Compare DVC experiments at a glance, offline: a compact table and one HTML page of ROC curves.

    python -m flows.compare                       # every experiment of this branch's history
    python -m flows.compare exp-a exp-b --html eval/compare.html
    python -m flows.compare --all                 # every experiment of the repository

Each row: experiment, base commit, requested overrides (from the experiment's ``experiment.json``
when the experiment flow made it, else the params diff against its base), SeqMIA's AUC and TPR at
each FPR target with their 95% intervals and the epoch its attack model was selected at, and the
best other attack (with its selected epoch when it trains one). The page holds the table and the
SeqMIA ROC curves of the chosen experiments overlaid (linear and log FPR, from the smallest FPR
the runs resolve), drawn as inline SVG: no script, no network; each curve has its own width and
dash, so identical curves stay visible. Artefacts come from git and the local DVC cache (``dvc
pull`` first for experiments computed elsewhere).
"""

from __future__ import annotations

import argparse
import html
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dvc.api
import numpy as np
import pandas as pd

from seqmia.base.errors import UserError
from seqmia.params.schema import parse_document

METRICS = "eval/metrics.json"
ROC = "eval/roc/seqmia.csv"
ATTACK_SUMMARY = "data/attack/summary.json"  # SeqMIA's selected epoch
BASELINES_SUMMARY = "data/baselines/summary.json"  # each trained baseline's
# Dash patterns by curve, so that curves lying on each other stay visible.
DASHES = ("", "7 4", "2 3", "10 3 2 3", "1 5")
COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass
class Experiment:
    name: str
    commit: str
    base: str
    overrides: dict[str, Any]
    metrics: dict[str, Any]
    roc: pd.DataFrame | None
    epochs: dict[str, int] | None = None  # attack -> selected epoch, of those that train a model


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def show_file(repo: Path, rev: str, path: str) -> bytes:
    """The bytes of ``path`` at commit ``rev``; ``--end-of-options`` so that no revision can be
    read as an option of git show (``--output=FILE`` would write a file)."""
    return subprocess.run(
        ["git", "show", "--end-of-options", f"{rev}:{path}"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout


def show_params(repo: Path, rev: str) -> Any:
    """params.yaml at commit ``rev``, read as every stage reads it (``parse_document``)."""
    return parse_document(show_file(repo, rev, "params.yaml"), f"{rev[:12]}:params.yaml")


def experiment_refs(repo: Path) -> dict[str, tuple[str, str]]:
    """``{name: (commit, baseline)}`` of every DVC experiment ref
    (``refs/exps/<baseline>/<name>``)."""
    listing = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/")
    found: dict[str, tuple[str, str]] = {}
    for line in listing.splitlines():
        ref, commit = line.split()
        parts = ref.split("/")
        if len(parts) != 5:  # refs/exps/ab/cdef…/name; skip DVC's bookkeeping refs
            continue
        found[parts[4]] = (commit, parts[2] + parts[3])
    return found


def in_history(repo: Path, refs: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The experiments whose base commit is ``HEAD`` or one of its ancestors (this branch's)."""
    history = set(git(repo, "rev-list", "HEAD").split())
    return {name: ref for name, ref in refs.items() if ref[1] in history}


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}{key}."))
    return out


def load_experiment(repo: Path, name: str, commit: str, baseline: str) -> Experiment:
    """One experiment's record, metrics and SeqMIA ROC curve (None if not in the cache)."""
    try:
        record = json.loads(show_file(repo, commit, "experiment.json"))
        base, overrides = record["base"], record["overrides"]
    except subprocess.CalledProcessError:  # saved by hand: its params diff is its overrides
        base = baseline
        old = flat(show_params(repo, base))
        new = flat(show_params(repo, commit))
        overrides = {k: v for k, v in new.items() if old.get(k) != v}
    try:
        metrics = json.loads(dvc.api.read(METRICS, repo=str(repo), rev=commit))
    except Exception as err:  # noqa: BLE001 - any DVC failure means: not available here
        raise UserError(
            f"experiment {name}: cannot read {METRICS} ({type(err).__name__}); "
            "run `dvc pull` (or `dvc exp pull`) for experiments computed elsewhere"
        ) from err
    try:
        roc = pd.read_csv(io.StringIO(dvc.api.read(ROC, repo=str(repo), rev=commit)))
    except Exception:  # noqa: BLE001 - the table still works without the curve
        roc = None
    epochs = {}
    for path in (ATTACK_SUMMARY, BASELINES_SUMMARY):
        try:
            summary = json.loads(dvc.api.read(path, repo=str(repo), rev=commit))
        except Exception:  # noqa: BLE001 - the table still works without the epochs
            continue
        epochs |= selected_epochs(summary, path == ATTACK_SUMMARY)
    return Experiment(name, commit, base, overrides, metrics, roc, epochs)


def selected_epochs(summary: dict[str, Any], seqmia: bool) -> dict[str, int]:
    """Attack -> selected epoch from SeqMIA's attack summary or the baselines' summary."""
    if seqmia:
        return {"seqmia": int(summary["selected_epoch"])}
    return {k: int(v["selected_epoch"]) for k, v in summary.items() if "selected_epoch" in v}


def interval(value: float, ci: list[float] | None) -> str:
    if not ci:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def fpr_targets(experiments: list[Experiment]) -> list[str]:
    keys = {k for e in experiments for k in e.metrics["attacks"]["seqmia"]["tpr_at_fpr"]}
    return sorted(keys, key=float)


def table_rows(experiments: list[Experiment]) -> list[dict[str, str]]:
    """The compact table: one row of strings per experiment."""
    targets = fpr_targets(experiments)
    rows = []
    for e in experiments:
        seqmia = e.metrics["attacks"]["seqmia"]
        ci = seqmia.get("ci95") or {}
        epochs = e.epochs or {}
        row = {
            "experiment": e.name,
            "base": e.base[:7],
            "overrides": " ".join(f"{k}={json.dumps(v)}" for k, v in e.overrides.items()) or "-",
            "SeqMIA AUC": interval(seqmia["auc"], ci.get("auc")),
        }
        for t in targets:
            value = seqmia["tpr_at_fpr"].get(t)
            row[f"TPR@{float(t):.2%} FPR"] = (
                "-" if value is None else interval(value, (ci.get("tpr_at_fpr") or {}).get(t))
            )
        row["SeqMIA epoch"] = str(epochs["seqmia"]) if "seqmia" in epochs else "-"
        others = {k: v for k, v in e.metrics["attacks"].items() if not k.startswith("seqmia")}
        if others:
            best = max(others, key=lambda k: others[k]["auc"])
            epoch = f", epoch {epochs[best]}" if best in epochs else ""
            row["best baseline (AUC)"] = f"{best} {others[best]['auc']:.3f}{epoch}"
        rows.append(row)
    return rows


def text_table(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(r.get(c, "").ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def smallest_fpr_decade(experiments: list[Experiment]) -> int:
    """The log-FPR axis starts at the decade holding the smallest FPR the runs resolve (one
    non-member in the largest non-member count): 1e-4 for 2,500 non-members, 1e-2 for 20."""
    counts = [e.metrics["attacks"]["seqmia"].get("n_nonmembers") for e in experiments]
    largest = max((c for c in counts if c), default=10_000)
    return int(np.floor(np.log10(1.0 / largest)))


def roc_svg(experiments: list[Experiment], log_x: bool, size: int = 360) -> str:
    """Overlaid ROC curves as one inline SVG; ``log_x`` puts FPR on a log scale from the decade
    of the smallest FPR the runs resolve. Curve i is drawn wider than the ones after it, with
    its own dash, so that curves lying on each other all stay visible."""
    pad, inner = 48, size - 64
    lo = float(smallest_fpr_decade(experiments)) if experiments else -4.0

    def x_of(fpr: np.ndarray) -> np.ndarray:
        if log_x:
            return pad + (np.log10(np.clip(fpr, 10**lo, 1.0)) - lo) / -lo * inner
        return pad + fpr * inner

    def y_of(tpr: np.ndarray) -> np.ndarray:
        return 16 + (1.0 - tpr) * inner

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect x="{pad}" y="16" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
    ]
    ticks = [10.0**p for p in range(int(lo), 1)] if log_x else [0.0, 0.25, 0.5, 0.75, 1.0]
    for t in ticks:
        x = float(x_of(np.array([t]))[0])
        label = f"1e{int(np.log10(t))}" if log_x else f"{t:g}"
        parts.append(f'<text x="{x:.1f}" y="{size - 30}" text-anchor="middle">{label}</text>')
    for t in (0.0, 0.5, 1.0):
        y = float(y_of(np.array([t]))[0])
        parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    diagonal = np.linspace(10**lo if log_x else 0.0, 1.0, 50)
    xs, ys = x_of(diagonal), y_of(diagonal)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#ccc" stroke-dasharray="4"/>')
    for i, e in enumerate(experiments):
        if e.roc is None:
            continue
        colour = COLOURS[i % len(COLOURS)]
        fpr, tpr = e.roc["fpr"].to_numpy(float), e.roc["tpr"].to_numpy(float)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x_of(fpr), y_of(tpr), strict=True))
        title = f"<title>{html.escape(e.name)}</title>"
        width = max(1.0, 1.0 + 0.8 * (len(experiments) - 1 - i))  # the first widest
        dash = DASHES[i % len(DASHES)]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" '
            f'stroke-width="{width:.1f}"{dashed}>{title}</polyline>'
        )
    axis = "FPR (log)" if log_x else "FPR"
    parts.append(f'<text x="{pad + inner / 2}" y="{size - 12}" text-anchor="middle">{axis}</text>')
    parts.append(
        f'<text x="12" y="{16 + inner / 2}" transform="rotate(-90 12 {16 + inner / 2})" '
        'text-anchor="middle">TPR</text></svg>'
    )
    return "".join(parts)


def html_page(experiments: list[Experiment], rows: list[dict[str, str]]) -> str:
    """A self-contained page: the table, a legend and the overlaid SeqMIA ROC curves."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(r.get(c, ''))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    legend = "".join(
        f'<li><span style="color:{COLOURS[i % len(COLOURS)]}">&#9632;</span> '
        f"{html.escape(e.name)}{'' if e.roc is not None else ' (no ROC in the cache)'}</li>"
        for i, e in enumerate(experiments)
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>SeqMIA experiments</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}ul{list-style:none}</style>"
        f"</head><body><h1>SeqMIA experiments</h1><table><tr>{head}</tr>{body}</table>"
        f"<h2>SeqMIA ROC curves</h2><ul>{legend}</ul>"
        f"{roc_svg(experiments, log_x=False)}{roc_svg(experiments, log_x=True)}</body></html>\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiments", nargs="*", help="experiment names (default: those of this branch's history)"
    )
    parser.add_argument("--all", action="store_true", help="experiments of every base commit")
    parser.add_argument("--html", default="eval/compare.html", help="page to write")
    parser.add_argument("--repo", default=".", help="repository (default: here)")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    try:
        every = experiment_refs(repo)
        refs = every if args.all or args.experiments else in_history(repo, every)
        names = args.experiments or sorted(refs)
        missing = [n for n in names if n not in refs]
        if missing:
            raise UserError(f"no DVC experiment named {missing}; known: {sorted(refs)}")
        if not names:
            raise UserError(
                f"no DVC experiments based on this branch's history ({len(every)} elsewhere); "
                "name some, or use --all"
            )
        experiments = [load_experiment(repo, n, *refs[n]) for n in names]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    rows = table_rows(experiments)
    print(text_table(rows))
    left_out = len(every) - len(refs)
    if left_out and not (args.all or args.experiments):
        print(f"\n{left_out} experiment(s) based on other branches left out (--all shows them)")
    page = Path(args.html)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html_page(experiments, rows))
    print(f"\nROC curves and table: {page}")


if __name__ == "__main__":
    main()
