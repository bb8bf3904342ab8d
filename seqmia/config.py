"""The schema of ``params.yaml`` and its validation.

Every key the pipeline reads is declared here as a field of a frozen dataclass. ``load_params``
checks a parsed YAML document against these declarations before any stage does work: an unknown
key, a missing key, a value of the wrong type or outside its allowed set stops with a
``ParamsError`` that names the dotted key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from seqmia.baseline_registry import BASELINES
from seqmia.errors import UserError

METRIC_NAMES = ("loss", "max", "sd", "entropy", "m_entropy")
MODEL_NAMES = ("small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn", "mlp")
DATASET_NAMES = (
    "cifar10", "cifar100", "cinic10", "gtsrb", "mnist", "fashion_mnist", "imagefolder",
    "location", "purchase100", "texas100", "news20",
)  # fmt: skip
# Datasets whose samples are feature vectors (N, D), not images: only the MLP takes them.
FEATURE_DATASETS = ("location", "purchase100", "texas100", "news20")
# Models built of 2-D convolutions: they need (C, H, W) images.
IMAGE_MODELS = ("small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn")
ROLES = ("target", "shadow")
PARTS = ("target_in", "target_out", "shadow_in", "shadow_out", "distill")

MetricName = Literal["loss", "max", "sd", "entropy", "m_entropy"]


class ParamsError(UserError, ValueError):
    """A params.yaml value that the pipeline cannot run with."""


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Which dataset to prepare and where to find it."""

    name: Literal[
        "cifar10", "cifar100", "cinic10", "gtsrb", "mnist", "fashion_mnist", "imagefolder",
        "location", "purchase100", "texas100", "news20",
    ]  # fmt: skip
    # Folder of the ImageFolder tree (``<path>/train/<class>/…``) for ``name: imagefolder``,
    # relative to the data root or absolute; ignored for named datasets.
    path: str
    # Fetch a named dataset with its standard downloader when no local copy is found.
    download: bool
    # news20 only: TF-IDF vocabulary size (the most frequent terms of the fitted documents).
    vocab_size: int


@dataclasses.dataclass(frozen=True)
class PartitionParams:
    """Sizes of the five disjoint parts: per class, or in total dealt out by class proportions."""

    # per_class: every class gives each part exactly that many samples (balanced data).
    # total: each part gets that many samples in all, stratified by the classes' proportions
    # (for imbalanced data such as Location, whose smallest class cannot fill per-class sizes).
    unit: Literal["per_class", "total"]
    target_in: int
    target_out: int
    shadow_in: int
    shadow_out: int
    distill: int


@dataclasses.dataclass(frozen=True)
class TargetParams:
    """Where the audited (target) model comes from: trained here, or a given checkpoint.

    For ``source: checkpoint`` every path is relative to the repository root and lies in the
    ``target/`` folder, which the stages that read it list as a DVC dependency (seqmia.checkpoint).
    """

    source: Literal["train", "checkpoint"]
    # A state dict of ``train.model`` (or of ``factory``'s module), or a torch.export ``.pt2``.
    checkpoint: str
    # Optional ``package.module:factory`` returning the untrained module for the state dict
    # (imports and runs that code); "" uses ``train.model``.
    factory: str
    # Files of the target's training samples and of samples it never saw: one sample id (row of
    # dataset.npz) or image path (relative to the image-folder root) per line.
    members: str
    nonmembers: str
    # Preprocessing the target expects: per-channel mean/std on [0, 1] pixels ([] = the dataset's
    # per-pixel statistics, as the pipeline's own models), [height, width] ([] = as stored),
    # channels (0 = as stored, 1 = grey, 3 = RGB).
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: tuple[int, ...]
    channels: int


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Architecture and optimisation recipe shared by target, shadow and distilled models."""

    model: Literal["small_cnn", "vgg16", "resnet56", "mobilenetv2", "wrn", "mlp"]
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: Literal["step", "cosine"]
    step_size: int
    gamma: float
    min_lr: float
    augment: bool
    # Autocast of training forward passes: auto (bf16 on a CUDA GPU that has it, else fp32) |
    # fp32 | bf16 | fp16 (CUDA only, with loss scaling). Inference always runs in float32.
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    # mlp only: hidden layer widths and their activation.
    mlp_widths: tuple[int, ...]
    mlp_activation: Literal["tanh", "relu"]
    # wrn only: WRN-depth-width (depth 6n+4 as Zagoruyko & Komodakis count it, or 6n+2).
    wrn_depth: int
    wrn_width: int


@dataclasses.dataclass(frozen=True)
class ReferenceParams:
    """Reference models for LiRA (offline): trained like the target on the attacker's data."""

    # How many; each trains on its own class-stratified draw from shadow_in + shadow_out, of
    # the target's training-set size.
    models: int


