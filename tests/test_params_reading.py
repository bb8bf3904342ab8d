"""Params files are read bounded and in one YAML dialect (seqmia.params.schema.read_document).

One reader for every params document: a size limit before parsing, UTF-8, YAML 1.2 as DVC reads
it, no anchors or aliases, bounded nesting, no duplicate keys, and error messages that echo at
most a short part of a value, each refusal in one line.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.experiment import write_overrides
from seqmia.params import schema
from seqmia.params.presets import PRESETS_DIR, parse_overrides, set_arguments
from seqmia.params.schema import (
    MAX_DEPTH,
    MAX_PARAMS_BYTES,
    ParamsError,
    parse_document,
    read_document,
    shown,
    validate_document,
    validate_file,
)
from tests.conftest import REPO

PARAMS_TEXT = (REPO / "params.yaml").read_text()


def _lines() -> list[str]:
    return PARAMS_TEXT.splitlines()


def _line_of(prefix: str) -> int:
    """1-based number of the first line of params.yaml that starts with ``prefix``."""
    return next(i for i, line in enumerate(_lines(), 1) if line.startswith(prefix))


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _refusal(path: Path) -> str:
    """The one-line message with which ``read_document`` refuses ``path``."""
    with pytest.raises(ParamsError) as err:
        read_document(path)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _strictly_equal(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down, keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize(
    "path",
    [REPO / "params.yaml", *sorted((REPO / PRESETS_DIR).glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_repository_params_and_presets_read_as_with_pyyaml(path: Path) -> None:
    # The YAML 1.2 reader must not change a value of the files in the repository: the default
    # run's results stay byte-identical.
    assert _strictly_equal(read_document(path), yaml.safe_load(path.read_text()))


def test_validate_document_checks_a_parsed_document_like_validate_file() -> None:
    path = REPO / "params.yaml"
    assert validate_document(read_document(path)) == validate_file(path)
    raw = read_document(path)
    raw["train"]["lr"] = "fast"
    with pytest.raises(ParamsError, match="train.lr"):
        validate_document(raw)


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs': each list holds ``width`` aliases of the one before (9**9 items)."""
    rows = [f"  - &l0 [{', '.join(['lol'] * width)}]"]
    rows += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "seed:\n" + "\n".join(rows)


def test_alias_bomb_refused_in_one_line_fast_and_small(tmp_path: Path) -> None:
    seed = _line_of("seed:")
    text = "\n".join([*_lines()[: seed - 1], _bomb(), *_lines()[seed:]]) + "\n"
    path = _write(tmp_path, text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = _refusal(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5 * 2**20  # bytes: the file is 6 KB; nothing is expanded
    assert message == (
        f"{path}, line {seed + 1}: anchor &l0: a params file may hold no anchors or aliases"
    )


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        ({"  lr: ": "  lr: &lr 0.1", "  min_lr: ": "  min_lr: *lr"}, "anchor &lr"),
        ({"  min_lr: ": "  min_lr: *lr"}, "alias *lr"),
    ],
    ids=["anchor", "alias"],
)
def test_anchor_and_alias_refused_naming_the_line(
    tmp_path: Path, edit: dict[str, str], what: str
) -> None:
    lines = _lines()
    train = _line_of("train:")
    changed = []
    for prefix, new in edit.items():  # the first such line of the train section
        index = next(i for i in range(train, len(lines)) if lines[i].startswith(prefix))
        lines[index] = new
        changed.append(index + 1)
    message = _refusal(_write(tmp_path, "\n".join(lines) + "\n"))
    assert f"line {changed[0]}: {what}: a params file may hold no anchors or aliases" in message


def test_file_over_the_size_limit_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    padding = "#" * 100 + "\n"
    text = PARAMS_TEXT + padding * (MAX_PARAMS_BYTES // len(padding) + 1)
    path = _write(tmp_path, text)

    def no_parse() -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(schema, "_yaml_12_reader", no_parse)
    size = path.stat().st_size
    message = _refusal(path)
    assert message == (
        f"{path} is {size} bytes, over the {MAX_PARAMS_BYTES}-byte limit of a params file"
    )
    # the same bound holds for a document that does not come from a file (git show)
    with pytest.raises(ParamsError, match=f"over the {MAX_PARAMS_BYTES}-byte limit"):
        parse_document(path.read_bytes(), "HEAD:params.yaml")


def test_non_utf8_bytes_refused_naming_the_offset(tmp_path: Path) -> None:
    data = PARAMS_TEXT.encode()
    offset = data.index(b"small_cnn")
    path = _write(tmp_path, data[:offset] + b"\xff" + data[offset + 1 :])
    message = _refusal(path)
    assert message.startswith(f"{path} is not UTF-8 text: byte 0xff at offset {offset}")


def test_utf8_byte_order_mark_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + PARAMS_TEXT.encode())
    assert read_document(path) == read_document(REPO / "params.yaml")


