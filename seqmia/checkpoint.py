"""A target model given as a checkpoint: its weights, its member lists, its preprocessing.

The audit only ever *queries* such a target for logits (``target_logits``): nothing here reads
its weights beyond loading them to run it. Three forms load:

- a state dict (``torch.load(weights_only=True)``, never unpickled code) for a module built from
  the model registry (``train.model``) or by a user's ``package.module:factory`` (which imports
  and runs that user's code);
- a ``torch.export`` program (``.pt2``): a graph with its weights, no Python class needed.

Member lists are text files, one entry per line: a sample id (row of ``dataset.npz``) or, for a
dataset read from an image folder, an image path relative to that folder (``train/cat/0001.png``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from seqmia.artifacts import CHECKSUM_KEY, weights_digest
from seqmia.data import _list_image_folder, is_image, to_model_input
from seqmia.errors import UserError
from seqmia.inference import predict_logits
from seqmia.params.partition import PARTS
from seqmia.partition import PartitionError, stratified_counts

# Every file of a checkpoint target lives here, so one DVC dependency covers them all.
TARGET_DIR = "target"
EXPORTED_SUFFIX = ".pt2"
IMAGE_FOLDER_SOURCE = "image folder "  # prefix of info.json "source" for image-folder datasets


class CheckpointError(UserError, ValueError):
    """A target checkpoint, member list or preprocessing that the audit cannot use."""


def target_file(root: Path, value: str, key: str) -> Path:
    """The file ``value`` (relative to ``root``) of params key ``key``: it must exist inside
    ``root/target/``, the folder the stages depend on."""
    path = (root / value).resolve()
    folder = (root / TARGET_DIR).resolve()
    if not path.is_relative_to(folder):
        raise CheckpointError(
            f"params key '{key}' is {value!r}, outside the {TARGET_DIR}/ folder; copy the file "
            f"into {folder} (the stages track that folder as a DVC dependency)"
        )
    if not path.is_file():
        raise CheckpointError(f"params key '{key}': no file at {path}")
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Member lists


def image_folder_index(source: str) -> dict[str, int] | None:
    """{path relative to the image folder: row of dataset.npz} for a dataset whose info.json
    ``source`` is an image folder; None for any other source.

    Rows follow ``seqmia.data.read_image_folder``: splits train then test, classes and files
    sorted.
    """
    if not source.startswith(IMAGE_FOLDER_SOURCE):
        return None
    folder = Path(source[len(IMAGE_FOLDER_SOURCE) :])
    index: dict[str, int] = {}
    for split in ("train", "test"):
        if (folder / split).is_dir():
            for f, _ in _list_image_folder(folder / split)[1]:
                index[str(f.relative_to(folder))] = len(index)
    return index


def read_sample_list(path: Path) -> list[str]:
    """Entries of a member list: one per line, blank lines and ``#`` comments skipped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def parse_sample_list(
    entries: list[str], n_samples: int, paths: Mapping[str, int] | None, name: str
) -> np.ndarray:
    """Sorted unique sample ids (n,) int64 of a member list's ``entries``.

    Entries are all integers (rows of dataset.npz, 0 … ``n_samples`` - 1) or all image paths,
    looked up in ``paths`` (``image_folder_index``). ``name`` names the list in errors.
    """
    if not entries:
        raise CheckpointError(f"{name} lists no samples")
    if all(e.lstrip("-").isdigit() for e in entries):
        ids = np.array([int(e) for e in entries], dtype=np.int64)
        unknown = ids[(ids < 0) | (ids >= n_samples)]
        if len(unknown):
            raise CheckpointError(
                f"{name} has {len(unknown)} unknown sample ids (the dataset has rows 0 to "
                f"{n_samples - 1}), e.g. {unknown[:3].tolist()}"
            )
        return np.unique(ids)
    if paths is None:
        raise CheckpointError(
            f"{name} lists image paths (e.g. {entries[0]!r}), but the dataset was not read from "
            "an image folder; list sample ids (rows of data/prepared/dataset.npz) instead"
        )
    unknown_paths = [e for e in entries if e not in paths]
    if unknown_paths:
        raise CheckpointError(
            f"{name} has {len(unknown_paths)} paths that are not images of the dataset's folder, "
            f"e.g. {unknown_paths[:3]}; give paths relative to the folder, like "
            f"{next(iter(paths))!r}"
        )
    return np.unique(np.array([paths[e] for e in entries], dtype=np.int64))


