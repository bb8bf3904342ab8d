"""What each attack costs the attacker: the models it needs trained and their sample-epochs.

An attack's cost is the training of every model it depends on, beyond the audited model itself:
the shadow model (whose scores calibrate a threshold or train an attack), the reference models,
the two distilled students (SeqMIA's and TrajectoryMIA's snapshots), the attack model of a
shadow-trained attack, the quantile regressors. A model several attacks use is one piece of
*work*, listed once in ``eval/metrics.json`` with the attacks that use it; each attack's cost
counts every piece it uses in full, once. Sample-epochs (training samples × epochs, summed over
models) are deterministic and comparable across hosts, and counted apart for the classifiers
(target-sized models) and the attack models (small networks, each sample-epoch far cheaper);
seconds are measured where the pipeline records them (``logs/timings.jsonl``) and are never
written into a cached output, which must reproduce bit for bit. Queries (inference) are not
counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from seqmia.attacks.fit import split_holdout
from seqmia.attacks.registry import family_of, trained_specs

# The pieces of work each family needs; "{result}" stands for the result's own attack model. Every
# attack's decision threshold is calibrated on the shadow model's samples, LiRA's and RMIA's too.
FAMILY_WORK: dict[str, tuple[str, ...]] = {
    "seqmia": ("shadow_model", "distillation", "seqmia_attack"),
    "seqmia_ablation": ("shadow_model", "distillation", "{result}"),
    "trajectory": ("shadow_model", "distillation", "{result}"),
    "posterior_nn": ("shadow_model", "{result}"),
    "reference": ("shadow_model", "reference_models"),
    "quantile": ("shadow_model", "quantile_regressors"),
    "metric": ("shadow_model",),
}


# What a piece of work trains: classifiers (the target's architecture, or the quantile
# regressor's CNN) or attack models (small networks on scores or sequences, each sample-epoch
# many times cheaper). Their sample-epochs are counted apart: they are not the same compute.
KINDS = ("classifier", "attack")


@dataclasses.dataclass(frozen=True)
class Work:
    """One piece of training: how many models of which ``kind``, and their training
    sample-epochs in all."""

    models: int
    sample_epochs: int
    kind: str = "classifier"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind of work {self.kind!r}; kinds: {list(KINDS)}")

    def as_dict(self) -> dict[str, int | str]:
        return {"models": self.models, "sample_epochs": self.sample_epochs, "kind": self.kind}


def trained_for(report: Mapping) -> int:
    """Sample-epochs of one classifier from its report: training samples × epochs run."""
    return int(report["train_samples"]) * len(report["history"])


def quantile_fit_size(population: int, holdout: float) -> int:
    """Samples a quantile regressor fits on: the population less its held-out share (as
    ``seqmia.attacks.quantile.holdout_rows`` draws it: at least one held out, one kept)."""
    held = min(max(1, round(holdout * population)), population - 1)
    return population - held


def training_work(
    params: Mapping,
    reports: Mapping[str, Mapping],
    attack_summary: Mapping,
    shadow_members: np.ndarray,
    population: int,
    metrics: Sequence[str],
) -> dict[str, Work]:
    """Every piece of training the run's attacks depend on, by name.

    params: the run's params.yaml; reports: model name -> report (``shadow``, ``reference_<i>``)
    with ``train_samples`` and ``history``; attack_summary: SeqMIA's (``train_sequences``);
    shadow_members: (N,) 0/1 of the shadow's attack samples, which the shadow-trained attacks
    split; population: samples of the distillation part (the students' and the quantile
    regressors' data); metrics: the metrics the sequences hold.
    """
    distill = params["distill"]
    references = [r for name, r in reports.items() if name.startswith("reference_")]
    attack = params["attack"]
    ensemble = int(attack_summary.get("ensemble", 1))
    quantile = params["quantile"]
    work = {
        "shadow_model": Work(1, trained_for(reports["shadow"])),
        "reference_models": Work(len(references), sum(trained_for(r) for r in references)),
        "distillation": Work(
            2, population * (2 * distill["epochs"] + distill["shadow_extra_epochs"])
        ),
        "seqmia_attack": Work(
            ensemble,
            ensemble * int(attack_summary["train_sequences"]) * attack["epochs"],
            "attack",
        ),
        "quantile_regressors": Work(
            2, 2 * quantile_fit_size(population, quantile["holdout"]) * quantile["epochs"]
        ),
    }
    baselines = params["baselines"]
    fit_rows, _ = split_holdout(np.asarray(shadow_members), baselines["val_fraction"], 0)
    for spec in trained_specs(baselines["attacks"], metrics):
        epochs = baselines[spec.model.recipe]["epochs"]
        work[spec.name] = Work(1, len(fit_rows) * epochs, "attack")
    return work


def work_of(result: str) -> tuple[str, ...]:
    """The pieces of work a reported result depends on."""
    return tuple(w.format(result=result) for w in FAMILY_WORK[family_of(result)])


def attack_costs(results: Sequence[str], work: Mapping[str, Work]) -> dict[str, dict]:
    """Each result's cost: ``{"models", "sample_epochs", "attack_sample_epochs", "work"}``,
    every piece it uses counted once: ``sample_epochs`` those of its classifiers (shadow,
    reference, distilled, regressor models), ``attack_sample_epochs`` those of its attack
    models."""
    costs = {}
    for result in results:
        names = work_of(result)
        costs[result] = {
            "models": sum(work[n].models for n in names),
            "sample_epochs": sum(work[n].sample_epochs for n in names if work[n].kind != "attack"),
            "attack_sample_epochs": sum(
                work[n].sample_epochs for n in names if work[n].kind == "attack"
            ),
            "work": list(names),
        }
    return costs


def work_table(results: Sequence[str], work: Mapping[str, Work]) -> dict[str, dict]:
    """The ``training_work`` entry of ``eval/metrics.json``: each piece of work some result uses,
    with its size and the results that use it (a shared piece is listed, and counted, once)."""
    users: dict[str, list[str]] = {}
    for result in results:
        for name in work_of(result):
            users.setdefault(name, []).append(result)
    return {
        name: {**work[name].as_dict(), "used_by": users[name]} for name in work if name in users
    }
