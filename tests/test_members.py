"""A given target's member lists read from files: ids or image paths, checked and disjoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqmia.data.readers import DATA_ROOT_PLACEHOLDER, IMAGE_FOLDER_SOURCE
from seqmia.target.checkpoint import CheckpointError
from seqmia.target.members import member_lists
from tests.conftest import REPO


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


# ----- hostile lists: one-line errors naming the file and the line ----------------------------


def one_line_error(files: dict[str, Path], n_samples: int = 8, source: str = "") -> str:
    """The message of the CheckpointError ``member_lists`` raises, checked to be one line."""
    with pytest.raises(CheckpointError) as info:
        member_lists(files, n_samples, source, files["target.members"].parent)
    text = str(info.value)
    assert "\n" not in text and "\r" not in text and len(text) < 400, text
    return text


def hostile(tmp_path: Path, members: bytes) -> dict[str, Path]:
    """Member and non-member lists with ``members`` written byte for byte."""
    files = lists(tmp_path, "", "7\n")
    files["target.members"].write_bytes(members)
    return files


def test_a_utf8_bom_at_the_start_is_dropped(tmp_path: Path) -> None:
    files = hostile(tmp_path, b"\xef\xbb\xbf4\r\n1\r\n")
    members, _ = member_lists(files, 8, "", tmp_path)
    assert members.tolist() == [1, 4]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"1\n--5\n", ["line 2: '--5' is not a sample id", "without a sign"]),
        (b"+5\n", ["line 1: '+5' is not a sample id", "without a sign"]),
        ("1\n\u00b2\n".encode(), ["line 2: '²' is not a sample id", "U+00B2", "ASCII digits"]),
        ("\u0663\n".encode(), ["line 1: '٣' is not a sample id", "U+0663", "ASCII digits"]),
        (b"cat.png\n", ["line 1: 'cat.png' is not a sample id", "relative to the dataset's image"]),
    ],
    ids=["double-minus", "plus", "superscript", "arabic-indic", "no-slash"],
)
def test_entries_that_are_not_ids_name_the_line_and_entry(
    tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    files = hostile(tmp_path, content)
    text = one_line_error(files)
    assert text.startswith(f"target.members ({files['target.members']}) line "), text
    for fragment in expected:
        assert fragment in text, text


@pytest.mark.parametrize(
    ("entry", "shown"),
    [("-3", "[-3]"), ("9" * 23, f"[{'9' * 23}]"), ("7" * 5000, f"[{'7' * 60}…]")],
    ids=["negative", "23-digits", "5000-digits"],
)
def test_ids_outside_the_dataset_are_unknown_ids_not_overflows(
    tmp_path: Path, entry: str, shown: str
) -> None:
    files = hostile(tmp_path, f"1\n{entry}\n".encode())
    text = one_line_error(files)
    assert text == (
        f"target.members has 1 unknown sample ids (the dataset has rows 0 to 7), e.g. {shown}; "
        f"the first is on line 2 of {files['target.members']}"
    )


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ("1\ncaf\u00e9\n".encode("latin-1"), "line 2 is not UTF-8 text (byte 0xe9 at column 4)"),
        (b"1\n2\n\xff\xfe3\n", "line 3 is not UTF-8 text (byte 0xff at column 1)"),
        ("1\n2\n".encode("utf-16"), "line 1 is not UTF-8 text (it starts like UTF-16)"),
    ],
    ids=["latin-1", "invalid-utf8", "utf-16"],
)
def test_bytes_that_are_not_utf8_name_the_line(tmp_path: Path, content: bytes, what: str) -> None:
    files = hostile(tmp_path, content)
    text = one_line_error(files)
    assert text == f"target.members ({files['target.members']}) {what}; save the list as UTF-8"


def test_mixed_ids_and_paths_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "folder" / "train" / "a").mkdir(parents=True)
    (root / "folder" / "train" / "a" / "0.png").write_bytes(b"")
    source = f"{IMAGE_FOLDER_SOURCE}{DATA_ROOT_PLACEHOLDER}/folder"
    files = hostile(tmp_path, b"train/a/0.png\n# a comment\n0\n")
    with pytest.raises(CheckpointError) as info:
        member_lists(files, 1, source, root)
    assert str(info.value) == (
        f"target.members ({files['target.members']}) line 3: '0' is a sample id, but line 1 "
        "('train/a/0.png') is an image path; list either sample ids or image paths, not both"
    )
    files = hostile(tmp_path, b"1\ntrain/a/0.png\n")
    assert "line 2: 'train/a/0.png' is an image path, but line 1 ('1') is a sample id" in (
        one_line_error(files)
    )


def test_a_line_without_line_breaks_is_refused(tmp_path: Path) -> None:
    files = hostile(tmp_path, b"1" * 100_000)
    assert "line 1 is over 64 KiB long" in one_line_error(files)


def test_an_empty_list_names_its_file(tmp_path: Path) -> None:
    files = hostile(tmp_path, b"# nothing yet\n\n   \n")
    assert one_line_error(files) == (
        f"target.members lists no samples ({files['target.members']} holds only blank lines "
        "and # comments)"
    )


# ----- memory ---------------------------------------------------------------------------------

PEAK_SCRIPT = """
import resource, sys
from pathlib import Path
from seqmia.target.members import member_lists
folder = Path(sys.argv[1])
files = {"target.members": folder / "m.txt", "target.nonmembers": folder / "n.txt"}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
members, nonmembers = member_lists(files, 5_000_000, "", folder)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(members), len(nonmembers), (after - before) / 1024)
"""


def test_a_20_mb_list_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """2.5 million ids (20 MB of text) end up as 20 MB of int64: reading them must not hold the
    lines (the list of strings and ints it used to build took over 300 MiB)."""
    ids = np.random.default_rng(0).permutation(2_500_000) + 1_000_000
    (tmp_path / "m.txt").write_text("\n".join(map(str, ids.tolist())) + "\n")
    (tmp_path / "n.txt").write_text("0\n1\n")
    assert (tmp_path / "m.txt").stat().st_size > 19 * 2**20
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    n_members, n_nonmembers, growth_mib = result.stdout.split()
    assert (int(n_members), int(n_nonmembers)) == (2_500_000, 2)
    assert float(growth_mib) < 100, f"parsing grew the peak memory by {growth_mib} MiB"
