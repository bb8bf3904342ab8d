"""A self-contained HTML report of one run: the comparison table with intervals, the ROC figure
(embedded), the models' accuracies and the run's parameters. Opens in any browser, no DVC."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from seqmia.attacks.registry import FAMILIES, family_of


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


def _pct(count: int, total: int) -> str:
    return f"{count:,} of {total:,} ({100 * count / max(1, total):.1f}%)"


def _rate(rate: str) -> str:
    return f"{float(rate) * 100:g}% FPR"


def _attack_rows(ranked: list[tuple[str, dict]], fprs: list[str]) -> str:
    rows = []
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
        bound = (
            f"<td>{r['privacy_bound']['epsilon_lower']:.2f}</td>"
            if "privacy_bound" in r
            else "<td></td>"
        )
        cost = (
            f"<td>{r['cost']['models']} · {r['cost']['sample_epochs']:,}"
            + (
                f" <small>+ {r['cost']['attack_sample_epochs']:,} attack</small>"
                if r["cost"].get("attack_sample_epochs")
                else ""
            )
            + "</td>"
            if "cost" in r
            else "<td></td>"
        )
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_cell(r['auc'], ci.get('auc'))}</td>"
            f"<td>{_fmt(r['balanced_accuracy'])}</td>{tprs}{zero}{bound}"
            f"<td>{r.get('top_tie', '')}</td><td>{r.get('distinct_scores', '')}</td>{cost}</tr>"
        )
    return "".join(rows)


def _opening(metrics: dict[str, Any], classes: list[str] | None) -> str:
    """The first paragraph: what the strongest attack finds, the bound, the classes."""
    attacks, exposure, bound = metrics["attacks"], metrics["exposure"], metrics["privacy_bound"]
    name = exposure["attack"]
    n = attacks[name]["n_members"]
    found = "; ".join(
        f"<b>{_pct(k, n)}</b> members at {_rate(rate)}"
        for rate, k in exposure["members_found"].items()
    )
    (high, per_class), *_ = exposure["per_class"].items()
    named = lambda label: classes[label] if classes else str(label)  # noqa: E731
    top = ", ".join(
        f"{html.escape(named(c['label']))} ({c['found']}/{c['members']})" for c in per_class[:3]
    )
    if bound["epsilon_lower"] > 0:
        said = (
            f"<b>&epsilon; &ge; {bound['epsilon_lower']:.2f}</b> at &delta; = {bound['delta']:g} "
            f"({bound['confidence']:.0%} confidence, the largest over {bound['attacks_tested']} "
            f"attacks with the confidence split over them; from {html.escape(bound['attack'])})"
        )
    else:
        said = (
            f"none: at &delta; = {bound['delta']:g} no attack's error rates rule out any "
            f"&epsilon; at this sample size ({bound['confidence']:.0%} confidence)"
        )
    return (
        f'<p class="answer">The strongest attack here, <b>{html.escape(name)}</b>, identifies '
        f"{found}. Empirical privacy bound: {said}. It is a lower bound from these attacks at "
        "this sample size, not a guarantee: the model may leak more. Most exposed classes at "
        f"{_rate(high)}: {top}.</p>"
    )


def _dp_paragraph(dp: dict[str, Any]) -> str:
    """What the audit says of a DP-SGD target: the epsilon spent against the lower bound."""
    setting = (
        f"noise multiplier &sigma; = {dp['noise_multiplier']:.3g}, clipping norm "
        f"C = {dp['max_grad_norm']:g}"
    )
    spent = f"&epsilon; = {dp['epsilon_spent']:.2f} spent at &delta; = {dp['delta']:g}"
    bound = (
        f"the empirical lower bound at that &delta;, &epsilon; &ge; {dp['epsilon_lower']:.2f} "
        f"({dp['confidence']:.0%} confidence over {dp['attacks_tested']} attacks, from "
        f"{html.escape(dp['attack'])})"
    )
    if dp["consistent"]:
        return (
            f'<p class="answer">Trained with DP-SGD ({setting}): {spent}. The audit agrees: '
            f"{bound} stays below it.</p>"
        )
    return (
        f'<p class="warn"><b>DP violation: {bound} exceeds the {spent}.</b> A correct DP '
        "training and a correct audit allow this only with the bound's "
        f"{1 - dp['confidence']:.0%} error chance; check the DP implementation and the audit "
        f"before trusting either ({setting}).</p>"
    )


def render_report(
    metrics: dict[str, Any],
    roc_png: bytes,
    params: dict[str, Any],
    classes: list[str] | None = None,
    gallery_png: bytes | None = None,
    exposed: Any = None,
    exposure_file: str | None = None,
) -> str:
    """HTML page for ``eval/metrics.json``-shaped ``metrics``, a PNG figure and the params; with
    the class names, the exposed members (thumbnails ``gallery_png`` for images, else the rows
    of the ``exposed`` table) and the name of the per-sample ranking file beside the page."""
    attacks = metrics["attacks"]
    fprs = list(next(iter(attacks.values()))["tpr_at_fpr"])
    head = (
        "<tr><th>attack</th><th>AUC</th><th>balanced accuracy</th>"
        + "".join(f"<th>TPR@{float(f) * 100:g}% FPR</th>" for f in fprs)
        + "<th>TPR@0 FPR <small>(members)</small></th><th>&epsilon; &ge;</th><th>top tie</th>"
        "<th>distinct scores</th><th>training <small>(models · sample-epochs)</small></th></tr>"
    )
    order = {family: k for k, family in enumerate(FAMILIES)}
    ranked = sorted(attacks.items(), key=lambda kv: (order[family_of(kv[0])], -kv[1]["auc"]))
    main = [(n, r) for n, r in ranked if family_of(n) != "seqmia_ablation"]
    ablations = [(n, r) for n, r in ranked if family_of(n) == "seqmia_ablation"]
    folded = (
        f"<details><summary>SeqMIA's ablations ({len(ablations)})</summary>"
        f'<div class="scroll"><table>{head}{_attack_rows(ablations, fprs)}</table></div>'
        "</details>"
        if ablations
        else ""
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
        f"<tr><td>{html.escape(name)}</td><td>{w.get('kind', '')}</td><td>{w['models']}</td>"
        f"<td>{w['sample_epochs']:,}</td><td>{html.escape(', '.join(w['used_by']))}</td></tr>"
        for name, w in metrics.get("training_work", {}).items()
    )
    exposure = metrics.get("exposure")
    answer = _opening(metrics, classes) if exposure and "privacy_bound" in metrics else ""
    if "dp" in metrics:
        answer += _dp_paragraph(metrics["dp"])
    exposed_html = ""
    if exposure:
        low = next(iter(exposure["members_found"]))
        (high, per_class), *_ = exposure["per_class"].items()
        named = lambda label: classes[label] if classes else str(label)  # noqa: E731
        class_rows = "".join(
            f"<tr><td>{html.escape(named(c['label']))}</td><td>{c['found']}</td>"
            f"<td>{c['members']}</td><td>{_fmt(c['tpr'])}</td></tr>"
            for c in per_class
        )
        if gallery_png is not None:
            shown = (
                f'<img alt="members exposed at {_rate(low)}" '
                f'src="data:image/png;base64,{base64.b64encode(gallery_png).decode()}">'
            )
        elif exposed is not None and len(exposed):
            columns = ["rank", "sample_id", "class", "score"]
            shown = (
                '<div class="scroll"><table><tr>'
                + "".join(f"<th>{c}</th>" for c in columns)
                + "</tr>"
                + "".join(
                    "<tr>"
                    + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in columns)
                    + "</tr>"
                    for _, row in exposed.iterrows()
                )
                + "</table></div>"
            )
        else:
            shown = f"<p>No member is identified at {_rate(low)}.</p>"
        link = (
            f' Every target sample ranked by risk: <a href="{html.escape(exposure_file)}">'
            f"{html.escape(exposure_file)}</a> (rank, sample id, class, membership, score, "
            "flagged at each rate)."
            if exposure_file
            else ""
        )
        exposed_html = f"""<h2>Exposed samples</h2>