def check_disjoint_lists(members: np.ndarray, nonmembers: np.ndarray) -> None:
    """Refuse member and non-member lists that share samples."""
    both = np.intersect1d(members, nonmembers)
    if len(both):
        raise CheckpointError(
            f"target.members and target.nonmembers share {len(both)} samples, e.g. sample ids "
            f"{both[:3].tolist()}; a sample is either in the target's training set or not"
        )


def given_target_partition(
    labels: np.ndarray,
    members: np.ndarray,
    nonmembers: np.ndarray,
    sizes: Mapping[str, int],
    seed: int,
    unit: str = "per_class",
) -> pd.DataFrame:
    """The five parts when the target's members and non-members are given.

    labels: (N,) class of every sample; members, nonmembers: sample ids. target_in comes from
    ``members``, target_out from ``nonmembers``, and shadow_in, shadow_out and distill only from
    samples in neither list. Each class's samples are shuffled once from ``seed`` exactly as
    ``seqmia.partition.make_partition`` does, so when the lists are exactly the target parts of
    ``make_partition`` the result is identical to it. ``unit="total"`` stratifies each pool's
    parts by that pool's class frequencies. Returns the ``make_partition`` frame.
    """
    classes = np.unique(labels)
    pools = {
        "target_in": np.isin(np.arange(len(labels)), members),
        "target_out": np.isin(np.arange(len(labels)), nonmembers),
    }
    pools["rest"] = ~(pools["target_in"] | pools["target_out"])
    pool_of = {"target_in": "target_in", "target_out": "target_out"}
    pool_parts = {
        "target_in": ["target_in"],
        "target_out": ["target_out"],
        "rest": [p for p in PARTS if p not in pool_of],
    }
    available = {
        pool: np.array([int((mask & (labels == c)).sum()) for c in classes])
        for pool, mask in pools.items()
    }
    counts: dict[str, np.ndarray] = {}
    for pool, parts in pool_parts.items():
        for part in parts:
            if unit == "per_class":
                counts[part] = np.full(len(classes), sizes[part], dtype=np.int64)
            else:
                counts[part] = stratified_counts(available[pool], sizes[part])
        need = sum(counts[p] for p in parts)
        short = np.flatnonzero(available[pool] < need)
        if len(short):
            c = short[0]
            what = {
                "target_in": "of the target's members (target.members)",
                "target_out": "of the target's non-members (target.nonmembers)",
                "rest": "samples in neither list (for " + ", ".join(parts) + ")",
            }[pool]
            asked = " + ".join(f"{p}={sizes[p]}" for p in parts)
            raise PartitionError(
                f"class {classes[c]} has {available[pool][c]} {what} but the partition "
                f"needs {need[c]} ({asked}{' per class' if unit == 'per_class' else ''}; "
                f"{int(available[pool].sum())} in all); lower the partition.* sizes or list "
                "more samples"
            )
    rng = np.random.default_rng(seed)
    rows: list[pd.DataFrame] = []
    for k, label in enumerate(classes):
        shuffled = rng.permutation(np.flatnonzero(labels == label))
        for pool, parts in pool_parts.items():
            ids = shuffled[pools[pool][shuffled]]
            start = 0
            for part in parts:
                take = ids[start : start + counts[part][k]]
                start += counts[part][k]
                rows.append(pd.DataFrame({"sample_id": take, "label": label, "role": part}))
    frame = pd.concat(rows, ignore_index=True)
    frame["sample_id"] = frame["sample_id"].astype(np.int64)
    frame["label"] = frame["label"].astype(np.int64)
    frame["role"] = pd.Categorical(frame["role"], categories=list(PARTS))
    return frame.sort_values(["role", "sample_id"], kind="stable").reset_index(drop=True)


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


# --------------------------------------------------------------------------------------------
# Loading and querying


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
    path: Path, build: Callable[[], nn.Module], name: str, device: torch.device
) -> nn.Module:
    """The target model of checkpoint ``path`` on ``device``, ready to query.

    ``.pt2``: the exported program. Anything else: a state dict, loaded weights only, into
    ``build()`` (a module of architecture ``name``) after ``check_state_dict``.
    """
    if path.suffix == EXPORTED_SUFFIX:
        try:
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
            "save it with torch.save(model.state_dict(), path), or export it as .pt2"
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


def count_target_parameters(model: nn.Module) -> int:
    """Number of parameters of a loaded target (exported programs included)."""
    return sum(p.numel() for p in model.parameters())
