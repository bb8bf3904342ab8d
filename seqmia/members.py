"""A given target's member lists: which samples it was trained on and which it never saw.

Member lists are text files, one entry per line: a sample id (row of ``dataset.npz``) or, for a
dataset read from an image folder, an image path relative to that folder (``train/cat/0001.png``).
Read by the partition stage only, which deals target_in and target_out from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from seqmia.checkpoint import CheckpointError
from seqmia.data.readers import image_folder_index, localised


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


def member_lists(
    files: Mapping[str, Path], n_samples: int, source: str, data_root: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted sample ids (m,) of the target's members and (n,) of its non-members, checked: known
    and disjoint.

    files: {"target.members": path, "target.nonmembers": path}, the params key naming each list
    in errors; n_samples: rows of dataset.npz; source: the prepared dataset's ``source`` (with the
    data root written as its placeholder), whose image folder resolves path entries.
    """
    paths = image_folder_index(localised(source, data_root))
    lists = [
        parse_sample_list(read_sample_list(files[key]), n_samples, paths, key)
        for key in ("target.members", "target.nonmembers")
    ]
    check_disjoint_lists(*lists)
    return lists[0], lists[1]