@dataclasses.dataclass(frozen=True)
class RmiaParams:
    """RMIA, offline (Zarifzadeh et al., ICML 2024), from LiRA's reference models.

    Population samples z come from the attacker's distillation part, never from the target's.
    """

    # Candidates for the offline coefficient a in p(x) = (1+a)/2 mean_OUT p(x|ref) + (1-a)/2;
    # the one with the highest AUC on the shadow model (attacker data) is used.
    offline_a: tuple[float, ...]
    # A pair (x, z) counts when LR(x, z) > gamma.
    gamma: float
    # How many population samples z to draw from the distillation part (0: all of them).
    population: int


@dataclasses.dataclass(frozen=True)
class DistillParams:
    """Knowledge distillation that recreates the training stages as snapshots."""

    epochs: int
    temperature: float
    # Extra leading epochs for the shadow student; its last ``epochs`` snapshots are kept.
    shadow_extra_epochs: int


@dataclasses.dataclass(frozen=True)
class SequencesParams:
    """Which metrics make up each sample's (n+1) x k sequence."""

    metrics: tuple[MetricName, ...]
    batch_size: int


@dataclasses.dataclass(frozen=True)
class AttackParams:
    """The attention-LSTM attack model and its training recipe."""

    hidden_size: int
    num_layers: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    step_size: int
    gamma: float
    min_lr: float
    # Fraction of the shadow sequences held out for model selection (never target data).
    val_fraction: float
    selection: Literal["best_val_auc", "last"]
    # none (official: raw metrics) | standardize (z-score each metric) | log_loss_metrics (the
    # logarithm of the loss-like metrics loss, entropy, m_entropy, which spreads members' tiny
    # values) | log_loss_metrics_standardize (that logarithm, then z-score each metric).
    input_transform: Literal[
        "none", "standardize", "log_loss_metrics", "log_loss_metrics_standardize"
    ]
    # attention_lstm is SeqMIA; the others are ablations (no attention, GRU cell, flat MLP).
    architecture: Literal["attention_lstm", "lstm", "attention_gru", "gru", "mlp"]
    # K attack models trained alike from different seeds; the score is their mean log-odds
    # (1: the single model of the paper).
    ensemble: int


# The names come from the baselines registry, so validation and the stage cannot disagree.
BaselineAttack = Literal[tuple(BASELINES)]  # type: ignore[valid-type]


@dataclasses.dataclass(frozen=True)
class RecipeParams:
    """How one attack model is trained: optimiser, schedule and batches (one shape for all).

    Adam or SGD (with ``momentum``), weight decay on weights only, StepLR(step_size, gamma)
    stepped while lr > min_lr (``gamma: 1`` keeps the rate constant).
    """

    optimizer: Literal["adam", "sgd"]
    epochs: int
    batch_size: int
    lr: float
    momentum: float  # sgd only
    weight_decay: float
    step_size: int
    gamma: float
    min_lr: float


# The trained baselines, each with its own paper's recipe (params.yaml says where it comes from).
RECIPE_KEYS = ("nn_posterior", "trajectory_mia", "seqmia_ablations")


@dataclasses.dataclass(frozen=True)
class BaselinesParams:
    """Shadow-trained comparison attacks: earlier attacks and SeqMIA ablations.

    nn_posterior: MLP on the log of the final model's sorted top-k posteriors (ML-Leaks style);
    trajectory_mia: MLP on the loss trajectory (snapshots + final model);
    seqmia_mlp: the multi-metric sequence flattened into an MLP (no time order);
    seqmia_lstm: the LSTM without attention; seqmia_single_metric: the attention-LSTM on each
    single-metric sequence. Each family trains with its own recipe below and selects its epoch
    on held-out shadow data.
    """

    attacks: tuple[BaselineAttack, ...]
    val_fraction: float
    hidden_size: int
    topk: int
    nn_posterior: RecipeParams
    trajectory_mia: RecipeParams
    seqmia_ablations: RecipeParams


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """How the attacks are scored."""

    fpr_targets: tuple[float, ...]
    # Bootstrap replicates for 95% intervals of AUC and TPR@FPR (0 turns them off).
    bootstrap: int


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    seed: int
    device: str
    data: DataParams
    partition: PartitionParams
    target: TargetParams
    train: TrainParams
    reference: ReferenceParams
    rmia: RmiaParams
    distill: DistillParams
    sequences: SequencesParams
    attack: AttackParams
    baselines: BaselinesParams
    evaluate: EvaluateParams


