"""Every attack the audit reports, in one registry: params validation (``baselines.attacks``),
the baselines stage (which models it trains), the evaluate stage (which attacks it scores, in
this order), the plots and results tables (each attack's family), dvc.yaml's ROC plots and the
end-to-end test all take their names from ``ATTACKS``.

Each entry says which family the attack belongs to, what it reads, which stage fits it, and how
it is scored. Scorers and feature makers are named (``Lazy``), not imported: params validation
reads this module and must not pay for torch or pandas.

Adding an attack: its scorer (or, for a shadow-trained one, its feature maker) in a module of
``seqmia.attacks``, one entry here, its params section if it has settings, and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from seqmia.base.lazy import Lazy

# family -> how the plots and tables name it. The headline ROC panel shows SeqMIA and the best
# attack of every other family; the ablations panel shows SeqMIA and its ablations.
FAMILIES: dict[str, str] = {
    "seqmia": "SeqMIA",
    "seqmia_ablation": "SeqMIA ablation",
    "trajectory": "loss trajectory",
    "posterior_nn": "posterior NN",
    "reference": "reference models",
    "quantile": "quantile regression",
    "metric": "final-model metric",
}
# What an attack reads: the metric sequences of the snapshots, the original model's logits on the
# attack samples, the reference models' logits, the original model's logits on the population.
INPUTS = ("sequences", "final_logits", "reference_logits", "population")
# The dvc.yaml stage that fits an attack. "attack": SeqMIA's model (scored in evaluate);
# "baselines": trained on shadow data and scored there; "quantile": the regressor of each role's
# model, whose scores the evaluate stage thresholds; "evaluate": calibrated and scored there.
FIT_STAGES = ("attack", "baselines", "quantile", "evaluate")
# TrajectoryMIA's attack MLP (Liu et al., CCS 2022); also the flat "no time order" ablation's.
DEFAULT_MLP_WIDTHS = (512, 128, 32)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """The model a shadow-trained attack fits: an attack architecture on the features that
    ``features`` makes from a role's inputs ((RoleInputs, topk, metric) -> (N, d) or (N, T, k);
    named after what it makes), with the recipe of params section ``baselines.<recipe>``.
    ``per_metric``: one model per stored metric, each on that metric's sequence (N, T, 1), named
    ``seqmia_only_<metric>`` (needs two metrics or more: with one it would be SeqMIA itself).
    ``needs``: a metric the sequences must hold."""

    architecture: str
    features: Lazy
    recipe: str
    mlp_widths: tuple[int, ...] = DEFAULT_MLP_WIDTHS
    per_metric: bool = False
    needs: str | None = None


@dataclasses.dataclass(frozen=True)
class Attack:
    """A registry entry: the attack's family, what it reads, the stage that fits it and how it is
    scored. ``score``: for attacks scored by the evaluate stage, (ScoringInputs) -> {result name:
    Scored} (``seqmia.attacks.scoring``); ``trained``: for shadow-trained attacks, their model;
    ``variants``: suffixes of the results it reports (a metric attack's class-conditional
    ``_cc`` twin); ``settings``: the params section of its settings, which its scorer reads as
    ``ScoringInputs.settings[name]``."""

    family: str
    inputs: tuple[str, ...]
    fit_stage: str
    score: Lazy | None = None
    trained: TrainedModel | None = None
    variants: tuple[str, ...] = ("",)
    settings: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown attack family {self.family!r}; families: {list(FAMILIES)}")
        unknown = [i for i in self.inputs if i not in INPUTS]
        if unknown:
            raise ValueError(f"unknown attack inputs {unknown}; inputs: {list(INPUTS)}")
        if self.fit_stage not in FIT_STAGES:
            raise ValueError(f"unknown fit stage {self.fit_stage!r}; stages: {list(FIT_STAGES)}")
        if (self.fit_stage == "baselines") != (self.trained is not None):
            raise ValueError(
                "an attack has a trained model exactly when the baselines stage fits it"
            )
        if self.fit_stage != "baselines" and self.score is None:
            raise ValueError(f"an attack fitted by the {self.fit_stage} stage needs a scorer")

    def results(self, name: str, metrics: Sequence[str]) -> list[str]:
        """The names this attack reports when the sequences hold ``metrics`` (none when it
        cannot run on them)."""
        trained = self.trained
        if trained is not None and trained.per_metric:
            return [f"seqmia_only_{m}" for m in metrics] if len(metrics) >= 2 else []
        if trained is not None and trained.needs is not None and trained.needs not in metrics:
            return []
        return [f"{name}{suffix}" for suffix in self.variants]


def _trained(
    family: str, inputs: tuple[str, ...], architecture: str, features: str, recipe: str, **options
) -> Attack:
    """A shadow-trained attack: ``architecture`` on the features made by
    ``seqmia.attacks.trained.<features>``, with the recipe of ``baselines.<recipe>``."""
    model = TrainedModel(
        architecture, Lazy(f"seqmia.attacks.trained:{features}"), recipe, **options
    )
    return Attack(family, inputs, "baselines", trained=model)


def _scored(
    family: str, inputs: tuple[str, ...], fit_stage: str, scorer: str, settings: str | None = None
) -> Attack:
    """An attack scored by ``seqmia.attacks.<scorer>`` (module:function), its settings in params
    section ``settings`` if it has any."""
    return Attack(
        family, inputs, fit_stage, score=Lazy(f"seqmia.attacks.{scorer}"), settings=settings
    )


def _metric(metric: str, sign: float) -> Attack:
    """A metric attack at the final model: ``sign * metric`` (higher = member), thresholded on
    the shadow model, plus its class-conditional twin (``_cc``)."""
    scorer = Lazy("seqmia.attacks.metric:score_metric_attack", metric=metric, sign=sign)
    return Attack("metric", ("final_logits",), "evaluate", score=scorer, variants=("", "_cc"))


ATTACKS: dict[str, Attack] = {
    # SeqMIA (Li et al., CCS 2024): the attention LSTM on multi-metric sequences.
    "seqmia": _scored("seqmia", ("sequences",), "attack", "fit:score_seqmia"),
    # ML-Leaks (Salem et al., NDSS 2019): a 64-unit MLP on the sorted top-k posteriors.
    "nn_posterior": _trained(
        "posterior_nn", ("final_logits",), "mlp", "topk", "nn_posterior", mlp_widths=(64,)
    ),
    # TrajectoryMIA (Liu et al., CCS 2022): an MLP on the loss trajectory of the snapshots.
    "trajectory_mia": _trained(
        "trajectory", ("sequences",), "mlp", "loss_trajectory", "trajectory_mia", needs="loss"
    ),
    # SeqMIA's ablations: no time order, no attention, one metric at a time.
    "seqmia_mlp": _trained(
        "seqmia_ablation", ("sequences",), "mlp", "sequences", "seqmia_ablations"
    ),
    "seqmia_lstm": _trained(
        "seqmia_ablation", ("sequences",), "lstm", "sequences", "seqmia_ablations"
    ),
    "seqmia_single_metric": _trained(
        "seqmia_ablation",
        ("sequences",),
        "attention_lstm",
        "one_metric",
        "seqmia_ablations",
        per_metric=True,
    ),
    # Metric attacks at the final model (Yeom et al.; Song & Mittal for the modified entropy).
    "loss": _metric("loss", -1.0),
    "max_confidence": _metric("max", 1.0),
    "entropy": _metric("entropy", -1.0),
    "m_entropy": _metric("m_entropy", -1.0),
    # Reference-model attacks, offline: LiRA (Carlini et al., S&P 2022), RMIA (Zarifzadeh et al.,
    # ICML 2024).
    "lira_offline": _scored(
        "reference", ("final_logits", "reference_logits"), "evaluate", "lira:score_lira_offline"
    ),
    "rmia_offline": _scored(
        "reference",
        ("final_logits", "reference_logits", "population"),
        "evaluate",
        "rmia:score_rmia_offline",
        settings="rmia",
    ),
    # Quantile regression (Bertran et al., NeurIPS 2023): a regressor of the model's score on
    # non-members, fitted on the population; no shadow model needed to score.
    "quantile_mia": _scored(
        "quantile", ("final_logits", "population"), "quantile", "quantile:score_quantile"
    ),
    # RMIA's likelihood ratio alone, without the pairwise test against population samples.
    "rmia_offline_ratio": _scored(
        "reference",
        ("final_logits", "reference_logits"),
        "evaluate",
        "rmia:score_rmia_offline_ratio",
        settings="rmia",
    ),
}
# The attacks whose fitting stage scores both roles' attack samples itself (one column per attack
# in that stage's per-role table); the evaluate stage reads them and thresholds them.
FITTED = {name: a for name, a in ATTACKS.items() if a.fit_stage == "quantile"}
# The shadow-trained attacks that ``baselines.attacks`` may choose.
TRAINED = {name: a for name, a in ATTACKS.items() if a.fit_stage == "baselines"}
# The params sections of their recipes, in registry order.
RECIPE_SECTIONS = tuple(dict.fromkeys(a.trained.recipe for a in TRAINED.values()))


@dataclasses.dataclass(frozen=True)
class TrainedSpec:
    """One model the baselines stage trains: its result name and the entry's model; ``metric``:
    the one metric it sees, for a per-metric entry."""

    name: str
    model: TrainedModel
    metric: str | None = None

    @property
    def features(self) -> str:
        """What it is trained on: the feature maker's name, or ``metric:<name>``."""
        return f"metric:{self.metric}" if self.metric else self.model.features.target.split(":")[1]


