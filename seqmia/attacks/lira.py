"""LiRA, offline variant (Carlini et al., S&P 2022): a per-sample likelihood-ratio test against
reference models that never trained on the sample.

The test statistic is the logit-scaled confidence phi = log(p_y / (1 - p_y)) of the true class.
Reference models trained on the attacker's data without the queried sample give phi values
assumed Gaussian ("OUT" distribution); a sample whose phi under the audited model sits far above
that distribution is probably a member. The offline variant needs no model trained *with* the
sample, so the reference models are trained once and serve every query.

With few reference models a per-sample variance is unreliable, so one standard deviation is
shared by all samples (Carlini et al.'s fixed-variance variant). The one-sided test
Pr[Z <= phi], Z ~ N(mu_out, sd^2), is then monotone in (phi - mu_out) / sd, which is the score
kept here: it ranks samples exactly as the test does, without saturating to 1 in float64.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seqmia.attacks.scoring import Scored, ScoringInputs, per_reference
from seqmia.base.roc import best_threshold
from seqmia.base.seeding import derive_seed
from seqmia.data.partition import part_ids, stratified_counts

# The attacker's labelled data that the reference models draw their training sets from.
POOL_PARTS = ("shadow_in", "shadow_out")


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log p_y - log(1 - p_y) = z_y - logsumexp_{i != y} z_i, stable for any margin.

    logits: (N, C); labels: (N,) int. Returns (N,) float64.
    """
    z = torch.from_numpy(np.array(logits, dtype=np.float64))
    y = torch.from_numpy(np.array(labels, dtype=np.int64))[:, None]
    z_y = z.gather(1, y).squeeze(1)
    others = z.scatter(1, y, float("-inf"))
    return (z_y - torch.logsumexp(others, dim=1)).numpy()


def reference_training_sets(
    labels: np.ndarray, size: int, n_models: int, rng: np.random.Generator
) -> np.ndarray:
    """Which pool samples each reference model trains on: independent class-stratified subsets.

    labels: (P,) class of each sample of the attacker's pool; ``size``: samples per model (the
    audited model's training-set size, so the reference models mimic it). Returns
    (n_models, P) bool. Each pool sample is left out of some models, so the attacker can also
    score its own pool with OUT references only (for calibrating a decision threshold).
    """
    labels = np.asarray(labels)
    if not 1 <= size <= len(labels):
        raise ValueError(f"a reference training set of {size} needs a pool of at least that many")
    classes, class_sizes = np.unique(labels, return_counts=True)
    per_class = stratified_counts(class_sizes, size)  # (K,)
    inside = np.zeros((n_models, len(labels)), dtype=bool)
    for model in range(n_models):
        for c, take in zip(classes, per_class, strict=True):
            rows = np.flatnonzero(labels == c)
            inside[model, rng.choice(rows, size=int(take), replace=False)] = True
    return inside


def attacker_pool(partition: pd.DataFrame) -> np.ndarray:
    """Sorted ids (P,) of the attacker's labelled data the reference models draw from."""
    return np.sort(np.concatenate([part_ids(partition, p) for p in POOL_PARTS]))


def reference_training_ids(
    partition: pd.DataFrame, index: int, models: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted sample ids that reference model ``index`` (1-based, of ``models``) trains on, and
    the sorted ids of the attacker's pool it leaves out.

    The draws come one model after another from one generator seeded by ``seed``, so model i's
    set stays the same when ``models`` grows; each is the target's training-set size.
    """
    pool = attacker_pool(partition)
    labels = partition.set_index("sample_id").loc[pool, "label"].to_numpy()
    size = len(part_ids(partition, "target_in"))
    rng = np.random.default_rng(derive_seed(seed, "reference"))
    inside = reference_training_sets(labels, size, models, rng)
    ids = pool[inside[index - 1]]
    return ids, np.setdiff1d(pool, ids)


def out_sd(phi_refs: np.ndarray, out_mask: np.ndarray) -> float:
    """The fixed OUT standard deviation: the spread of every OUT phi value, over all samples and
    reference models (phi_refs, out_mask: (N, K)). Defined for any number of models."""
    values = np.asarray(phi_refs)[np.asarray(out_mask, dtype=bool)]
    if values.size < 2:
        raise ValueError("estimating the OUT spread needs at least two OUT reference values")
    return float(values.std())


def offline_scores(
    phi: np.ndarray, phi_refs: np.ndarray, out_mask: np.ndarray, sd: float
) -> np.ndarray:
    """Offline LiRA score (higher = member): (phi - mean of the sample's OUT phis) / sd.

    phi: (N,) under the audited model; phi_refs: (N, K) under each reference model; out_mask:
    (N, K) true where that reference model did not train on the sample. Samples without any
    OUT reference get NaN (they cannot be tested offline).
    """
    out_mask = np.asarray(out_mask, dtype=bool)
    counts = out_mask.sum(axis=1)
    sums = np.where(out_mask, phi_refs, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, np.nan)
    return (np.asarray(phi, dtype=np.float64) - mean) / max(sd, 1e-12)


def score_lira_offline(inputs: ScoringInputs, name: str) -> dict[str, Scored]:
    """Offline LiRA scores of the target's samples and a decision threshold.

    The OUT spread and the threshold come from the attacker's side only: the shadow model's
    samples, each scored against the reference models that left it out; shadow samples without
    an OUT reference are skipped.
    """
    phi = {}
    ref_phi = {}
    for role, data in (("target", inputs.target), ("shadow", inputs.shadow)):
        phi[role] = logit_scaled_confidence(data.logits, data.labels)  # (N,)
        ref_phi[role] = per_reference(logit_scaled_confidence, data.ref_logits, data.labels)
    shadow = inputs.shadow
    sd = out_sd(ref_phi["shadow"], shadow.ref_out)
    shadow_scores = offline_scores(phi["shadow"], ref_phi["shadow"], shadow.ref_out, sd)
    testable = ~np.isnan(shadow_scores)
    threshold = best_threshold(shadow_scores[testable], np.asarray(shadow.members)[testable])
    scores = offline_scores(phi["target"], ref_phi["target"], inputs.target.ref_out, sd)
    return {name: Scored(scores, threshold)}


def reference_logits_table(
    attack: dict[str, tuple[np.ndarray, np.ndarray]],
    population: tuple[np.ndarray, np.ndarray],
    trained: np.ndarray,
) -> pd.DataFrame:
    """One reference model's logits table: (sample_id, role, in_training, logit_0 … logit_C-1).

    attack: role -> (sample ids (n,), logits (n, C)) of that role's attack samples, rows in
    that order; population: the same for RMIA's population samples (role "population", which
    no reference model trains on); trained: the ids the model trained on.
    """
    frames = []
    for role, (ids, logits) in attack.items():
        frame = pd.DataFrame({"sample_id": ids}).assign(
            role=role, in_training=np.isin(ids, trained)
        )
        frames.append(frame.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])}))
    ids, logits = population
    frame = pd.DataFrame({"sample_id": ids}).assign(role="population", in_training=False)
    frames.append(frame.assign(**{f"logit_{c}": logits[:, c] for c in range(logits.shape[1])}))
    return pd.concat(frames, ignore_index=True)