# Extra checks beyond the type: (predicate, description of what is allowed).
_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "device": (
        lambda v: v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()),
        "one of 'auto', 'cpu', 'cuda', 'cuda:N'",
    ),
    "distill.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "reference.models": (lambda v: v >= 1, "an integer >= 1"),
    "distill.temperature": (lambda v: v > 0, "a number > 0"),
    "distill.shadow_extra_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "train.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "train.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "train.lr": (lambda v: v > 0, "a number > 0"),
    "train.step_size": (lambda v: v >= 1, "an integer >= 1"),
    "train.mlp_widths": (
        lambda v: len(v) >= 1 and all(w >= 1 for w in v),
        "a non-empty list of layer widths >= 1",
    ),
    "train.wrn_depth": (
        lambda v: v >= 8 and ((v - 4) % 6 == 0 or (v - 2) % 6 == 0),
        "a depth of the form 6n+4 (16, 22, 28, 40) or 6n+2 (20, 26, 32), at least 8",
    ),
    "train.wrn_width": (lambda v: v >= 1, "an integer >= 1"),
    "data.vocab_size": (lambda v: v >= 1, "an integer >= 1"),
    "sequences.metrics": (
        lambda v: len(v) >= 1 and len(set(v)) == len(v),
        f"a non-empty list of distinct names from {list(METRIC_NAMES)}",
    ),
    "sequences.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "attack.hidden_size": (lambda v: v >= 1, "an integer >= 1"),
    "attack.num_layers": (lambda v: v >= 1, "an integer >= 1"),
    "attack.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "attack.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "attack.lr": (lambda v: v > 0, "a number > 0"),
    "attack.step_size": (lambda v: v >= 1, "an integer >= 1"),
    "attack.val_fraction": (lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
    "evaluate.fpr_targets": (
        lambda v: len(v) >= 1 and all(0 < x < 1 for x in v),
        "a non-empty list of rates strictly between 0 and 1",
    ),
}
for _key, _rule in {
    "baselines.val_fraction": (lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
    "baselines.hidden_size": (lambda v: v >= 1, "an integer >= 1"),
    "baselines.topk": (lambda v: v >= 1, "an integer >= 1"),
    "baselines.attacks": (lambda v: len(set(v)) == len(v), "a list of distinct attack names"),
    "evaluate.bootstrap": (lambda v: v >= 0, "an integer >= 0 (0: no intervals)"),
    "attack.ensemble": (lambda v: v >= 1, "an integer >= 1"),
    "rmia.offline_a": (
        lambda v: len(v) >= 1 and all(0 <= a <= 1 for a in v),
        "a non-empty list of numbers in [0, 1]",
    ),
    "rmia.gamma": (lambda v: v > 0, "a number > 0"),
    "rmia.population": (lambda v: v >= 0, "an integer >= 0 (0: the whole distillation part)"),
}.items():
    _RULES[_key] = _rule
_RULES["target.channels"] = (lambda v: v in (0, 1, 3), "0 (as stored), 1 (grey) or 3 (RGB)")
_RULES["target.resize"] = (
    lambda v: len(v) in (0, 2) and all(d >= 1 for d in v),
    "[] or [height, width]",
)
_RULES["target.std"] = (lambda v: all(d > 0 for d in v), "a list of numbers > 0")
for _recipe in RECIPE_KEYS:  # one recipe shape, one set of rules
    for _key, _rule in {
        "epochs": (lambda v: v >= 1, "an integer >= 1"),
        "batch_size": (lambda v: v >= 1, "an integer >= 1"),
        "lr": (lambda v: v > 0, "a number > 0"),
        "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "weight_decay": (lambda v: v >= 0, "a number >= 0"),
        "step_size": (lambda v: v >= 1, "an integer >= 1"),
        "gamma": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "min_lr": (lambda v: v >= 0, "a number >= 0"),
    }.items():
        _RULES[f"baselines.{_recipe}.{_key}"] = _rule
for _part in PARTS:
    _RULES[f"partition.{_part}"] = (lambda v: v >= 1, "an integer >= 1")
for _key in ("train.momentum", "train.weight_decay", "train.min_lr", "attack.weight_decay",
             "attack.min_lr"):  # fmt: skip
    _RULES[_key] = (lambda v: v >= 0, "a number >= 0")
for _key in ("train.gamma", "attack.gamma"):
    _RULES[_key] = (lambda v: 0 < v <= 1, "a number in (0, 1]")


def _describe(tp: Any) -> str:
    """Human-readable description of an annotation, for error messages."""
    origin = get_origin(tp)
    if origin is Literal:
        return f"one of {list(get_args(tp))}"
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0])}"
    if tp is bool:
        return "true or false"
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return f"a section with keys {[f.name for f in dataclasses.fields(tp)]}"
    return str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it in the dataclass's form."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise ParamsError(f"params key '{key}' must be {_describe(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"params key '{key}' must be {_describe(tp)}, got {value!r}")
        return tuple(_convert(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Union, types.UnionType):
        raise TypeError(f"unsupported annotation at {key}")
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }[tp](value)
    if not ok:
        raise ParamsError(f"params key '{key}' must be {_describe(tp)}, got {value!r}")
    if tp is float and not math.isfinite(value):  # YAML's .inf / .nan would fail deep in a run
        raise ParamsError(f"params key '{key}' must be a finite number, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, reporting keys with dotted ``prefix``."""
    where = f"section '{prefix}'" if prefix else "params.yaml"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamsError(f"unknown params key '{key}'; {where} allows {fields}")
    values = {}
    for name in fields:
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            what = "section" if dataclasses.is_dataclass(hints[name]) else "params key"
            raise ParamsError(f"missing {what} '{key}' (expected {_describe(hints[name])})")
        value = _convert(raw[name], hints[name], key)
        if key in _RULES and not _RULES[key][0](value):
            raise ParamsError(f"params key '{key}' must be {_RULES[key][1]}, got {raw[name]!r}")
        values[name] = value
    return cls(**values)


def _check_combinations(params: Params) -> None:
    """Rules that span keys: which models and options can take which data."""
    name, model = params.data.name, params.train.model
    part = params.partition
    if part.target_in >= part.shadow_in + part.shadow_out:
        raise ParamsError(
            f"params key 'partition.target_in' is {part.target_in}, but LiRA's reference models "
            "each train on that many samples drawn from shadow_in + shadow_out "
            f"({part.shadow_in} + {part.shadow_out}), and must leave some out; it must be less "
            "than their sum"
        )
    if name in FEATURE_DATASETS and model in IMAGE_MODELS:
        raise ParamsError(
            f"params key 'train.model' is {model!r}, a convolutional network for images, but "
            f"data.name {name!r} is a set of feature vectors; use train.model: mlp"
        )
    if name in FEATURE_DATASETS and params.train.augment:
        raise ParamsError(
            f"params key 'train.augment' must be false for data.name {name!r}: random crops and "
            "flips are defined for images only"
        )


# Classes of the named datasets, where the publisher fixes them: lets per-class part sizes be
# turned into sample counts before any data is read.
KNOWN_CLASS_COUNTS = {
    "cifar10": 10, "cifar100": 100, "cinic10": 10, "gtsrb": 43, "mnist": 10, "fashion_mnist": 10,
    "location": 30, "purchase100": 100, "texas100": 100, "news20": 20,
}  # fmt: skip


def _check_holdouts(params: Params) -> None:
    """Every section with a ``val_fraction`` must hold out at least one shadow member and one
    non-member (the stratified split rounds ``val_fraction * count`` per side), and leave one of
    each to train on. Counts come from the partition sizes; per-class sizes need the class count,
    known for named datasets (``imagefolder`` is checked when the attack stage splits)."""
    part = params.partition
    classes = 1 if part.unit == "total" else KNOWN_CLASS_COUNTS.get(params.data.name)
    if classes is None:
        return
    sides = {"shadow_in": part.shadow_in * classes, "shadow_out": part.shadow_out * classes}
    for field in dataclasses.fields(params):
        fraction = getattr(getattr(params, field.name), "val_fraction", None)
        if fraction is None:
            continue
        for side, count in sides.items():
            held = round(fraction * count)
            if held < 1 or held >= count:
                raise ParamsError(
                    f"params key '{field.name}.val_fraction' is {fraction}, which holds out "
                    f"{held} of the {count} {side} samples; it must hold out at least one and "
                    f"leave at least one (raise or lower it, or enlarge partition.{side})"
                )


def _check_target(target: TargetParams) -> None:
    """A checkpoint target needs its file and member lists; mean and std come as a pair."""
    if target.source == "checkpoint":
        for key in ("checkpoint", "members", "nonmembers"):
            if not getattr(target, key):
                raise ParamsError(
                    f"params key 'target.{key}' is empty, but target.source is 'checkpoint'; "
                    "give a path inside the target/ folder"
                )
    if len(target.mean) != len(target.std):
        raise ParamsError(
            f"params keys 'target.mean' and 'target.std' must have the same length, got "
            f"{len(target.mean)} and {len(target.std)}"
        )


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed params document and return it as typed ``Params``."""
    params = _build(Params, raw, "")
    _check_combinations(params)
    _check_holdouts(params)
    _check_target(params.target)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; raise ``ParamsError`` naming the first offending key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"no params file at {path.resolve()}")
    with path.open() as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ParamsError(f"{path} is not valid YAML: {err}") from err
    return params_from_dict(raw)


def params_to_dict(params: Params) -> dict[str, Any]:
    """Plain nested dict of ``params`` (tuples as lists), e.g. for reports."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(params))
