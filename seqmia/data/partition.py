"""Stage 0: five disjoint parts of one dataset, class-balanced or stratified, from one seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seqmia.base.errors import UserError
from seqmia.data.parts import PARTS


class PartitionError(UserError, ValueError):
    """The dataset cannot supply the requested part sizes."""


def stratified_counts(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``class_sizes`` (largest remainder).

    class_sizes: (K,) samples per class. Returns (K,) int64 counts summing to ``total``; ties in
    the remainders go to the lower class index, so the result is deterministic.
    """
    quota = total * class_sizes / class_sizes.sum()
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def class_counts(
    labels: np.ndarray, sizes: Mapping[str, int], unit: str = "per_class"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The classes present and how many of each every part takes.

    ``unit="per_class"``: ``sizes[part]`` of every class. ``unit="total"``: ``sizes[part]`` in
    all, dealt out in proportion to the classes' frequencies, so parts of equal size (the four
    attack sets) get identical class mixes. Returns (K,) class labels and {part: (K,) counts}.
    Raises ``PartitionError`` when a class (or the dataset) cannot supply them.
    """
    missing = [p for p in PARTS if p not in sizes]
    if missing:
        raise PartitionError(f"no size given for parts {missing}")
    if unit not in ("per_class", "total"):
        raise PartitionError(f"partition unit must be 'per_class' or 'total', got {unit!r}")
    classes, available = np.unique(labels, return_counts=True)
    listed = ", ".join(f"{p}={sizes[p]}" for p in PARTS)
    if unit == "per_class":
        counts = {p: np.full(len(classes), sizes[p], dtype=np.int64) for p in PARTS}
        need = sum(sizes[p] for p in PARTS)
        short = np.flatnonzero(available < need)
        if len(short):
            c = short[0]
            raise PartitionError(
                f"class {classes[c]} has {available[c]} samples but the partition asks for {need} "
                f"per class ({listed}); lower the partition.* sizes, or set partition.unit: total "
                "for sizes in all samples, stratified by class"
            )
        return classes, counts
    need = sum(sizes[p] for p in PARTS)
    if need > len(labels):
        raise PartitionError(
            f"the partition asks for {need} samples in total ({listed}) but the dataset has "
            f"{len(labels)}; lower the partition.* sizes"
        )
    counts = {p: stratified_counts(available, sizes[p]) for p in PARTS}
    per_class = sum(counts.values())
    short = np.flatnonzero(available < per_class)
    if len(short):  # only when the sizes add up to nearly all samples and rounding tips a class
        c = short[0]
        raise PartitionError(
            f"class {classes[c]} has {available[c]} samples but the stratified sizes ({listed}) "
            f"need {per_class[c]} of it; lower the partition.* sizes a little"
        )
    return classes, counts


def make_partition(
    labels: np.ndarray, sizes: Mapping[str, int], seed: int, unit: str = "per_class"
) -> pd.DataFrame:
    """Assign samples to the parts in ``PARTS``; ``class_counts`` says how many of each class.

    labels: (N,) int class index of every sample. Samples of each class are shuffled with a
    generator seeded by ``seed`` and dealt out in the order of ``PARTS``; samples left over get
    no role and are not listed. Returns a frame with columns ``sample_id`` (index into
    ``labels``), ``label`` and ``role`` (one of ``PARTS``), sorted by role then sample id.
    """
    classes, counts = class_counts(labels, sizes, unit)
    return deal(labels, classes, counts, [(None, list(PARTS))], seed)


def deal(
    labels: np.ndarray,
    classes: np.ndarray,
    counts: Mapping[str, np.ndarray],
    pools: Sequence[tuple[np.ndarray | None, Sequence[str]]],
    seed: int,
) -> pd.DataFrame:
    """The partition frame: each class's samples shuffled once, then dealt out pool by pool.

    labels: (N,) class of every sample; classes: (K,) the classes, in dealing order; counts:
    {part: (K,) samples of each class}; pools: (mask (N,) bool or None for every sample, parts
    dealt from that pool's samples in the shuffled order). One ``permutation`` per class from a
    generator seeded by ``seed``. Returns columns ``sample_id``, ``label`` and ``role`` (a
    categorical over ``PARTS``), sorted by role then sample id.
    """
    rng = np.random.default_rng(seed)
    rows: list[pd.DataFrame] = []
    for k, label in enumerate(classes):
        shuffled = rng.permutation(np.flatnonzero(labels == label))
        for mask, parts in pools:
            ids = shuffled if mask is None else shuffled[mask[shuffled]]
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


def part_ids(partition: pd.DataFrame, part: str) -> np.ndarray:
    """Sample ids of ``part``, in the partition's order. (n_part,) int64."""
    return partition.loc[partition["role"] == part, "sample_id"].to_numpy(np.int64)


def role_counts(partition: pd.DataFrame) -> dict[str, int]:
    """{part: number of samples} of a partition frame, in ``PARTS`` order."""
    return {str(k): int(v) for k, v in partition["role"].value_counts(sort=False).items()}


def check_disjoint(partition: pd.DataFrame) -> None:
    """Raise if any sample id appears in more than one part."""
    dup = partition["sample_id"].duplicated(keep=False)
    if dup.any():
        raise PartitionError(f"{int(dup.sum())} rows share a sample id across parts")


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
    ``make_partition`` does (``deal``), so when the lists are exactly the target parts of
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
    dealt = [(pools[pool], parts) for pool, parts in pool_parts.items()]
    return deal(labels, classes, counts, dealt, seed)


def check_partition_matches(
    partition: pd.DataFrame, labels: np.ndarray, part_path: Path | str, data_path: Path | str
) -> None:
    """Refuse a partition (``sample_id``, ``label``, ``role``) that does not index the prepared
    dataset of labels (N,): ids out of range or other labels mean another dataset's partition."""
    ids = partition["sample_id"].to_numpy(np.int64)
    hint = "rerun the partition stage (`dvc repro partition`) or restore both with `dvc checkout`"
    outside = (ids < 0) | (ids >= len(labels))
    if outside.any():
        raise UserError(
            f"partition {part_path} names sample ids {ids.min()}..{ids.max()}, but the prepared "
            f"dataset {data_path} holds {len(labels)} samples ({int(outside.sum())} ids out of "
            f"range): they belong to different datasets; {hint}"
        )
    differ = int((labels[ids] != partition["label"].to_numpy()).sum())
    if differ:
        raise UserError(
            f"partition {part_path} gives {differ} of its {len(ids)} samples other labels than "
            f"the prepared dataset {data_path}: they belong to different datasets; {hint}"
        )
