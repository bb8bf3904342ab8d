"""RMIA, offline variant (Zarifzadeh et al., ICML 2024, "Low-Cost High-Power Membership Inference
Attacks"): a pairwise likelihood-ratio test of each sample x against population samples z.

For a sample x with true-class probability p(x|theta) under the audited model, its ratio is
p(x|theta) / p(x), where p(x) is the probability averaged over models that did not train on x.
Offline, only reference models that left x out (OUT) are available; averaging only over them
underestimates p(x) for members, so the paper shifts it linearly towards what IN models would
add: p(x) = (1 + a)/2 * mean_OUT p(x|ref) + (1 - a)/2 with a in [0, 1] (a = 1: OUT mean alone).
The same holds for z, which no reference model trained on. The score of x is the fraction of
population samples z it dominates, LR(x, z) = [p(x|theta)/p(x)] / [p(z|theta)/p(z)] > gamma.

Population samples come from the attacker's own data (never the target's members or
non-members), so the test needs the audited model's answers on them: black-box queries.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from seqmia.attacks.scoring import RoleData, Scored, ScoringInputs, per_reference
from seqmia.attacks.seqmia.metrics import log_posteriors
from seqmia.base.roc import auc, best_threshold, roc_curve
from seqmia.base.seeding import derive_seed


def true_class_log_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p_y from logits (N, C) and labels (N,), in float64 (accurate near p_y = 1): (N,)."""
    log_p = log_posteriors(torch.from_numpy(np.array(logits, dtype=np.float64)))
    y = torch.from_numpy(np.array(labels, dtype=np.int64))[
        :, None
    ]  # a copy: labels may be read-only
    return log_p.gather(1, y).squeeze(1).numpy()


