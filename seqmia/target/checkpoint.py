"""A target model given as a checkpoint: its weights, its member lists, its preprocessing.

The audit only ever *queries* such a target for logits (``target_logits``): nothing here reads
its weights beyond loading them to run it. Three forms load:

- a state dict (``torch.load(weights_only=True)``, never unpickled code) for a module built from
  the model registry (``train.model``) or by a user's ``package.module:factory`` (which imports
  and runs that user's code);
- a ``torch.export`` program (``.pt2``): a graph with its weights, no Python class needed.
  ``torch.export.load`` unpickles parts of the archive, so a ``.pt2`` can run code stored in
  it: it loads only when the caller passes the user's opt-in
  (``target.run_code_in_exported_program``), and is refused before it is opened otherwise.

Member lists are read by ``seqmia.target.members``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from seqmia.base.artifacts import CHECKSUM_KEY, weights_digest
from seqmia.base.seeding import make_generator
from seqmia.data.inputs import is_image, num_classes, to_model_input
from seqmia.data.partition import part_ids
from seqmia.models.build import new_model
from seqmia.models.inference import accuracy, predict_logits
from seqmia.models.registry import Architecture
from seqmia.target.files import (
    EXPORTED_SUFFIX,
    CheckpointError,
    exported_program_refusal,
    file_sha256,
)

# torch.export.load keeps its deserializer in a module global: two threads loading at once (a
# stage's concurrent tasks) fail with "_CURRENT_DESERIALIZER is already set".
_EXPORT_LOAD_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Preprocessing


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How the target expects its input. mean/std: per channel (or per feature) on [0, 1]
    pixels, () for the dataset's own per-pixel statistics; resize: (height, width) or ();
    channels: 0 (as stored), 1 (grey) or 3 (RGB)."""

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    resize: tuple[int, ...] = ()
    channels: int = 0


def preprocess(
    x: np.ndarray, spec: Preprocessing, data_mean: np.ndarray, data_std: np.ndarray
) -> torch.Tensor:
    """The target's float32 input from stored samples.

    x: (N, H, W, C) uint8 images -> (N, C', H', W') after channel conversion, resize and
    normalisation; (N, D) features -> (N, D) normalised. With the default ``spec`` this is
    exactly the pipeline's own ``to_model_input`` (the dataset's per-pixel statistics).
    """
    if not is_image(x):
        if spec.resize or spec.channels:
            raise CheckpointError("target.resize and target.channels apply to images only")
        if not spec.mean:
            return to_model_input(x, data_mean, data_std)
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        return torch.from_numpy(((x.astype(np.float32) - mean) / std).astype(np.float32))
    if not spec.mean:
        if spec.resize or spec.channels:
            raise CheckpointError(
                "target.resize or target.channels change the image, so the dataset's per-pixel "
                "statistics no longer fit; give the target's per-channel target.mean and "
                "target.std"
            )
        return to_model_input(x, data_mean, data_std)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 255.0
    if spec.channels == 1 and images.shape[1] == 3:  # ITU-R 601 luma, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)
    elif spec.channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if spec.resize and tuple(images.shape[2:]) != tuple(spec.resize):
        images = F.interpolate(
            images, size=tuple(spec.resize), mode="bilinear", align_corners=False, antialias=True
        )
    if len(spec.mean) not in (1, images.shape[1]):
        raise CheckpointError(
            f"target.mean has {len(spec.mean)} values but the target's input has "
            f"{images.shape[1]} channels"
        )
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((images - mean) / std).contiguous()


def target_input(
    dataset: Mapping[str, np.ndarray], ids: np.ndarray, spec: Preprocessing
) -> torch.Tensor:
    """The given target's input (n, ...) for samples ``ids`` (n,) of the prepared ``dataset``
    (``x``, ``mean``, ``std``): ``preprocess`` with the target's own ``spec``."""
    return preprocess(dataset["x"][ids], spec, dataset["mean"], dataset["std"])


# --------------------------------------------------------------------------------------------
# Loading and querying


def describe_builder(checkpoint: str, factory: str, model: str) -> str:
    """What builds a given target: an exported program (``checkpoint`` ends in ``.pt2``), else
    the ``factory`` if given, else the registry ``model``."""
    if checkpoint.endswith(EXPORTED_SUFFIX):
        return "exported program"
    return factory or model


