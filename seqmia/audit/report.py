"""A self-contained HTML report of one run: the comparison table with intervals, the ROC figure
(embedded), the models' accuracies and the run's parameters. Opens in any browser, no DVC."""

from __future__ import annotations

import base64
import html
import json
from typing import Any


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _cell(value: float, interval: list[float] | None) -> str:
    if interval is None:
        return _fmt(value)
    return f"{_fmt(value)} <small>[{_fmt(interval[0])}, {_fmt(interval[1])}]</small>"


def _behind(nonmembers: float) -> str:
    """What stands behind a TPR at a fixed FPR when few non-members do: under one, the rate
    cannot be resolved; under ten, a handful of non-members decide it (and its interval)."""
    if nonmembers < 1:
        return " <small>(unresolved)</small>"
    if nonmembers < 10:
        return f" <small>({nonmembers:g} non-members)</small>"
    return ""


def render_report(metrics: dict[str, Any], roc_png: bytes, params: dict[str, Any]) -> str:
    """HTML page for ``eval/metrics.json``-shaped ``metrics``, a PNG figure and the params."""
    attacks = metrics["attacks"]
    fprs = list(next(iter(attacks.values()))["tpr_at_fpr"])
    head = "".join(f"<th>TPR@{float(f) * 100:g}% FPR</th>" for f in fprs)
    rows = []
    ranked = sorted(attacks.items(), key=lambda kv: -kv[1]["auc"])
    for name, r in ranked:
        ci = r.get("ci95", {})
        tprs = "".join(
            "<td>"
            + _cell(r["tpr_at_fpr"][f], ci.get("tpr_at_fpr", {}).get(f))
            + _behind(r["nonmembers_at_fpr"][f])
            + "</td>"
            for f in fprs
        )
        zero = (
            f"<td>{_fmt(r['tpr_at_zero_fpr'])} <small>({r['members_above_every_nonmember']})"
            "</small></td>"
            if "tpr_at_zero_fpr" in r
            else "<td></td>"
        )
        cost = (
            f"<td>{r['cost']['models']} · {r['cost']['sample_epochs']:,}</td>"
            if "cost" in r
            else "<td></td>"
        )
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_cell(r['auc'], ci.get('auc'))}</td>"
            f"<td>{_fmt(r['balanced_accuracy'])}</td>{tprs}{zero}"
            f"<td>{r.get('top_tie', '')}</td><td>{r.get('distinct_scores', '')}</td>{cost}</tr>"
        )
    models = "".join(
        f"<tr><td>{role}</td><td>{_fmt(m['train_accuracy'])}</td><td>{_fmt(m['test_accuracy'])}"
        "</td></tr>"
        for role, m in metrics["models"].items()
    )
    first = next(iter(attacks.values()))
    counts = ", ".join(
        f"{float(f) * 100:g}% FPR = {n:g} non-members"
        for f, n in first["nonmembers_at_fpr"].items()
    )
    straddled = [
        f"{html.escape(name)} at {', '.join(f'{float(f) * 100:g}%' for f in r['straddled_fpr'])}"
        for name, r in ranked
        if r.get("straddled_fpr")
    ]
    tie_note = (
        '<p class="warn"><b>Warning: tied scores straddle a reported FPR</b> (the conservative '
        "TPR there drops the whole tie): " + "; ".join(straddled) + ".</p>"
        if straddled
        else "<p>No tie of scores straddles a reported FPR.</p>"
    )
    work = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{w['models']}</td><td>{w['sample_epochs']:,}</td>"
        f"<td>{html.escape(', '.join(w['used_by']))}</td></tr>"
        for name, w in metrics.get("training_work", {}).items()
    )
    image = base64.b64encode(roc_png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>SeqMIA membership inference report</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3em .8em; border-bottom: 1px solid #ddd; }}
td {{ text-align: right; }} td:first-child {{ text-align: left; }}
small {{ color: #666; }} pre {{ background: #f6f6f6; padding: 1em; }}
.warn {{ color: #a00; }}
</style></head><body>
<h1>Membership inference report</h1>
<p>{first["n_members"]} target members and {first["n_nonmembers"]} non-members. TPR at a fixed
FPR is conservative (largest TPR among ROC points at or below that FPR). Brackets: 95% bootstrap
intervals over the target samples. Rates with fewer than one non-member behind them are marked
unresolved, and those with fewer than ten name how many ({counts}): such a rate and its
interval turn on those few non-members' scores. TPR@0 FPR: the members
scored above every non-member (how many in brackets), which needs no such resolution.</p>
<h2>Attacks</h2>
<table><tr><th>attack</th><th>AUC</th><th>balanced accuracy</th>{head}<th>TPR@0 FPR
<small>(members)</small></th><th>top tie</th><th>distinct scores</th></tr>
{"".join(rows)}</table>
<p>Top tie: the largest group of equal scores among the samples that decide the reported TPRs
(those ranked above the point where the FPR passes the largest reported rate).</p>
{tie_note}
<h2>What the attacks cost</h2>
<p>Training each attack depends on beyond the audited model: models trained and sample-epochs
(training samples × epochs, summed over them). A piece of work several attacks use is listed
once below; each attack's cost above counts every piece it uses once. Queries are not counted.
</p>
<table><tr><th>work</th><th>models</th><th>sample-epochs</th><th>used by</th></tr>{work}</table>
<h2>ROC (log-log)</h2>
<p>Left: SeqMIA and the best attack of each family; right: SeqMIA's ablations and options.</p>
<img alt="ROC curves: headline comparison and ablations" src="data:image/png;base64,{image}">
<h2>Models</h2>
<table><tr><th>model</th><th>train accuracy</th><th>test accuracy</th></tr>{models}</table>
<h2>Parameters</h2>
<pre>{html.escape(json.dumps(params, indent=2))}</pre>
</body></html>
"""