def offline_marginal(p_refs: np.ndarray, out_mask: np.ndarray, a: float) -> np.ndarray:
    """Offline estimate of p(x): (1 + a)/2 * mean of the OUT reference probabilities + (1 - a)/2.

    p_refs, out_mask: (N, K) probabilities of each reference model and whether it left the
    sample out. Samples without any OUT reference get NaN. Returns (N,).
    """
    out_mask = np.asarray(out_mask, dtype=bool)
    counts = out_mask.sum(axis=1)
    sums = np.where(out_mask, p_refs, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_out = np.where(counts > 0, sums / counts, np.nan)
    return (1.0 + a) / 2.0 * mean_out + (1.0 - a) / 2.0


def log_likelihood_ratio(
    log_p_x: np.ndarray, p_x_refs: np.ndarray, x_out_mask: np.ndarray, a: float
) -> np.ndarray:
    """log LR(x) = log p(x|theta) - log p(x), p(x) the offline marginal (``offline_marginal``).

    log_p_x: (N,); p_x_refs, x_out_mask: (N, K). NaN for samples without an OUT reference.
    Returns (N,).
    """
    return np.asarray(log_p_x, dtype=np.float64) - np.log(offline_marginal(p_x_refs, x_out_mask, a))


def rmia_scores(
    log_p_x: np.ndarray,
    p_x_refs: np.ndarray,
    x_out_mask: np.ndarray,
    log_p_z: np.ndarray,
    p_z_refs: np.ndarray,
    a: float,
    gamma: float,
) -> np.ndarray:
    """Offline RMIA score of each sample x: the fraction of z with LR(x, z) > gamma, in [0, 1].

    log_p_x: (N,) log p(x|theta) under the audited model; p_x_refs: (N, K) p(x|ref_k);
    x_out_mask: (N, K) true where ref_k did not train on x; log_p_z: (Z,) log p(z|theta);
    p_z_refs: (Z, K) p(z|ref_k) (no reference model trained on a population sample).
    Samples without an OUT reference get NaN (they cannot be tested offline). Ratios are
    compared in log space, and by binary search over the sorted population: O((N + Z) log Z).
    """
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"the offline coefficient a must lie in [0, 1], got {a}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    p_z_refs = np.asarray(p_z_refs, dtype=np.float64)
    log_ratio_x = log_likelihood_ratio(log_p_x, p_x_refs, x_out_mask, a)
    log_ratio_z = log_likelihood_ratio(log_p_z, p_z_refs, np.ones(p_z_refs.shape, dtype=bool), a)
    population = np.sort(log_ratio_z)
    # LR(x, z) > gamma  <=>  log ratio_z < log ratio_x - log gamma (strictly).
    dominated = np.searchsorted(population, log_ratio_x - np.log(gamma), side="left")
    scores = dominated / len(population)
    return np.where(np.isnan(log_ratio_x), np.nan, scores)


def population_rows(size: int, population: int, seed: int) -> np.ndarray:
    """Ascending rows (Z,) of the ``size`` population candidates that RMIA uses: ``population``
    of them drawn without replacement with the run's ``seed``, or all when ``population`` is 0
    or at least ``size``."""
    if 0 < population < size:
        rng = np.random.default_rng(derive_seed(seed, "rmia-population"))
        return np.sort(rng.choice(size, population, replace=False))
    return np.arange(size)


@dataclasses.dataclass(frozen=True)
class RmiaInputs:
    """One audited model's side of the test, as ``rmia_scores`` takes it.

    log_p_x: (N,) log p(x|theta); p_x_refs, x_out_mask: (N, K) p(x|ref_k) and whether ref_k
    left x out; log_p_z: (Z,) log p(z|theta); p_z_refs: (Z, K) p(z|ref_k).
    """

    log_p_x: np.ndarray
    p_x_refs: np.ndarray
    x_out_mask: np.ndarray
    log_p_z: np.ndarray
    p_z_refs: np.ndarray

    def scores(self, a: float, gamma: float | None) -> np.ndarray:
        """``rmia_scores`` of these inputs: (N,); with ``gamma`` None, the samples' own
        ``log_likelihood_ratio`` instead (no population)."""
        if gamma is None:
            return log_likelihood_ratio(self.log_p_x, self.p_x_refs, self.x_out_mask, a)
        return rmia_scores(
            self.log_p_x, self.p_x_refs, self.x_out_mask, self.log_p_z, self.p_z_refs, a, gamma
        )


def rmia_attack(
    target: RmiaInputs,
    shadow: RmiaInputs,
    shadow_members: np.ndarray,
    offline_a: tuple[float, ...],
    gamma: float | None,
) -> tuple[np.ndarray, float, dict]:
    """Offline RMIA scores (N,) of the target's samples, a decision threshold and what was
    chosen (``offline_a``, ``gamma``, ``population``: Z, ``shadow_auc``). With ``gamma`` None
    the samples are ranked by their likelihood ratio alone (the population is not used).

    The coefficient a (the candidate of ``offline_a`` with the highest AUC, the first of equals)
    and the threshold come from the attacker's side only: the shadow model's samples
    (``shadow_members`` (M,) 0/1) that some reference model left out.
    """
    members = np.asarray(shadow_members)
    testable = np.asarray(shadow.x_out_mask, dtype=bool).any(axis=1)  # has an OUT reference
    shadow_auc = {}
    for a in offline_a:
        scores = shadow.scores(a, gamma)
        shadow_auc[a] = auc(roc_curve(scores[testable], members[testable]))
    best_a = max(offline_a, key=lambda a: shadow_auc[a])  # first of equals
    threshold = best_threshold(shadow.scores(best_a, gamma)[testable], members[testable])
    chosen: dict = {"offline_a": best_a}
    if gamma is not None:
        chosen |= {"gamma": gamma, "population": len(shadow.log_p_z)}
    chosen["shadow_auc"] = shadow_auc[best_a]
    return target.scores(best_a, gamma), threshold, chosen


def true_class_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_y of logits (N, C) and labels (N,): (N,) float64."""
    return np.exp(true_class_log_prob(logits, labels))


def role_inputs(data: RoleData, p_z_refs: np.ndarray) -> RmiaInputs:
    """A role's side of the test from its samples and the population's p(z|ref_k) (Z, K)."""
    return RmiaInputs(
        log_p_x=true_class_log_prob(data.logits, data.labels),
        p_x_refs=per_reference(true_class_prob, data.ref_logits, data.labels),
        x_out_mask=data.ref_out,
        p_z_refs=p_z_refs,
        log_p_z=data.population_log_p,
    )


def score_rmia_offline(inputs: ScoringInputs, name: str) -> dict[str, Scored]:
    """Offline RMIA (``rmia_attack``) with the settings of params section ``rmia``
    (``offline_a``: the candidates for a, ``gamma``)."""
    settings = inputs.settings[name]
    scores, threshold, chosen = rmia_attack(
        role_inputs(inputs.target, inputs.population_ref_p),
        role_inputs(inputs.shadow, inputs.population_ref_p),
        inputs.shadow.members,
        settings["offline_a"],
        settings["gamma"],
    )
    line = (
        f"{name}: a = {chosen['offline_a']:g} (shadow AUC {chosen['shadow_auc']:.4f}), "
        f"gamma {chosen['gamma']:g}, {chosen['population']} population samples"
    )
    return {name: Scored(scores, threshold, chosen=chosen, log=(line,))}


def score_rmia_offline_ratio(inputs: ScoringInputs, name: str) -> dict[str, Scored]:
    """Offline RMIA's likelihood ratio p(x|theta) / p(x) as the score, without the pairwise
    test against population samples: the candidate a of params section ``rmia`` chosen on the
    shadow model as for RMIA. Shows what the population comparison adds."""
    settings = inputs.settings[name]
    scores, threshold, chosen = rmia_attack(
        role_inputs(inputs.target, inputs.population_ref_p),
        role_inputs(inputs.shadow, inputs.population_ref_p),
        inputs.shadow.members,
        settings["offline_a"],
        None,
    )
    line = f"{name}: a = {chosen['offline_a']:g} (shadow AUC {chosen['shadow_auc']:.4f})"
    return {name: Scored(scores, threshold, chosen=chosen, log=(line,))}