<p>The members that {html.escape(exposure["attack"])} identifies at {_rate(low)}, riskiest
first (sample id: the row of the prepared dataset; for a given target, as in its member
list).{link}</p>
{shown}
<h3>Members found per class at {_rate(high)}</h3>
<div class="scroll"><table><tr><th>class</th><th>found</th><th>members</th><th>TPR</th></tr>
{class_rows}</table></div>"""
    image = base64.b64encode(roc_png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>SeqMIA membership inference report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; max-width: 64em; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3em .5em; border-bottom: 1px solid #ddd; }}
td {{ text-align: right; }} td:first-child {{ text-align: left; }}
small {{ color: #666; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
img {{ max-width: 100%; height: auto; }}
.scroll {{ overflow-x: auto; }}
.answer {{ font-size: 1.1em; background: #f4f8ff; padding: .8em; }}
.warn {{ color: #a00; }}
</style></head><body>
<h1>Membership inference report</h1>
{answer}
<p>Given: {first["n_members"]} target members and {first["n_nonmembers"]} non-members. The member
list must hold every sample the model trained on: a real member missing from it can land in the
attacker's shadow, distillation or reference data, and the audit then understates the leak.
TPR at a fixed FPR is conservative (largest TPR among ROC points at or below that FPR). Brackets:
95% bootstrap intervals over the target samples. Rates with fewer than one non-member behind
them are marked unresolved, and those with fewer than ten name how many ({counts}): such a
rate and its interval turn on those few non-members' scores. TPR@0 FPR: the members scored
above every non-member (how many in brackets), which needs no such resolution. &epsilon; &ge;:
each attack's empirical lower bound at 95% (docs/attacks.md).</p>
{exposed_html}
<h2>Attacks</h2>
<p>By family (SeqMIA first), each by AUC.</p>
<div class="scroll"><table>{head}
{_attack_rows(main, fprs)}</table></div>
{folded}
<p>Top tie: the largest group of equal scores among the samples that decide the reported TPRs
(those ranked above the point where the FPR passes the largest reported rate).</p>
{tie_note}
<h2>What the attacks cost</h2>
<p>Training each attack depends on beyond the audited model: models trained and sample-epochs
(training samples × epochs, summed over them), those of classifiers (target-sized models) and
of attack models (small networks, each sample-epoch far cheaper) apart. A piece of work several
attacks use is listed once below; each attack's cost above counts every piece it uses once.
Queries are not counted.</p>
<div class="scroll"><table><tr><th>work</th><th>kind</th><th>models</th><th>sample-epochs</th>
<th>used by</th></tr>{work}</table></div>
<h2>ROC (log-log)</h2>
<p>Left: SeqMIA and the best attack of each family; right: SeqMIA's ablations and options.</p>
<img alt="ROC curves: headline comparison and ablations" src="data:image/png;base64,{image}">
<h2>Models</h2>
<table><tr><th>model</th><th>train accuracy</th><th>test accuracy</th></tr>{models}</table>
<h2>Parameters</h2>
<pre>{html.escape(json.dumps(params, indent=2))}</pre>
</body></html>
"""
