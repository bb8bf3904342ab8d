"""The whole of ``params.yaml``: every section, and the rules that span sections.

Stages import only the section modules they read (``seqmia.params.schema``); this module is for
whole-file validation (loaded by name when a stage starts), for reports that list every key, and
for tools that take a whole params document (sweeps, presets).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import seqmia.params.run  # noqa: F401 - registers seed and device
from seqmia.data.registry import DATASETS
from seqmia.models.registry import MODELS
from seqmia.params.attack import AttackParams
from seqmia.params.baselines import BaselinesParams
from seqmia.params.data import DataParams
from seqmia.params.distill import DistillParams
from seqmia.params.dp import DpParams
from seqmia.params.evaluate import EvaluateParams
from seqmia.params.partition import PartitionParams
from seqmia.params.quantile import QuantileParams
from seqmia.params.reference import ReferenceParams
from seqmia.params.rmia import RmiaParams
from seqmia.params.schema import (
    SECTION_MODULES,
    ParamsError,
    build_section,
    plain,
    read_document,
    shown,
    unknown_keys,
)
from seqmia.params.sequences import SequencesParams
from seqmia.params.target import TargetParams
from seqmia.params.train import TrainParams
from seqmia.target.files import EXPORTED_SUFFIX, exported_program_refusal


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    seed: int
    device: str
    data: DataParams
    partition: PartitionParams
    target: TargetParams
    train: TrainParams
    dp: DpParams
    reference: ReferenceParams
    rmia: RmiaParams
    quantile: QuantileParams
    distill: DistillParams
    sequences: SequencesParams
    attack: AttackParams
    baselines: BaselinesParams
    evaluate: EvaluateParams


assert [f.name for f in dataclasses.fields(Params)] == list(SECTION_MODULES)


def check_combinations(params: Params) -> None:
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
    features = DATASETS[name].features
    if features and MODELS[model].images_only:
        raise ParamsError(
            f"params key 'train.model' is {shown(model)}, a convolutional network for images, "
            f"but data.name {shown(name)} is a set of feature vectors; use train.model: "
            f"{' or '.join(n for n, spec in MODELS.items() if not spec.images_only)}"
        )
    if features and MODELS[params.quantile.model].images_only:
        flat = " or ".join(n for n, spec in MODELS.items() if not spec.images_only)
        raise ParamsError(
            f"params key 'quantile.model' is {shown(params.quantile.model)}, a convolutional "
            f"network for images, but data.name {shown(name)} is a set of feature vectors; use "
            f"quantile.model: {flat}"
        )
    if features and params.train.augment:
        raise ParamsError(
            f"params key 'train.augment' must be false for data.name {shown(name)}: random crops "
            "and flips are defined for images only"
        )


def check_holdouts(params: Params) -> None:
    """Every section with a ``val_fraction`` must hold out at least one shadow member and one
    non-member (the stratified split rounds ``val_fraction * count`` per side), and leave one of
    each to train on. Counts come from the partition sizes; per-class sizes need the class count,
    known for named datasets (``imagefolder`` is checked when the attack stage splits)."""
    part = params.partition
    classes = 1 if part.unit == "total" else DATASETS[params.data.name].classes
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


def check_target(target: TargetParams) -> None:
    """A checkpoint target needs its file and member lists, and a ``.pt2`` file the explicit
    opt-in to the code it can run; mean and std come as a pair."""
    if target.source == "checkpoint":
        for key in ("checkpoint", "members", "nonmembers"):
            if not getattr(target, key):
                raise ParamsError(
                    f"params key 'target.{key}' is empty, but target.source is 'checkpoint'; "
                    "give a path inside the target/ folder"
                )
        # Refused here, when a stage starts, before anything opens the archive.
        exported = target.checkpoint.endswith(EXPORTED_SUFFIX)
        if exported and not target.run_code_in_exported_program:
            raise ParamsError(exported_program_refusal(target.checkpoint))
    if len(target.mean) != len(target.std):
        raise ParamsError(
            f"params keys 'target.mean' and 'target.std' must have the same length, got "
            f"{len(target.mean)} and {len(target.std)}"
        )


def check_dp(params: Params) -> None:
    """DP-SGD needs noise (from a target ε or a given σ, not both), a δ below 1/N for the
    smallest training set N it protects, float32 training (Opacus clips float32 per-sample
    gradients) and a target the pipeline trains itself."""
    dp = params.dp
    if not dp.enabled:
        return
    if dp.epsilon == 0 and dp.noise_multiplier == 0:
        raise ParamsError(
            "params keys 'dp.epsilon' and 'dp.noise_multiplier' are both 0, but dp.enabled is "
            "true: training without noise is not private; set dp.epsilon (the ε to spend, e.g. "
            "4) or dp.noise_multiplier (e.g. 1.0), or dp.enabled: false"
        )
    if dp.epsilon > 0 and dp.noise_multiplier > 0:
        raise ParamsError(
            f"params keys 'dp.epsilon' ({dp.epsilon}) and 'dp.noise_multiplier' "
            f"({dp.noise_multiplier}) are both set; set one and leave the other 0 (the "
            "accountant finds the noise for an ε)"
        )
    if params.train.precision in ("bf16", "fp16"):
        raise ParamsError(
            f"params key 'train.precision' is {shown(params.train.precision)}, but DP-SGD "
            "trains in float32 (per-sample gradients are clipped in float32); use auto or fp32"
        )
    if params.target.source != "train":
        raise ParamsError(
            "params key 'dp.enabled' is true, but target.source is "
            f"{shown(params.target.source)}: a given target's training is not the pipeline's "
            "to make private; set dp.enabled: false to audit it"
        )
    part = params.partition
    classes = 1 if part.unit == "total" else DATASETS[params.data.name].classes
    if classes is None:  # imagefolder: checked when the model trains
        return
    smallest = min(part.target_in, part.shadow_in) * classes
    if dp.delta >= 1 / smallest:
        raise ParamsError(
            f"params key 'dp.delta' is {dp.delta:g}, but the smallest training set DP-SGD "
            f"protects has N = {smallest} samples and δ must be below 1/N = {1 / smallest:.3g} "
            "(a δ of 1/N allows leaking one sample outright); e.g. 1e-5"
        )


def params_from_dict(raw: Any) -> Params:
    """Validate a parsed params document and return it as typed ``Params``."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml must be a mapping of keys, got {shown(raw)}")
    keys = list(SECTION_MODULES)
    unknown = unknown_keys(raw, keys)
    if unknown is not None:
        raise ParamsError(f"unknown params key '{unknown}'; params.yaml allows {keys}")
    params = Params(**{key: build_section(key, raw) for key in keys})
    check_combinations(params)
    check_holdouts(params)
    check_target(params.target)
    check_dp(params)
    return params


def load_params(path: str | Path) -> Params:
    """Read and validate ``path``; raise ``ParamsError`` naming the first offending key."""
    return params_from_dict(read_document(path))


def params_to_dict(params: Any) -> dict[str, Any]:
    """Plain nested dict of ``params`` (tuples as lists), e.g. for reports. ``params`` is a
    ``Params`` or a stage's ``StageParams`` (every section is then read, and recorded)."""
    return {key: plain(getattr(params, key)) for key in SECTION_MODULES}
