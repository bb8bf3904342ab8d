"""A given target's member lists: which samples it was trained on and which it never saw.

Member lists are text files, one entry per line: a sample id (row of ``dataset.npz``) or, for a
dataset read from an image folder, an image path relative to that folder (``train/cat/0001.png``).
Read by the partition stage only, which deals target_in and target_out from them.

The lists come from other people, so every way a line can be wrong is reported in one line naming
the list (its params key and file) and the line. They can be large (millions of ids): a list is
read line by line and each entry is turned into its id as it is read, so memory holds the ids
(8 bytes each), never the lines.
"""

from __future__ import annotations

import array
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from seqmia.base.errors import first_line
from seqmia.data.readers import image_folder_index, localised
from seqmia.target.files import CheckpointError

# An entry is a row number or a path relative to the image folder: far shorter than this. The
# limit bounds the memory a file without line breaks (binary data, a wrong file) can take.
MAX_LINE_BYTES = 64 * 1024
ECHO_CHARS = 60  # entries quoted in errors are cut to this many characters
BOM = b"\xef\xbb\xbf"  # what Windows editors write at the start of "UTF-8" files
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SAMPLE_ID = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²', '٣'
NEGATIVE_ID = re.compile(r"-[0-9]+")  # a number, but never a row: reported as an unknown id

Kind = Literal["id", "path"]


@dataclass(frozen=True)
class ListSource:
    """Where a list's entries come from, for errors: its params key and file (None for entries
    given in memory, numbered by entry instead of by line)."""

    name: str
    path: Path | None = None

    def at(self, line: int) -> str:
        """``target.members (members.txt) line 3``: the place of one entry."""
        if self.path is None:
            return f"{self.name} entry {line}"
        return f"{self.name} ({self.path}) line {line}"

    def first_at(self, line: int) -> str:
        """``; the first is on line 3 of members.txt``: suffix of errors that count entries."""
        if self.path is None:
            return f"; the first is entry {line}"
        return f"; the first is on line {line} of {self.path}"


@dataclass
class Misses:
    """Entries that name no sample of the dataset: how many, the first three (as shown in the
    error) and the line of the first."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    first_line: int = 0

    def add(self, line: int, shown: str) -> None:
        """Count one more entry that names no sample."""
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(shown)
        if not self.first_line:
            self.first_line = line

    def shown(self) -> str:
        """``[10, -1]``: the examples as a list."""
        return "[" + ", ".join(self.examples) + "]"


def shorten(text: str) -> str:
    """``text`` cut to ``ECHO_CHARS`` characters (marked by an ellipsis) for echoing in errors."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def echo(entry: str) -> str:
    """An entry as errors quote it: repr'd (control and odd characters visible), cut short."""
    return repr(shorten(entry))


def _decode(raw: bytes, line: int, source: ListSource) -> str:
    """One line of a list file as text; refuses bytes that are not UTF-8 in one line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        what = f"byte {raw[err.start]:#04x} at column {err.start + 1}"
        if line == 1 and raw.startswith(UTF16_BOMS):
            what = "it starts like UTF-16"
        raise CheckpointError(
            f"{source.at(line)} is not UTF-8 text ({what}); save the list as UTF-8"
        ) from None


def _numbered_lines(fh: BinaryIO, source: ListSource) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line of the open binary file ``fh``, one at a time: a
    UTF-8 BOM at the very start dropped, lines over ``MAX_LINE_BYTES`` refused."""
    line = 0
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        line += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise CheckpointError(
                f"{source.at(line)} is over {MAX_LINE_BYTES // 1024} KiB long; a member list "
                "holds one sample id or image path per line"
            )
        if line == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        yield line, _decode(raw, line, source)