def test_five_thousand_nested_brackets_refused_in_one_line(tmp_path: Path) -> None:
    seed = _line_of("seed:")
    lines = _lines()
    lines[seed - 1] = "seed: " + "[" * 5000 + "]" * 5000
    started = time.perf_counter()
    message = _refusal(_write(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - started < 10  # no RecursionError, and no quadratic scan
    assert message.endswith(f", line {seed}: nesting deeper than {MAX_DEPTH} levels")


def test_nesting_up_to_the_bound_accepted() -> None:
    # the top-level mapping is the first level
    inner = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    value = parse_document(f"seed: {inner}\n".encode(), "p.yaml")["seed"]
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == 1


@pytest.mark.parametrize("where", ["top", "nested"])
def test_duplicate_key_refused_naming_the_key_and_its_line(tmp_path: Path, where: str) -> None:
    lines = _lines()
    if where == "top":
        lines.append("seed: 3")
        key, line = "seed", len(lines)
    else:
        epochs = next(
            i for i in range(_line_of("train:"), len(lines)) if lines[i].startswith("  epochs:")
        )
        lines.insert(epochs + 1, "  epochs: 41")
        key, line = "epochs", epochs + 2
    message = _refusal(_write(tmp_path, "\n".join(lines) + "\n"))
    assert message == f"{tmp_path / 'params.yaml'}, line {line}: duplicate key '{key}'"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"seed: [1\n", "is not valid YAML: line 2, column 1: while parsing a flow sequence"),
        (b"seed: !custom 1\n", "is not valid YAML: line 1, column 7: could not determine"),
        (b"seed: \x01\n", "is not valid YAML: unacceptable character #x0001"),
        (b"seed: 1\n---\nseed: 2\n", "expected a single document"),
        (b"seed: " + b"1" * 5000 + b"\n", "holds a value that cannot be read"),
    ],
    ids=["unclosed", "tag", "control", "two-documents", "huge-int"],
)
def test_unreadable_yaml_refused_in_one_line(tmp_path: Path, data: bytes, expected: str) -> None:
    path = _write(tmp_path, data)
    message = _refusal(path)
    assert message.startswith(str(path)) and expected in message and len(message) < 300


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw["train"].update(model="x" * 200_000), "'train.model'"),
        (lambda raw: raw["train"].update(lr=[[0.1] * 1000] * 1000), "'train.lr'"),
        (lambda raw: raw.update({"k" * 100_000: 1}), "unknown params key 'kkk"),
        (lambda raw: raw["partition"].update(shadow_in="9" * 100_000), "'partition.shadow_in'"),
    ],
    ids=["long-string", "big-list", "long-key", "long-number-string"],
)
def test_long_bad_value_echoed_capped(edit: Any, key: str) -> None:
    raw = read_document(REPO / "params.yaml")
    edit(raw)
    with pytest.raises(ParamsError) as err:
        validate_document(raw)
    message = str(err.value)
    assert key in message and "…" in message
    assert len(message) < 300 and "\n" not in message


def test_shown_is_short_and_cheap_for_a_huge_value() -> None:
    huge = {"a": [list(range(100_000))] * 10_000, "b": "x" * 10**7}
    started = time.perf_counter()
    text = shown(huge)
    assert time.perf_counter() - started < 0.1
    assert len(text) <= 100 and text.endswith("…") and text.startswith("{'a': [[0, 1, 2")
    assert shown("fast") == "'fast'" and shown([64, 32]) == "[64, 32]"  # short: repr itself
    assert shown({"b": 1, "a": 2}) == "{'b': 1, 'a': 2}"  # the file's order, as repr


def test_override_1_20_reads_back_as_the_override_parser_read_it(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads 1:20 as the sexagesimal integer 80; YAML 1.2 (DVC, ruamel) as a
    # string. The override parser, the writer and the reader must agree with DVC.
    overrides = parse_overrides(["train.model=1:20", "data.name=0o17", "data.path=1:20"])
    assert overrides == {"train.model": "1:20", "data.name": 15, "data.path": "1:20"}
    path = _write(tmp_path, PARAMS_TEXT)
    write_overrides(path, overrides)
    assert "  model: 1:20 " in path.read_text()  # plain: a string in YAML 1.2
    document = read_document(path)
    assert document["train"]["model"] == overrides["train.model"]
    assert document["data"]["name"] == overrides["data.name"]
    assert document["data"]["path"] == overrides["data.path"]
    assert yaml.safe_load(path.read_text())["train"]["model"] == 80  # what PyYAML made of it


@pytest.mark.parametrize(
    "value",
    ["1:20", "0o17", "1e3", "yes", "null", "", "a b", 1e-5, None, ["loss", "sd"], 0.005, False],
)
def test_set_arguments_are_read_back_by_dvc_as_given(value: Any) -> None:
    # ``dvc exp run -S key=value`` reads the value as YAML 1.2, as parse_overrides does
    flag, argument = set_arguments({"data.path": value})
    assert flag == "-S" and "\n" not in argument
    assert parse_overrides([argument]) == {"data.path": value}


def test_overrides_parsed_by_the_bounded_reader() -> None:
    with pytest.raises(ParamsError, match="override seed, line 1: anchor &a"):
        parse_overrides(["seed=[&a [1, 2], *a]"])
    with pytest.raises(ParamsError, match="override data.path is not UTF-8 text"):
        parse_overrides(["data.path=\udcff"])  # a non-UTF-8 byte of the command line