def trained_specs(chosen: Sequence[str], metrics: Sequence[str]) -> list[TrainedSpec]:
    """The models that the chosen trained attacks (registry names, in order) train when the
    sequences hold ``metrics``."""
    unknown = [a for a in chosen if a not in TRAINED]
    if unknown:
        raise ValueError(f"unknown trained attacks {unknown}; choose from {list(TRAINED)}")
    specs = []
    for name in chosen:
        model = TRAINED[name].trained
        results = TRAINED[name].results(name, metrics)
        if model.per_metric and results:
            specs += [TrainedSpec(r, model, m) for r, m in zip(results, metrics, strict=True)]
        else:
            specs += [TrainedSpec(r, model) for r in results]
    return specs


def family_of(result: str) -> str:
    """The family of a reported result: an attack's name, one of its variants, or a per-metric
    model's ``seqmia_only_<metric>``. A name no entry reports fails loudly."""
    for name, attack in ATTACKS.items():
        per_metric = attack.trained is not None and attack.trained.per_metric
        if (
            result.startswith("seqmia_only_")
            if per_metric
            else (result in [f"{name}{suffix}" for suffix in attack.variants])
        ):
            return attack.family
    raise KeyError(f"{result!r} is no attack of the registry (seqmia.attacks.registry)")


def reported(metrics: Sequence[str], chosen: Sequence[str]) -> Iterator[str]:
    """Every result name a run reports, in the order of ``eval/metrics.json``, when the sequences
    hold ``metrics`` and ``baselines.attacks`` is ``chosen``."""
    for name, attack in ATTACKS.items():
        if attack.fit_stage != "baselines" or name in chosen:
            yield from attack.results(name, metrics)