def numbered_entries(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, entry) of each entry of the member list ``path``, read line by line:
    blank lines and ``#`` comments skipped, surrounding white space stripped. ``name`` (the params
    key) names the list in errors."""
    source = ListSource(name, path)
    try:
        with path.open("rb") as fh:
            for line, text in _numbered_lines(fh, source):
                entry = text.split("#", 1)[0].strip()
                if entry:
                    yield line, entry
    except OSError as err:
        raise CheckpointError(f"{name} ({path}) cannot be read: {first_line(err)}") from None


def read_sample_list(path: Path, name: str = "member list") -> list[str]:
    """Entries of a member list: one per line, blank lines and ``#`` comments skipped. Holds every
    entry: for small lists; ``member_lists`` reads lists entry by entry instead."""
    return [entry for _, entry in numbered_entries(path, name)]


def _kind(entry: str, line: int, source: ListSource, example: str | None) -> Kind:
    """Whether ``entry`` is meant as a sample id or an image path (image paths always hold a
    ``/``: split/class/file); refuses anything else, e.g. ``+5``, ``--5`` or ``²``, in one line.
    ``example`` is a valid image path of the dataset, if it has any."""
    if "/" in entry:
        return "path"
    if SAMPLE_ID.fullmatch(entry) or NEGATIVE_ID.fullmatch(entry):
        return "id"
    if entry[0] in "+-":
        why = "a sample id is written without a sign"
    elif odd := next((c for c in entry if c.isdigit() and not "0" <= c <= "9"), None):
        why = f"it holds {odd!r} (U+{ord(odd):04X}); sample ids are written in ASCII digits 0-9"
    else:
        like = f", like {example!r}" if example else ""
        why = (
            "a sample id is a row of dataset.npz in the ASCII digits 0-9, an image path is "
            f"relative to the dataset's image folder{like}"
        )
    raise CheckpointError(f"{source.at(line)}: {echo(entry)} is not a sample id ({why})")


def _sorted_unique(ids: array.array) -> np.ndarray:
    """Sorted unique values (n,) int64 of ``ids`` (an ``array('q')``), sorted in place: no copy
    besides the result."""
    values = np.frombuffer(ids, dtype=np.int64)
    values.sort()
    if len(values) < 2:
        return values.copy()
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def parse_entries(
    numbered: Iterable[tuple[int, str]],
    n_samples: int,
    paths: Mapping[str, int] | None,
    source: ListSource,
) -> np.ndarray:
    """Sorted unique sample ids (n,) int64 of a member list's (line, entry) pairs, converted one
    entry at a time.

    Entries are all integers (rows of dataset.npz, 0 … ``n_samples`` - 1) or all image paths,
    looked up in ``paths`` (``image_folder_index``, None when the dataset is not an image
    folder). Malformed entries and mixed lists are refused at the first bad line; entries that
    name no sample are counted and refused together at the end.
    """
    example = next(iter(paths), None) if paths else None
    max_digits = len(str(n_samples))  # longer (without leading zeros) is out of range for sure
    ids = array.array("q")  # 8 bytes an id: memory holds the ids, never the lines
    misses = Misses()
    first: tuple[Kind, int, str] | None = None
    for line, entry in numbered:
        kind = _kind(entry, line, source, example)
        if first is None:
            first = (kind, line, entry)
        elif kind != first[0]:
            given = {"id": "a sample id", "path": "an image path"}
            raise CheckpointError(
                f"{source.at(line)}: {echo(entry)} is {given[kind]}, but line {first[1]} "
                f"({echo(first[2])}) is {given[first[0]]}; list either sample ids or image "
                "paths, not both"
            )
        if kind == "path":
            if paths is None:
                raise CheckpointError(
                    f"{source.at(line)}: {source.name} lists image paths (e.g. {echo(entry)}), "
                    "but the dataset was not read from an image folder; list sample ids (rows of "
                    "data/prepared/dataset.npz) instead"
                )
            row = paths.get(entry)
            if row is None:
                misses.add(line, echo(entry))
            else:
                ids.append(row)
            continue
        digits = entry.lstrip("0") or "0"
        # Compare as Python ints before any int64 conversion: a 23-digit id is unknown, not an
        # overflow; and never int() thousands of digits (slow, and refused past 4300 digits).
        value = -1 if entry[0] == "-" or len(digits) > max_digits else int(digits)
        if 0 <= value < n_samples:
            ids.append(value)
        else:
            misses.add(line, shorten(entry))
    if first is None:
        where = f" ({source.path} holds only blank lines and # comments)" if source.path else ""
        raise CheckpointError(f"{source.name} lists no samples{where}")
    if misses.count and first[0] == "id":
        raise CheckpointError(
            f"{source.name} has {misses.count} unknown sample ids (the dataset has rows 0 to "
            f"{n_samples - 1}), e.g. {misses.shown()}{source.first_at(misses.first_line)}"
        )
    if misses.count:
        raise CheckpointError(
            f"{source.name} has {misses.count} paths that are not images of the dataset's "
            f"folder, e.g. {misses.shown()}{source.first_at(misses.first_line)}; give paths "
            f"relative to the folder, like {example!r}"
        )
    return _sorted_unique(ids)


def parse_sample_list(
    entries: Iterable[str], n_samples: int, paths: Mapping[str, int] | None, name: str
) -> np.ndarray:
    """Sorted unique sample ids (n,) int64 of a member list's ``entries`` given in memory (see
    ``parse_entries``); ``name`` names the list in errors, which number the entries."""
    return parse_entries(enumerate(entries, 1), n_samples, paths, ListSource(name))


def check_disjoint_lists(members: np.ndarray, nonmembers: np.ndarray) -> None:
    """Refuse member and non-member lists that share samples. Both are sorted unique ids (m,) and
    (n,) int64, as ``parse_entries`` returns them."""
    # Look the shorter list up in the longer one: memory in proportion to the shorter list, where
    # np.intersect1d would copy and sort both together.
    small, large = sorted((members, nonmembers), key=len)
    if not len(small) or not len(large):
        return
    at = np.minimum(np.searchsorted(large, small), len(large) - 1)
    both = small[large[at] == small]
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
        parse_entries(
            numbered_entries(files[key], key), n_samples, paths, ListSource(key, files[key])
        )
        for key in ("target.members", "target.nonmembers")
    ]
    check_disjoint_lists(*lists)
    return lists[0], lists[1]