class ExportedTarget(nn.Module):
    """A ``torch.export`` program as a module. Its train/eval behaviour was fixed when it was
    exported (exported modules refuse ``eval()``), so ``train()`` only records the flag."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedTarget:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """The callable named by ``package.module:factory`` (imports, and so runs, that module)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CheckpointError(
            f"params key 'target.factory' must look like package.module:factory, got {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(
            f"params key 'target.factory' {spec!r} does not import: {err}"
        ) from err


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], name: str) -> None:
    """Refuse a state dict whose keys or shapes differ from ``model``'s, naming the first
    differences with the expected and found shapes. ``name`` names the architecture."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = [
        f"{k} expected {expected[k]}, found {found[k]}"
        for k in expected
        if k in found and expected[k] != found[k]
    ]
    missing = [f"{k} expected {expected[k]}, missing" for k in expected if k not in found]
    extra = [f"{k} not expected, found {found[k]}" for k in found if k not in expected]
    # One of each first: a different architecture shows both what it lacks and what it brings.
    problems += missing[:1] + extra[:1] + missing[1:] + extra[1:]
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise CheckpointError(
            f"target.checkpoint does not fit {name}: {'; '.join(problems[:2])}{more}; set "
            "train.model and its options (or target.factory) to the checkpoint's architecture"
        )


def load_target(
    path: Path,
    build: Callable[[], nn.Module],
    name: str,
    device: torch.device,
    *,
    run_exported_code: bool = False,
) -> nn.Module:
    """The target model of checkpoint ``path`` on ``device``, ready to query.

    ``.pt2``: the exported program, only with ``run_exported_code`` (the user's explicit yes to
    the code such an archive can run; ``CheckpointError`` before the file is opened without it).
    Anything else: a state dict, loaded weights only, into ``build()`` (a module of architecture
    ``name``) after ``check_state_dict``.
    """
    if path.suffix == EXPORTED_SUFFIX:
        # Params validation refuses this too; checked again here because torch.export.load
        # unpickles weights, constants and sample inputs, and this is the one call that does.
        if not run_exported_code:
            raise CheckpointError(exported_program_refusal(path.name))
        try:
            with _EXPORT_LOAD_LOCK:
                program = torch.export.load(str(path)).module()
        except Exception as err:  # noqa: BLE001 - any failure means the same to the user
            raise CheckpointError(
                f"target.checkpoint {path.name} does not load as a torch.export program: "
                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from err
        return ExportedTarget(program.to(device))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        # torch's message is long and suggests weights_only=False; keep only what it refused.
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        why = f"it pickles a {refused.group(1)} object" if refused else type(err).__name__
        raise CheckpointError(
            f"target.checkpoint {path.name} does not load as a weights-only state dict ({why}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from err
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(
            f"target.checkpoint {path.name} is not a state dict (a mapping of names to tensors); "
            "save it with torch.save(model.state_dict(), path)"
        )
    state = dict(state)
    recorded = state.pop(CHECKSUM_KEY, None)  # weights files written by this pipeline carry one
    if recorded is not None and not torch.equal(recorded, weights_digest(state)):
        raise CheckpointError(
            f"target.checkpoint {path.name} changed after it was written (its weights do not "
            "match the SHA-256 recorded in it); replace it with the original file"
        )
    model = build()
    check_state_dict(model, state, name)
    model.load_state_dict(state)
    return model.to(device).eval()


@torch.no_grad()
def target_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits (N, classes) float32 on CPU of the target on ``inputs`` (N, ...): the one way the
    audit touches a given target."""
    if not isinstance(model, ExportedTarget):
        return predict_logits(model, inputs, batch_size)
    device = next(iter(model.parameters()), torch.empty(0)).device
    out = [
        model(inputs[start : start + batch_size].to(device)).float().cpu()
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(out)


def check_target_runs(
    model: nn.Module, dataset: Mapping[str, np.ndarray], ids: np.ndarray, spec: Preprocessing
) -> None:
    """Query the target on the samples ``ids`` (a few) of the prepared ``dataset``, preprocessed
    by ``spec``: it must take them and give one logit per class of the dataset, (n, K); a
    ``CheckpointError`` saying what to fix otherwise."""
    classes = len(dataset["classes"])
    try:
        logits = target_logits(model, target_input(dataset, ids, spec))
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's model refused our input
        raise CheckpointError(
            f"the target does not run on the preprocessed input ({str(err).splitlines()[0]}); "
            "check target.resize, target.channels, target.mean/std"
        ) from err
    if logits.ndim != 2 or logits.shape[1] != classes:
        raise CheckpointError(
            f"the target gives outputs of shape {tuple(logits.shape[1:])} per sample, but the "
            f"dataset has {classes} classes"
        )


def count_target_parameters(model: nn.Module) -> int:
    """Number of parameters of a loaded target (exported programs included)."""
    return sum(p.numel() for p in model.parameters())


def target_record(
    model: nn.Module,
    dataset: Mapping[str, np.ndarray],
    partition: pd.DataFrame,
    spec: Preprocessing,
    name: str,
    files: Mapping[str, Path],
    checkpoint: str,
    factory: str,
    batch_size: int = 500,
) -> dict:
    """A given target's report in the trained targets' format.

    Model ``name``, parameter count, accuracy on its members (``target_in`` of ``partition``,
    as train accuracy) and non-members (``target_out``, as test accuracy) of the prepared
    ``dataset`` preprocessed by ``spec``, then its provenance: the params values ``checkpoint``
    and ``factory``, the SHA-256 of each of ``files`` ({"checkpoint"|"members"|"nonmembers":
    path}) and the preprocessing.
    """
    acc = {}
    for part in ("target_in", "target_out"):
        ids = part_ids(partition, part)
        logits = target_logits(model, target_input(dataset, ids, spec), batch_size)
        acc[part] = accuracy(logits, torch.from_numpy(dataset["y"][ids].astype(np.int64)))
    return {
        "role": "target",
        "model": name,
        "parameters": count_target_parameters(model),
        "train_accuracy": acc["target_in"],
        "test_accuracy": acc["target_out"],
        "train_samples": len(part_ids(partition, "target_in")),
        "history": [],
        "source": "checkpoint",
        "checkpoint": checkpoint,
        "factory": factory,
        "sha256": {key: file_sha256(path) for key, path in files.items()},
        "preprocessing": dataclasses.asdict(spec),
    }


# --------------------------------------------------------------------------------------------
# The given target of a run


@dataclasses.dataclass(frozen=True)
class GivenTarget:
    """A target model given as files, as the audit loads and queries it.

    checkpoint: its weights file (inside the repository's target/ folder); factory:
    ``package.module:factory`` building the untrained module for a state dict, "" to build
    ``architecture`` (sized for the input the target takes, which ``preprocessing`` may resize);
    run_exported_code: the user's yes to loading a ``.pt2`` archive, which can run code.
    """

    checkpoint: Path
    factory: str
    architecture: Architecture
    preprocessing: Preprocessing
    run_exported_code: bool

    @property
    def name(self) -> str:
        """What builds it: "exported program", the factory, or the architecture's name."""
        return describe_builder(self.checkpoint.name, self.factory, self.architecture.name)


def load_given_target(
    given: GivenTarget, dataset: Mapping[str, np.ndarray], device: torch.device
) -> nn.Module:
    """The given target, loaded (weights only for state dicts; a ``.pt2`` only with
    ``given.run_exported_code``) and ready to query on ``device``."""
    if given.factory:
        build = load_factory(given.factory)
    else:
        shape = tuple(target_input(dataset, np.arange(1), given.preprocessing).shape[1:])
        classes = num_classes(dataset)

        def build() -> nn.Module:
            return new_model(given.architecture, shape, classes, make_generator(0, "load"))

    return load_target(
        given.checkpoint, build, given.name, device, run_exported_code=given.run_exported_code
    )


def query_given_target(
    given: GivenTarget,
    dataset: Mapping[str, np.ndarray],
    model: nn.Module,
    ids: np.ndarray,
    batch: int = 500,
) -> torch.Tensor:
    """Logits (n, classes) of the given target on samples ``ids`` (n,), preprocessed its way."""
    return target_logits(model, target_input(dataset, ids, given.preprocessing), batch)
