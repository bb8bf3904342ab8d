"""A given target's member lists read from files: ids or image paths, checked and disjoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqmia.checkpoint import CheckpointError
from seqmia.data.readers import DATA_ROOT_PLACEHOLDER, IMAGE_FOLDER_SOURCE
from seqmia.members import member_lists


def lists(tmp_path: Path, members: str, nonmembers: str) -> dict[str, Path]:
    files = {"target.members": tmp_path / "m.txt", "target.nonmembers": tmp_path / "n.txt"}
    files["target.members"].write_text(members)
    files["target.nonmembers"].write_text(nonmembers)
    return files


def test_sample_ids_come_back_sorted_and_unique(tmp_path: Path) -> None:
    files = lists(tmp_path, "4\n1\n4\n", "# never seen\n0\n7\n")
    members, nonmembers = member_lists(files, 8, "torchvision CIFAR", tmp_path)
    assert members.tolist() == [1, 4] and nonmembers.tolist() == [0, 7]


def test_image_paths_resolve_through_the_placeholder_of_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    images = [("train", "a", "0.png"), ("train", "b", "1.png"), ("test", "a", "2.png")]
    for split, cls, name in images:
        (root / "folder" / split / cls).mkdir(parents=True, exist_ok=True)
        (root / "folder" / split / cls / name).write_bytes(b"")
    source = f"{IMAGE_FOLDER_SOURCE}{DATA_ROOT_PLACEHOLDER}/folder"
    files = lists(tmp_path, "test/a/2.png\ntrain/a/0.png\n", "train/b/1.png\n")
    members, nonmembers = member_lists(files, 3, source, root)
    assert members.tolist() == [0, 2] and nonmembers.tolist() == [1]


def test_lists_sharing_a_sample_are_refused(tmp_path: Path) -> None:
    files = lists(tmp_path, "1\n2\n", "2\n3\n")
    with pytest.raises(CheckpointError, match=r"share 1 samples, e.g. sample ids \[2\]"):
        member_lists(files, 8, "", tmp_path)


def test_an_unknown_id_names_the_list(tmp_path: Path) -> None:
    files = lists(tmp_path, "1\n", "9\n")
    with pytest.raises(CheckpointError, match=r"target.nonmembers has 1 unknown sample ids"):
        member_lists(files, 8, "", tmp_path)
